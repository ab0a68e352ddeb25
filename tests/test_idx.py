"""Fashion-MNIST's IDX files: read like the real ones, refused when broken or hostile."""

import gzip
import os

import numpy as np
import pytest
from archive_fixtures import idx_bytes, write_idx_folder

from cifar_tfx.data.datasets import FASHION_MNIST
from cifar_tfx.data.errors import CorruptArchiveError, MissingDataError, RecordError
from cifar_tfx.data.reader import read_batches
from cifar_tfx.data.verify import verify

REAL = "/usr/share/datasets/fashion-mnist"  # Debian package dataset-fashion-mnist


@pytest.mark.parametrize("gz", [True, False])
def test_reads_images_and_labels_in_order(tmp_path, gz):
    folder = write_idx_folder(tmp_path / "f", gz=gz, seed=3)
    source, batches = read_batches(folder, spec=FASHION_MNIST)
    assert (source.kind, source.fmt) == ("folder", "idx")
    [train] = batches["train"]
    assert train.images.shape == (12, 28, 28, 1) and train.labels.tolist() == [i % 10 for i in range(12)]
    rng = np.random.default_rng(3)
    np.testing.assert_array_equal(train.images[..., 0], rng.integers(0, 256, (12, 28, 28), dtype=np.uint8))


def test_verify_counts_per_class(tmp_path):
    summary = verify(write_idx_folder(tmp_path / "f", train=(20, 0), test=(10, 0)), FASHION_MNIST)
    assert summary["format"] == "idx" and summary["train"]["count"] == 20
    assert summary["train"]["classes"] == [2] * 10 and summary["test"]["classes"] == [1] * 10


def _labels(values):
    return idx_bytes(np.array(values, dtype=np.uint8))


@pytest.mark.parametrize("name, payload, error, message", [
    ("train-images-idx3-ubyte", b"\x00\x00\x08\x03\x00\x00", CorruptArchiveError, "truncated: header"),
    ("train-images-idx3-ubyte", idx_bytes(np.zeros((12, 28, 28), np.uint8), type_byte=0x0D),
     RecordError, "not an IDX file of unsigned bytes"),
    ("train-images-idx3-ubyte", idx_bytes(np.zeros((12, 32, 32), np.uint8)), RecordError,
     "items are 32x32, the dataset's are 28x28"),
    ("train-images-idx3-ubyte", idx_bytes(np.zeros((12, 28, 28), np.uint8))[:-5], CorruptArchiveError,
     "truncated: 12 items need 9,408 bytes, the file has 9,403"),
    ("train-images-idx3-ubyte", idx_bytes(np.zeros((12, 28, 28), np.uint8)) + b"x", RecordError,
     "goes on past the 12 items"),
    ("train-images-idx3-ubyte", bytes([0, 0, 8, 3]) + (2**31).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2,
     RecordError, "declares 2,147,483,648 items"),
    ("train-labels-idx1-ubyte", _labels([0] * 11), RecordError, "holds 12 images but .* 11 labels"),
    ("train-labels-idx1-ubyte", _labels([0] * 11 + [10]), RecordError, "label 10 at record 11 is outside 0..9"),
    ("t10k-labels-idx1-ubyte", idx_bytes(np.zeros((5, 2), np.uint8)), RecordError, "2 dimensions, expected 1"),
])
def test_broken_files_are_refused_with_their_name(tmp_path, name, payload, error, message):
    folder = write_idx_folder(tmp_path / "f", overrides={name: payload})
    with pytest.raises(error, match=message) as info:
        read_batches(folder, spec=FASHION_MNIST)
    assert "f/" in str(info.value) or "(train)" in str(info.value)


def test_corrupt_gzip_and_missing_file(tmp_path):
    folder = write_idx_folder(tmp_path / "f")
    path = os.path.join(folder, "t10k-images-idx3-ubyte.gz")
    raw = bytearray(open(path, "rb").read())
    raw[-6] ^= 0xFF  # inside the CRC32 trailer
    open(path, "wb").write(bytes(raw))
    with pytest.raises(CorruptArchiveError, match="t10k-images-idx3-ubyte.gz is truncated or corrupt"):
        read_batches(folder, spec=FASHION_MNIST)
    os.remove(path)
    with pytest.raises(MissingDataError, match="lacks t10k-images-idx3-ubyte"):
        read_batches(folder, spec=FASHION_MNIST)


def test_an_archive_is_not_fashion_mnist(tmp_path):
    path = tmp_path / "x.tar.gz"
    path.write_bytes(gzip.compress(b"x"))
    with pytest.raises(MissingDataError, match="read from the folder that holds its IDX files"):
        read_batches(str(path), spec=FASHION_MNIST)


def test_a_folder_of_the_other_datasets_files_names_the_right_dataset(tmp_path):
    fashion = write_idx_folder(tmp_path / "fashion")
    with pytest.raises(MissingDataError, match=r"holds no cifar10 batches: .* \(it holds fashion_mnist data: "
                                               r"--dataset fashion_mnist\)$"):
        verify(fashion)
    cifar = tmp_path / "cifar" / "cifar-10-batches-py"
    cifar.mkdir(parents=True)
    (cifar / "data_batch_1").write_bytes(b"")
    with pytest.raises(MissingDataError, match=r"holds no fashion_mnist IDX files: .* \(it holds cifar10 data: "
                                               r"--dataset cifar10\)$"):
        verify(str(tmp_path / "cifar"), FASHION_MNIST)
    with pytest.raises(MissingDataError, match=r"holds no cifar10 batches: [^(]*$"):  # no hint when nothing is there
        verify(str(tmp_path))


@pytest.mark.skipif(not os.path.isdir(REAL), reason="apt package dataset-fashion-mnist is not installed")
def test_real_fashion_mnist():
    summary = verify(REAL, FASHION_MNIST)
    assert summary["train"]["classes"] == [6000] * 10 and summary["test"]["classes"] == [1000] * 10
