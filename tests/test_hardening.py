"""Hostile and careless input: each case reproduces a failure of an earlier version and checks the refusal."""

import dataclasses
import gzip
import io
import os
import pickle
import re
import signal
import subprocess
import sys
import tarfile
import time
import zlib

import numpy as np
import pytest
from archive_fixtures import python_batch, write_python_archive

from cifar_tfx.cli import EXIT_BAD_INPUT, main
from cifar_tfx.data.datasets import CIFAR10
from cifar_tfx.data.errors import CorruptArchiveError, RecordError, UnsafePickleError
from cifar_tfx.data.reader import read_batches
from cifar_tfx.data.safe_pickle import MAX_ARRAY_BYTES, safe_loads
from cifar_tfx.data.verify import verify
from cifar_tfx.serving.model_config import LOCK_FILE

MINI = os.path.join(os.path.dirname(__file__), "data", "cifar10-mini", "cifar-10-python.tar.gz")

# --- 1. silent corruption ---------------------------------------------------------------


def _damaged_stored_archive(tmp_path, damage):
    """A python-layout archive gzipped without compression (bytes sit where the tar has them),
    then ``damage(gz_bytes, position_of)`` applied, where ``position_of(marker, skip)`` is the
    offset in the .gz of the tar bytes ``skip`` past ``marker``."""
    write_python_archive(str(tmp_path / "a.tar.gz"))
    raw = gzip.decompress(open(tmp_path / "a.tar.gz", "rb").read())
    data = bytearray(gzip.compress(raw, compresslevel=0))

    def position_of(marker: bytes, skip: int = 0) -> int:
        offset = raw.index(marker) + skip
        return data.index(raw[offset:offset + 64])

    damage(data, position_of)
    path = tmp_path / "damaged.tar.gz"
    path.write_bytes(bytes(data))
    return str(path)


def _flip(data, *positions):
    for position in positions:
        data[position] ^= 0xFF


def test_wrong_gzip_crc_is_corruption(tmp_path):
    path = _damaged_stored_archive(tmp_path, lambda data, at: _flip(data, len(data) - 8))  # the trailer's CRC-32
    with pytest.raises(CorruptArchiveError, match="gzip checksum does not match"):
        verify(path)


def test_two_flipped_pixel_bytes_are_caught(tmp_path):
    # Inside data_batch_3's pixels: the tar and pickle structure stay valid.
    def damage(data, at):
        where = at(b"cifar-10-batches-py/data_batch_3", 512 + 1000)
        _flip(data, where, where + 1)

    with pytest.raises(CorruptArchiveError, match="corrupt"):
        verify(_damaged_stored_archive(tmp_path, damage))


def test_corrupt_middle_is_reported_as_corruption_not_missing_members(tmp_path):
    def damage(data, at):  # wipe data_batch_4's tar header
        where = at(b"cifar-10-batches-py/data_batch_4")
        data[where:where + 100] = b"\0" * 100

    with pytest.raises(CorruptArchiveError) as info:
        verify(_damaged_stored_archive(tmp_path, damage))
    assert "lacks expected" not in str(info.value) and "corrupt" in str(info.value)


def test_damaged_pickle_is_reported_as_corruption_not_as_a_bad_batch(tmp_path):
    # Batches are parsed while the archive still inflates: a flipped pickle opcode must not
    # hide the checksum failure behind a pickle or record error.
    def damage(data, at):
        where = at(b"cifar-10-batches-py/data_batch_2", 512 + 2)  # the first opcodes after PROTO
        _flip(data, where, where + 1)

    with pytest.raises(CorruptArchiveError, match="gzip checksum does not match"):
        verify(_damaged_stored_archive(tmp_path, damage))


# --- 4. memory ---------------------------------------------------------------------------


def test_member_larger_than_any_batch_is_refused_before_reading(tmp_path):
    archive = write_python_archive(str(tmp_path / "a.tar.gz"), batches={"data_batch_1": python_batch(n=400)})
    tiny = dataclasses.replace(CIFAR10, max_batch_examples=1)  # a 400-image member is now "too big"
    with pytest.raises(RecordError, match="declares .* bytes; a batch of this dataset holds at most"):
        read_batches(archive, spec=tiny)
    assert CIFAR10.max_batch_bytes < 200 * 2**20


def test_bomb_member_is_refused_in_bounded_memory(tmp_path):
    """A 1 GiB member (1 MB compressed) is refused without being inflated."""
    path = tmp_path / "bomb.tar.gz"
    with tarfile.open(path, "w:gz", compresslevel=1) as tar:
        info = tarfile.TarInfo("cifar-10-batches-py/data_batch_1")
        info.size = 2**30
        tar.addfile(info, _Zeros(2**30))
    # VmHWM, the child's own peak (ru_maxrss would carry the parent's across fork+exec).
    code = ("import sys; from cifar_tfx.data.verify import verify\n"
            "try: verify(sys.argv[1])\nexcept Exception as e: print(type(e).__name__, e)\n"
            "print([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0])")
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True).stdout
    message, peak_kb = out.strip().rsplit("\n", 1)
    assert message.startswith("RecordError") and "declares 1,073,741,824 bytes" in message
    assert int(peak_kb) < 300_000, f"peak RSS {int(peak_kb) // 1024} MiB"


class _Zeros(io.RawIOBase):
    def __init__(self, size):
        self.left = size

    def readinto(self, buffer):
        n = min(len(buffer), self.left)
        buffer[:n] = b"\0" * n
        self.left -= n
        return n


class _HugeArray:
    """Pickles as numpy's own array pickling would, declaring a 10**11-byte array with 3 bytes of data."""

    def __reduce__(self):
        from numpy.core.multiarray import _reconstruct

        return _reconstruct, (np.ndarray, (0,), b"b"), (1, (10**11,), np.dtype("u1"), False, b"abc")


class _DirectNdarray:
    def __reduce__(self):
        return np.ndarray, ((10**11,), "u1")


@pytest.mark.parametrize("payload, message", [
    (_HugeArray(), "declares shape \\(100000000000,\\)"),
    (_DirectNdarray(), "calls numpy.ndarray directly"),
])
def test_pickled_array_cannot_allocate_what_it_declares(payload, message):
    with pytest.raises(UnsafePickleError, match=message):
        safe_loads(pickle.dumps({"data": payload}, protocol=2))
    assert MAX_ARRAY_BYTES < 2**30


# --- 7. messages -------------------------------------------------------------------------


def test_pickle_refusal_names_the_member(tmp_path):
    evil = pickle.dumps({"data": _DirectNdarray()}, protocol=2)
    archive = write_python_archive(str(tmp_path / "a.tar.gz"), batches={"data_batch_2": evil})
    with pytest.raises(UnsafePickleError, match="a.tar.gz:cifar-10-batches-py/data_batch_2: pickle calls"):
        read_batches(archive)


def test_empty_bytes_in_a_protocol_2_pickle_are_plain_data():
    batch = python_batch()
    batch["batch_label"] = b""
    assert safe_loads(pickle.dumps(batch, protocol=2))["batch_label"] == b""


@pytest.mark.slow
def test_bad_data_inside_the_pipeline_is_bad_input_with_the_file_name(tmp_path, capsys):
    pytest.importorskip("tfx")
    archive = tmp_path / "cifar-10-python.tar.gz"
    write_python_archive(str(archive))
    raw = bytearray(archive.read_bytes())
    archive.write_bytes(bytes(raw[: len(raw) - 40]))  # the end of the stream is gone
    code = main(["run", "--data", str(archive), "--pipeline-root", str(tmp_path / "p"),
                 "--serving-dir", str(tmp_path / "s")])
    last = capsys.readouterr().err.strip().splitlines()[-1]  # after the per-component lines
    assert code == EXIT_BAD_INPUT
    assert last.startswith("error: ") and str(archive) in last


# --- 5. values that waste a run ----------------------------------------------------------


@pytest.mark.parametrize("args, message", [
    (["--epochs", "-3"], "epochs must be within \\[0.001, 10000\\], got -3.0"),
    (["--epochs", "nan"], "epochs must be a finite number, got nan"),
    (["--epochs", "inf"], "epochs must be a finite number, got inf"),
    (["--train-steps", "0"], "train_steps must be within \\[1, 1e\\+08\\], got 0"),
    (["--learning-rate", "-0.1"], "learning_rate must be within \\[1e-06, 10\\], got -0.1"),
    (["--min-accuracy", "2"], "min_accuracy must be within \\[0, 1\\]"),
    (["--max-regression", "-1"], "max_regression must be within \\[0, 1\\]"),
    (["--min-class-accuracy", "1.5"], "min_class_accuracy must be within \\[0, 1\\]"),
    (["--cutout-size", "40"], "cutout_size 40 is larger than the 32x32 images"),
    (["--depth", "57"], "depth must be 6n\\+2"),
    (["--architecture", "resnet9", "--depth", "20"], "depth is for the resnet architecture; resnet9 has none"),
    (["--time-budget-minutes", "0"], "time_budget_minutes must be within \\[0.01, 10080\\], got 0.0"),
    # Values that would start a week-long run or exhaust memory are refused before anything starts.
    (["--epochs", "1e12"], "epochs must be within \\[0.001, 10000\\]"),
    (["--train-steps", "99999999999999999999"], "train_steps must be within \\[1, 1e\\+08\\]"),
    (["--time-budget-minutes", "1e9"], "time_budget_minutes must be within \\[0.01, 10080\\]"),
    (["--learning-rate", "1e308"], "learning_rate must be within \\[1e-06, 10\\]"),
    (["--batch-size", "10000000"], "batch_size must be within \\[1, 8192\\]"),
    (["--depth", "nan"], "--depth must be a whole number, got 'nan'"),
    (["--pipeline-name", "../../x"], "--pipeline-name '../../x' must be letters"),
    (["--model-name", 'cifar"x'], "model name 'cifar\"x' is not usable"),
    (["--serving-dir", "README.md"], "--serving-dir README.md is a file"),
])
def test_bad_run_values_exit_2_before_anything_runs(args, message, capsys, tmp_path):
    code = main(["run", "--data", MINI, "--pipeline-root", str(tmp_path / "p"), *args])
    assert code == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert re.search(message, err), err
    assert not (tmp_path / "p").exists()


def test_synth_refuses_negative_counts_and_paths_under_files(tmp_path, capsys):
    assert main(["data", "synth", "--out", str(tmp_path), "--train", "-5"]) == EXIT_BAD_INPUT
    (tmp_path / "file").write_text("x")
    assert main(["data", "synth", "--out", str(tmp_path / "file" / "sub")]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "--train -5: training images must be a whole number from 1 to 50,000" in err
    assert "sub cannot be created" in err and "is a file, not a folder" in err


# --- 2. models.config --------------------------------------------------------------------


def _fake_saved_model(folder):
    os.makedirs(os.path.join(folder, "variables"))
    for name in ("saved_model.pb", "variables/variables.index"):
        with open(os.path.join(folder, name), "wb") as out:
            out.write(b"x")
    return folder


HAND_WRITTEN = """
model_config_list {
  config {
    name: "resnet_old"
    base_path: "/models/resnet_old"
    model_platform: "tensorflow"
  }
  config {
    name: "cifar10"
    base_path: "/elsewhere/cifar10"
    model_platform: "tensorflow"
    model_version_policy { specific { versions: 1 versions: 2 } }
    version_labels { key: "stable" value: 1 }
  }
}
"""


def test_push_edits_models_config_and_keeps_everything_else(tmp_path):
    pytest.importorskip("tensorflow_serving")
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    from cifar_tfx.components.serving_pusher import publish_version

    serving = tmp_path / "serving"
    serving.mkdir()
    (serving / "models.config").write_text(HAND_WRITTEN)
    publish_version(_fake_saved_model(str(tmp_path / "m")), str(serving), "cifar10")
    config = text_format.Parse((serving / "models.config").read_text(), model_server_config_pb2.ModelServerConfig())
    entries = {entry.name: entry for entry in config.model_config_list.config}
    assert set(entries) == {"resnet_old", "cifar10"}
    assert entries["resnet_old"].base_path == "/models/resnet_old"
    assert entries["cifar10"].base_path == str(serving / "cifar10")
    assert list(entries["cifar10"].model_version_policy.specific.versions) == [1, 2]
    assert dict(entries["cifar10"].version_labels) == {"stable": 1}


def test_unreadable_models_config_stops_the_push_before_anything_is_written(tmp_path):
    pytest.importorskip("tensorflow_serving")
    from cifar_tfx.components.serving_pusher import publish_version

    serving = tmp_path / "serving"
    serving.mkdir()
    (serving / "models.config").write_text("model_config_list { config { name: ")
    with pytest.raises(ValueError, match="not a ModelServerConfig TF Serving can read"):
        publish_version(_fake_saved_model(str(tmp_path / "m")), str(serving), "cifar10")
    assert sorted(os.listdir(serving)) == [LOCK_FILE, "models.config"]  # the (empty) lock file only


def test_concurrent_pushes_get_distinct_versions_and_keep_every_config_edit(tmp_path):
    pytest.importorskip("tensorflow_serving")
    import threading

    from cifar_tfx.components.serving_pusher import publish_version
    from cifar_tfx.serving.model_config import read_models_config

    serving = tmp_path / "serving"
    models = [_fake_saved_model(str(tmp_path / f"m{i}")) for i in range(6)]
    published, barrier = [], threading.Barrier(len(models))

    def push(index):
        barrier.wait()
        published.append(publish_version(models[index], str(serving), f"model{index % 3}")[0])

    threads = [threading.Thread(target=push, args=(i,)) for i in range(len(models))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(published) == [1, 1, 1, 2, 2, 2], "two pushes per model, numbered 1 and 2"
    config = read_models_config(str(serving / "models.config"))
    assert sorted(e.name for e in config.model_config_list.config) == ["model0", "model1", "model2"]


def test_a_push_removes_staging_folders_a_killed_push_left(tmp_path):
    from cifar_tfx.components.serving_pusher import publish_version

    serving = tmp_path / "serving"
    (serving / "cifar10" / ".staging-1-abc123").mkdir(parents=True)  # a Pusher killed during its copy
    (serving / "cifar10" / ".staging-1-abc123" / "variables").mkdir()
    assert publish_version(_fake_saved_model(str(tmp_path / "m")), str(serving), "cifar10")[0] == 1
    assert sorted(os.listdir(serving / "cifar10")) == ["1"]


@pytest.mark.parametrize("name", ['cifar"x', "", "../up", "a b", "-dash"])
def test_model_names_tf_serving_cannot_take_are_refused(name):
    from cifar_tfx.serving.model_config import check_model_name

    with pytest.raises(ValueError, match="is not usable"):
        check_model_name(name)


# --- 3. one run per pipeline root --------------------------------------------------------


def test_second_run_on_a_busy_root_is_refused_at_once(tmp_path, capsys):
    from cifar_tfx.pipeline.local_runner import exclusive_root

    with exclusive_root(str(tmp_path / "root")):
        code = main(["run", "--data", MINI, "--pipeline-root", str(tmp_path / "root"),
                     "--serving-dir", str(tmp_path / "s")])
    err = capsys.readouterr().err
    assert code == EXIT_BAD_INPUT
    assert f"pipeline root {tmp_path / 'root'} is in use by pid {os.getpid()}" in err
    assert sorted(os.listdir(tmp_path / "root")) == [".run.lock"], "a refused run writes no log"
    with exclusive_root(str(tmp_path / "root")):  # free again once the holder is done
        pass


# --- 6. predict: one error line, never a traceback ----------------------------------------


class _RawServer:
    """A TCP server on 127.0.0.1 that answers every connection with ``respond(socket)``."""

    def __init__(self, respond):
        import socket
        import threading

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.respond = respond
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                try:
                    self.respond(conn)
                except OSError:
                    pass

    def close(self):
        self.sock.close()


def _drip(conn):
    import time

    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
    for _ in range(100):  # one byte a second: each read is quick, the whole answer is not
        conn.sendall(b" ")
        time.sleep(0.2)


@pytest.mark.parametrize("respond, message", [
    (lambda conn: None, "broke off the answer"),
    (lambda conn: conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 15\r\n\r\n<html>hi</html>"),
     "did not answer JSON"),
    (lambda conn: conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 35\r\n\r\n" + b'{"predictions": [{"scores": [1]}]}\n'),
     "each prediction needs 'probabilities'"),
    (_drip, "no answer from .* within 1 s \\(the whole request\\)"),
])
def test_predict_server_faults_are_one_error_line(tmp_path, capsys, respond, message):
    png = _png(tmp_path)
    server = _RawServer(respond)
    try:
        code = main(["predict", png, "--server", server.url, "--timeout", "1"])
    finally:
        server.close()
    err = capsys.readouterr().err
    assert code == EXIT_BAD_INPUT and err.count("\n") == 1, err
    assert re.search(message, err), err


def _png(tmp_path, size=(32, 32)):
    from PIL import Image

    path = tmp_path / f"img{size[0]}.png"
    Image.new("RGB", size).save(path)
    return str(path)


@pytest.mark.parametrize("args, message", [
    (["--batch-size", "0"], "--batch-size and --top-k must be >= 1"),
    (["--top-k", "-1"], "--batch-size and --top-k must be >= 1"),
    (["--server", "http://[::1"], "is not a usable URL|cannot send to"),
    (["--saved-model", "/nonexistent/model"], "is not a loadable SavedModel"),
])
def test_predict_bad_arguments_are_one_error_line(tmp_path, capsys, args, message):
    code = main(["predict", _png(tmp_path), *args])
    err = capsys.readouterr().err
    assert code == EXIT_BAD_INPUT and err.count("\n") == 1, err
    assert re.search(message, err), err


@pytest.mark.parametrize("side", [5000, 30000])  # over our limit only; over PIL's own limit too
def test_decompression_bomb_header_is_refused_before_decoding(tmp_path, capsys, side):
    import struct

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0))
    path = tmp_path / "bomb.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + header + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))
    code = main(["predict", str(path), "--resize", "--print-request"])
    err = capsys.readouterr().err
    assert code == EXIT_BAD_INPUT and err.count("\n") == 1, err
    assert re.search(r"bomb.png declares .*pixels.*; refused before decoding", err), err


def _make_not_an_image(path, kind):
    if kind == "folder":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)  # reading it would wait forever for a writer
    elif kind == "sparse":
        with open(path, "wb") as handle:  # 1 GiB on paper, nothing on disk; reading it would take the memory
            handle.truncate(2**30)
    else:
        path.write_bytes({"empty": b"", "text": b"hello"}[kind])


@pytest.mark.parametrize("kind, message", [
    ("empty", "is not a readable image: the file is empty"),
    ("text", "is not a readable image: not a format PIL recognises"),
    ("folder", "is a folder, not an image file"),
    ("fifo", "is not a regular file"),
    ("sparse", "holds 1,073,741,824 bytes, more than any image of at most 16,777,216 pixels"),
    ("under_a_file", "cannot be read: Not a directory"),
])
def test_an_image_that_is_not_one_is_one_line_naming_the_file(tmp_path, capsys, kind, message):
    path = tmp_path / "cat.png"
    if kind == "under_a_file":  # a path through a file: …/photo.jpg/cat.png
        (tmp_path / "photo.jpg").write_bytes(b"")
        path = tmp_path / "photo.jpg" / "cat.png"
    else:
        _make_not_an_image(path, kind)
    code = main(["predict", str(path), "--print-request"])
    err = capsys.readouterr().err
    assert code == EXIT_BAD_INPUT and err.count("\n") == 1, err
    assert f"cat.png {message}" in err and "BytesIO" not in err, err


def test_ctrl_c_is_one_line_and_exit_130(monkeypatch, capsys):
    import cifar_tfx.data.verify as verify_module

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(verify_module, "verify", interrupted)
    assert main(["data", "verify", MINI]) == 130
    assert capsys.readouterr().err == "interrupted\n"


@pytest.mark.parametrize("signum, code, word", [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")])
def test_a_stop_signal_whose_exception_a_library_lost_still_ends_as_the_stop(monkeypatch, tmp_path, capsys, signum,
                                                                             code, word):
    """A signal landing inside TensorFlow's C++ code can leave only an unrelated error behind (seen: an eager
    ``TypeError`` with no interrupt in its chain); the run still ends as interrupted / terminated."""
    import cifar_tfx.pipeline.local_runner as local_runner

    def signal_then_unrelated_error(run):
        try:
            os.kill(os.getpid(), signum)
            time.sleep(5)  # the handler raises here
        except BaseException:  # noqa: BLE001 - what a library that swallows the interrupt does
            pass
        raise TypeError("Expected `context` argument in EagerTensor constructor to have a `_handle` attribute")

    monkeypatch.setattr(local_runner, "run_holding_root", signal_then_unrelated_error)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal, even under xdist
    previous_term = signal.getsignal(signal.SIGTERM)
    try:
        assert main(["run", "--data", MINI, "--pipeline-root", str(tmp_path / "root"),
                     "--serving-dir", str(tmp_path / "serving")]) == code
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler, "the handlers are put back"
        assert signal.getsignal(signal.SIGTERM) is previous_term
    finally:
        signal.signal(signal.SIGINT, previous)
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1] == word and "pipeline failed" not in err, err


# --- 8. well-formed but wrong data --------------------------------------------------------


def test_verify_reports_duplicates_within_and_across_splits(tmp_path):
    first = python_batch(n=10, seed=1)
    archive = write_python_archive(str(tmp_path / "a.tar.gz"), batches={
        "data_batch_2": first, "data_batch_3": first,  # a batch shipped twice
        "test_batch": python_batch(n=10, seed=1)})      # the test split equals a training batch
    report = verify(archive)["duplicates"]
    assert report == {"within_train": 10, "within_test": 0, "test_in_train": 10}


def test_leakage_stops_ingestion_but_a_few_duplicates_pass(tmp_path):
    from cifar_tfx.components.example_gen import check_splits
    from cifar_tfx.data.errors import DataLeakageError

    leaky = write_python_archive(str(tmp_path / "leaky.tar.gz"), batches={"test_batch": python_batch(n=4, seed=1)})
    with pytest.raises(DataLeakageError, match="4 of 4 test images also occur in the training split"):
        check_splits(leaky, CIFAR10, 0.01)
    test = python_batch(n=200, seed=99)
    test["data"][0] = python_batch(n=4, seed=1)["data"][0]  # one copied image of 200: 0.5 %
    fine = write_python_archive(str(tmp_path / "fine.tar.gz"), batches={"test_batch": test})
    duplicates, counts = check_splits(fine, CIFAR10, 0.01)
    assert duplicates["test_in_train"] == 1 and counts["test"] == 200


# --- report on what is not a run creates nothing and prints one line ---------------------------


@pytest.mark.parametrize("make, message", [
    (lambda root: None, "holds no metadata.sqlite"),
    (lambda root: root.write_text("a file"), "is a file: give the --pipeline-root folder"),
    (lambda root: (root.mkdir(), (root / "metadata.sqlite").write_bytes(bytes(range(256)) * 20)),
     "metadata.sqlite is no ML Metadata store SQLite can read (file is not a database)"),
])
def test_report_on_what_is_not_a_run_is_one_line_and_creates_nothing(make, message, tmp_path, capsys):
    root = tmp_path / "root"
    make(root)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    assert main(["report", str(root)]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err, err
    assert sorted(p.name for p in tmp_path.rglob("*")) == before, "nothing created"


# --- pickles that describe more than they hold; folder files larger than a batch -----------------


def _exponential_pickle(levels=40):
    """About 400 bytes: each level holds the level below twice (the pickle memo), 2**levels items if copied."""
    node = [b"x"]
    for _ in range(levels):
        node = [node, node]
    return pickle.dumps({b"data": node, b"labels": node}, protocol=2)


def _deep_pickle(levels=100_000):
    return b"\x80\x02" + b"]" * levels + b"a" * (levels - 1) + b"."  # EMPTY_LIST x N, APPEND x N-1


@pytest.mark.parametrize("data", [_exponential_pickle(), _deep_pickle()], ids=["exponential", "deep"])
def test_pickles_that_nest_or_share_without_end_are_refused_at_once(data):
    with pytest.raises(UnsafePickleError, match="nests containers more than 8 deep"):
        safe_loads(data)


def test_shared_references_stay_shared_instead_of_being_copied():
    row = list(range(1000))
    loaded = safe_loads(pickle.dumps({b"labels": [row] * 1000}, protocol=2))  # 10**6 items if copied
    assert loaded[b"labels"][0] is loaded[b"labels"][999]


def test_a_folder_batch_file_larger_than_any_batch_is_refused_before_it_is_read(tmp_path, capsys):
    from cifar_tfx.data.synth import write_dataset

    write_dataset(str(tmp_path), train=50, test=10, seed=1)
    batch = tmp_path / "cifar-10-batches-py" / "data_batch_1"
    with open(batch, "ab") as handle:  # a valid pickle, then 1 GiB of zeros (sparse: no disk used)
        handle.truncate(batch.stat().st_size + (1 << 30))
    assert main(["data", "verify", str(tmp_path)]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "data_batch_1 has 1,07" in err and "holds at most" in err, err
