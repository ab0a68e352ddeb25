"""The archive/folder reader and `verify`: real sample, layouts, and every kind of bad input."""

import gzip
import hashlib
import os
import pickle
import tarfile

import numpy as np
import pytest

from archive_fixtures import (
    add_bytes, binary_records, python_batch, write_binary_archive, write_python_archive,
)
from cifar_tfx.data.errors import (
    CorruptArchiveError, MissingDataError, RecordError, UnsafeArchiveError, UnsafePickleError,
)
from cifar_tfx.data.reader import read_batches
from cifar_tfx.data.verify import verify


def test_real_sample_archives_counts_and_equal_digests(sample_archives):
    python = verify(sample_archives["python"])
    binary = verify(sample_archives["binary"])
    assert python["format"] == "python" and binary["format"] == "binary"
    for summary in (python, binary):
        assert summary["train"]["count"] == 500 and summary["test"]["count"] == 200
        assert summary["train"]["classes"] == [50] * 10
        assert summary["test"]["classes"] == [20] * 10
    assert python["train"]["digest"] == binary["train"]["digest"]
    assert python["test"]["digest"] == binary["test"]["digest"]
    assert python["train"]["digest"] != python["test"]["digest"]


def test_digest_is_sha256_of_hwc_bytes_then_label(sample_archives):
    # Recompute the test digest independently from the binary records' definition.
    with tarfile.open(sample_archives["binary"]) as tar:
        raw = tar.extractfile("cifar-10-batches-bin/test_batch.bin").read()
    records = np.frombuffer(raw, np.uint8).reshape(-1, 3073)
    digest = hashlib.sha256()
    for record in records:
        hwc = record[1:].reshape(3, 32, 32).transpose(1, 2, 0)
        digest.update(hwc.tobytes() + bytes([record[0]]))
    assert verify(sample_archives["binary"])["test"]["digest"] == digest.hexdigest()


def test_extracted_folder_equals_archive(sample_archives, tmp_path):
    for fmt, archive in sample_archives.items():
        with tarfile.open(archive) as tar:
            tar.extractall(tmp_path / fmt, filter="data")
        from_archive = verify(archive)
        for folder in (tmp_path / fmt, next((tmp_path / fmt).iterdir())):
            from_folder = verify(str(folder))
            assert from_folder["source"] == "folder"
            assert from_folder["train"] == from_archive["train"]
            assert from_folder["test"] == from_archive["test"]


def test_pixels_are_height_width_channel(tmp_path):
    data = np.zeros((1, 3072), np.uint8)
    data[0, :1024] = 200  # red plane
    data[0, 2048 + 5] = 7  # blue, row 0, column 5
    path = write_python_archive(str(tmp_path / "a.tar.gz"),
                                {"data_batch_1": python_batch(n=1, labels=[3], data=data)})
    _, batches = read_batches(path, ["train"])
    image = batches["train"][0].images[0]
    assert image.shape == (32, 32, 3) and image.dtype == np.uint8
    assert (image[..., 0] == 200).all() and image[0, 5, 2] == 7 and image[0, 4, 2] == 0
    assert batches["train"][0].labels.tolist() == [3]


# --- bad input ---------------------------------------------------------------------------


def test_missing_path():
    with pytest.raises(MissingDataError, match="no such file or directory: /no/such/archive"):
        verify("/no/such/archive")


def test_folder_without_batches(tmp_path):
    with pytest.raises(MissingDataError, match="holds no cifar10 batches"):
        verify(str(tmp_path))


def test_truncated_gzip(sample_archives, tmp_path):
    path = tmp_path / "cut.tar.gz"
    data = open(sample_archives["python"], "rb").read()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptArchiveError, match="truncated or corrupt"):
        verify(str(path))


def test_not_an_archive(tmp_path):
    path = tmp_path / "junk.tar.gz"
    path.write_bytes(b"this is not gzip at all" * 10)
    with pytest.raises(CorruptArchiveError, match="not a readable tar archive"):
        verify(str(path))


def test_member_escaping_the_folder_is_refused(tmp_path):
    path = write_python_archive(str(tmp_path / "evil.tar.gz"),
                                extra=[lambda tar: add_bytes(tar, "../x", b"owned")])
    with pytest.raises(UnsafeArchiveError, match=r"member '\.\./x' points outside"):
        verify(path)
    assert not (tmp_path.parent / "x").exists()


def test_member_in_another_folder_is_refused(tmp_path):
    path = write_python_archive(str(tmp_path / "evil.tar.gz"),
                                extra=[lambda tar: add_bytes(tar, "elsewhere/x", b"1")])
    with pytest.raises(UnsafeArchiveError, match="lies outside the archive's folder"):
        verify(path)


@pytest.mark.parametrize("kind, linkname, message", [
    (tarfile.SYMTYPE, "/etc/passwd", "is a link"),
    (tarfile.LNKTYPE, "cifar-10-batches-py/data_batch_1", "is a link"),
    (tarfile.CHRTYPE, "", "is a device"),
])
def test_link_and_device_members_are_refused(tmp_path, kind, linkname, message):
    def special(tar):
        info = tarfile.TarInfo("cifar-10-batches-py/extra")
        info.type = kind
        info.linkname = linkname
        tar.addfile(info)

    with pytest.raises(UnsafeArchiveError, match=message):
        verify(write_python_archive(str(tmp_path / "special.tar.gz"), extra=[special]))


def test_malicious_pickle_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    payload = pickle.dumps({"data": Evil(), "labels": [1]}, protocol=2)
    path = write_python_archive(str(tmp_path / "evil.tar.gz"), {"data_batch_3": payload})
    with pytest.raises(UnsafePickleError, match=r"asks for posix\.system"):
        verify(path)
    assert not marker.exists()
    # Sanity check of the test itself: the default unpickler would have run it.
    pickle.loads(payload)
    assert marker.exists()


def test_pickle_with_float_data_is_refused(tmp_path):
    batch = python_batch(n=2)
    batch["data"] = np.zeros((2, 3072), np.float32)
    path = write_python_archive(str(tmp_path / "f.tar.gz"), {"data_batch_1": batch})
    with pytest.raises(UnsafePickleError, match="numpy dtype 'f4'; only uint8"):
        verify(path)


def test_data_with_wrong_shape(tmp_path):
    batch = python_batch(n=2, data=np.zeros((2, 1024), np.uint8))
    path = write_python_archive(str(tmp_path / "s.tar.gz"), {"data_batch_2": batch})
    with pytest.raises(RecordError, match=r"data_batch_2: 'data' must be an N x 3072 uint8 array, got shape \(2, 1024\)"):
        verify(path)


def test_labels_count_mismatch(tmp_path):
    batch = python_batch(n=3)
    batch["labels"] = [1, 2]
    path = write_python_archive(str(tmp_path / "l.tar.gz"), {"data_batch_1": batch})
    with pytest.raises(RecordError, match="3 images but 2 labels"):
        verify(path)


def test_python_label_out_of_range(tmp_path):
    path = write_python_archive(str(tmp_path / "l.tar.gz"),
                                {"test_batch": python_batch(n=3, labels=[0, 10, 1])})
    with pytest.raises(RecordError, match="label 10 at record 1 is outside 0..9"):
        verify(path)


def test_binary_record_length_not_multiple(tmp_path):
    path = write_binary_archive(str(tmp_path / "b.tar.gz"),
                                {"data_batch_4.bin": binary_records([1, 2]) + b"\0" * 100})
    with pytest.raises(RecordError, match="6246 bytes is not a whole number of 3073-byte records"):
        verify(path)


def test_binary_label_byte_too_large(tmp_path):
    path = write_binary_archive(str(tmp_path / "b.tar.gz"), {"data_batch_1.bin": binary_records([3, 12])})
    with pytest.raises(RecordError, match="label 12 at record 1 is outside 0..9"):
        verify(path)


def test_empty_test_split(tmp_path):
    path = write_binary_archive(str(tmp_path / "b.tar.gz"), {"test_batch.bin": b""})
    with pytest.raises(RecordError, match="test_batch.bin: batch holds no records"):
        verify(path)


def test_missing_member(tmp_path):
    path = tmp_path / "m.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        add_bytes(tar, "cifar-10-batches-py/data_batch_1", pickle.dumps(python_batch(), protocol=2))
    with pytest.raises(CorruptArchiveError, match="lacks expected member.*data_batch_2"):
        verify(str(path))


def test_member_cut_short_inside_tar(tmp_path):
    # A tar whose last member claims more bytes than the stream holds.
    path = tmp_path / "short.tar.gz"
    write_python_archive(str(tmp_path / "full.tar"))
    raw = gzip.decompress(open(tmp_path / "full.tar", "rb").read())
    cut = raw[: raw.index(b"cifar-10-batches-py/test_batch") + 512 + 1000]
    path.write_bytes(gzip.compress(cut))
    with pytest.raises(CorruptArchiveError, match="truncated"):
        verify(str(path))
