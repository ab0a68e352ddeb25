"""Remote paths without a cloud: TensorFlow's in-memory ``ram://`` filesystem stands in for ``gs://``."""

import os

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from archive_fixtures import write_python_archive  # noqa: E402

from cifar_tfx import storage  # noqa: E402
from cifar_tfx.data.errors import MissingDataError  # noqa: E402
from cifar_tfx.data.reader import read_batches, source_fingerprint  # noqa: E402


def _upload(local_path, remote_path):
    storage.makedirs(os.path.dirname(remote_path))
    tf.io.gfile.copy(local_path, remote_path, overwrite=True)


def _upload_tree(local_dir, remote_dir):
    for folder, _, names in os.walk(local_dir):
        for name in names:
            path = os.path.join(folder, name)
            _upload(path, remote_dir + "/" + os.path.relpath(path, local_dir))


def test_is_remote():
    assert storage.is_remote("gs://bucket/x") and storage.is_remote("ram://x")
    assert not storage.is_remote("/data/x.tar.gz") and not storage.is_remote("file:///data/x")
    assert not storage.is_remote("relative/path")


def test_archive_and_folder_read_the_same_from_ram(tmp_path, small_synth):
    archive = write_python_archive(str(tmp_path / "cifar-10-python.tar.gz"))
    _upload(archive, "ram://bucket1/data/cifar-10-python.tar.gz")
    _upload_tree(small_synth, "ram://bucket1/synth")
    for local, remote in ((archive, "ram://bucket1/data/cifar-10-python.tar.gz"), (small_synth, "ram://bucket1/synth")):
        _, here = read_batches(local)
        source, there = read_batches(remote)
        for split in here:
            for a, b in zip(here[split], there[split]):
                np.testing.assert_array_equal(a.images, b.images)
                np.testing.assert_array_equal(a.labels, b.labels)
    assert source.kind == "folder"


def test_remote_fingerprint_follows_the_content_size(small_synth):
    _upload_tree(small_synth, "ram://bucket2/synth")
    before = source_fingerprint("ram://bucket2/synth")
    assert before == "|".join(f"{name}:{size}:0" for name, size in
                              sorted((os.path.relpath(os.path.join(f, n), small_synth),
                                      os.path.getsize(os.path.join(f, n)))
                                     for f, _, names in os.walk(small_synth) for n in names))
    member = "ram://bucket2/synth/cifar-10-batches-py/test_batch"
    with tf.io.gfile.GFile(member, "ab") as out:
        out.write(b"x")
    assert source_fingerprint("ram://bucket2/synth") != before


def test_missing_remote_data_is_a_data_error():
    with pytest.raises(MissingDataError, match="no such file or directory: ram://nowhere/x.tar.gz"):
        read_batches("ram://nowhere/x.tar.gz")


def _fake_saved_model(folder):
    files = {"saved_model.pb": b"graph", "fingerprint.pb": b"fp", "variables/variables.index": b"index",
             "variables/variables.data-00000-of-00001": b"weights" * 100, "assets/classes.txt": b"cat\ndog\n"}
    for name, payload in files.items():
        path = os.path.join(folder, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as out:
            out.write(payload)
    return files


def test_object_store_push_writes_saved_model_pb_last(tmp_path, monkeypatch):
    from cifar_tfx.components.serving_pusher import publish_version

    files = _fake_saved_model(str(tmp_path / "model"))
    written = []
    real_copy = storage._copy_file
    monkeypatch.setattr(storage, "_copy_file", lambda source, target: (written.append(target),
                                                                       real_copy(source, target)))
    assert publish_version(str(tmp_path / "model"), "ram://serving", "cifar10") == (1, "ram://serving/cifar10/1", "")
    assert written[-1] == "ram://serving/cifar10/1/saved_model.pb"
    assert sorted(written) == sorted(f"ram://serving/cifar10/1/{name}" for name in files)
    for name, payload in files.items():
        assert storage.read_bytes(f"ram://serving/cifar10/1/{name}") == payload
    assert publish_version(str(tmp_path / "model"), "ram://serving", "cifar10")[0] == 2
    config = storage.read_bytes("ram://serving/models.config").decode()
    assert 'base_path: "ram://serving/cifar10"' in config


def test_local_push_renames_a_whole_folder_into_place(tmp_path, monkeypatch):
    from cifar_tfx.components import serving_pusher

    files = _fake_saved_model(str(tmp_path / "model"))
    renames = []
    real_rename = os.rename
    monkeypatch.setattr(serving_pusher.os, "rename", lambda a, b: (renames.append((a, b)), real_rename(a, b)))
    version, path, _ = serving_pusher.publish_version(str(tmp_path / "model"), str(tmp_path / "serving"), "cifar10")
    assert (version, path) == (1, str(tmp_path / "serving" / "cifar10" / "1"))
    [(staging, target)] = renames
    assert os.path.basename(staging).startswith(".staging-1-") and target == path
    assert sorted(os.listdir(tmp_path / "serving" / "cifar10")) == ["1"]
    for name, payload in files.items():
        assert (tmp_path / "serving" / "cifar10" / "1" / name).read_bytes() == payload
