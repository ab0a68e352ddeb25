"""Paths that are no regular file, URIs no installed filesystem opens, roots that cannot be written or whose
ML Metadata store is damaged: each is one error line and exit 2, at once, with nothing created."""

import contextlib
import os
import signal

import pytest

from cifar_tfx.cli import EXIT_BAD_INPUT, main
from cifar_tfx.data.synth import write_dataset


@contextlib.contextmanager
def _deadline(seconds):
    """Fail instead of hanging: SIGALRM interrupts a blocked ``open`` of a FIFO in this thread."""

    def expire(signum, frame):
        raise TimeoutError(f"still blocked after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _one_error_line(capsys, *expected):
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    for text in expected:
        assert text in err, err
    return err


def test_a_fifo_as_data_is_refused_at_once(tmp_path, capsys):
    fifo = tmp_path / "cifar-10-python.tar.gz"
    os.mkfifo(fifo)
    with _deadline(5):
        assert main(["data", "verify", str(fifo)]) == EXIT_BAD_INPUT
    _one_error_line(capsys, str(fifo), "not a regular file")


def test_a_fifo_as_a_batch_file_of_a_folder_is_refused_at_once(tmp_path, capsys):
    write_dataset(str(tmp_path), train=50, test=10, seed=4)
    batch = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    batch.unlink()
    os.mkfifo(batch)
    with _deadline(5):
        assert main(["data", "verify", str(tmp_path)]) == EXIT_BAD_INPUT
    _one_error_line(capsys, "data_batch_3", "not a regular file")


def test_a_fifo_among_fashion_mnist_idx_files_is_refused_at_once(tmp_path, capsys):
    for name in ("train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (tmp_path / name).write_bytes(b"")
    os.mkfifo(tmp_path / "train-images-idx3-ubyte")
    with _deadline(5):
        assert main(["data", "verify", str(tmp_path), "--dataset", "fashion_mnist"]) == EXIT_BAD_INPUT
    _one_error_line(capsys, "train-images-idx3-ubyte", "not a regular file")


@pytest.mark.parametrize("uri", ["s3://bucket/cifar", "hdfs://namenode/cifar", "foo://x/y"])
def test_a_scheme_no_filesystem_opens_is_one_line_saying_what_works(uri, capsys):
    assert main(["data", "verify", uri]) == EXIT_BAD_INPUT
    scheme = uri.split("://")[0]
    _one_error_line(capsys, uri, f"{scheme}:// is not a filesystem this installation can open", "gs://",
                    "mount the bucket")


@pytest.mark.parametrize("option, value, message", [
    ("--data", "s3://bucket/cifar", "s3:// is not a filesystem"),
    ("--serving-dir", "s3://bucket/models", "--serving-dir s3://bucket/models: s3:// is not a filesystem"),
    ("--pipeline-root", "s3://bucket/root", "--pipeline-root s3://bucket/root: must be a local folder"),
    ("--pipeline-root", "/proc/cifar-run", "--pipeline-root /proc/cifar-run cannot be created or written"),
])
def test_run_refuses_roots_it_cannot_use_before_anything_is_created(option, value, message, tmp_path,
                                                                    monkeypatch, capsys):
    write_dataset(str(tmp_path / "data"), train=50, test=10, seed=4)
    monkeypatch.chdir(tmp_path)
    args = {"--data": str(tmp_path / "data"), "--pipeline-root": "root", "--serving-dir": "serving"}
    args[option] = value
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    assert main(["run", *[x for pair in args.items() for x in pair]]) == EXIT_BAD_INPUT
    _one_error_line(capsys, message)
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before, "nothing created (no ./s3:/bucket/root)"


def test_a_metadata_store_of_random_bytes_is_one_line_naming_it(tmp_path, monkeypatch, capsys):
    write_dataset(str(tmp_path / "data"), train=50, test=10, seed=4)
    root = tmp_path / "root"
    root.mkdir()
    (root / "metadata.sqlite").write_bytes(os.urandom(4096))
    assert main(["run", "--data", str(tmp_path / "data"), "--pipeline-root", str(root),
                 "--serving-dir", str(tmp_path / "serving")]) == EXIT_BAD_INPUT
    err = _one_error_line(capsys, str(root / "metadata.sqlite"), "move it aside")
    assert "SELECT" not in err and "query" not in err
    assert sorted(p.name for p in root.iterdir()) == ["metadata.sqlite"], "no lock, no log"


@pytest.mark.parametrize("make_out, message", [
    (lambda tmp: tmp / "a-file" / "report.html", "a-file is a file, not a folder"),
    (lambda tmp: tmp, "is a folder; give the path of a file"),
])
def test_report_out_that_cannot_be_written_is_one_line(make_out, message, tmp_path, capsys, run_root):
    (tmp_path / "a-file").write_text("x")
    assert main(["report", str(run_root), "--out", str(make_out(tmp_path)), "--verbose"]) == EXIT_BAD_INPUT
    _one_error_line(capsys, "--out", message)


def test_report_on_a_read_only_root_is_one_line(tmp_path, capsys, run_root, monkeypatch):
    import tempfile

    def read_only(*args, **kwargs):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(tempfile, "mkdtemp", read_only)
    assert main(["report", str(run_root)]) == EXIT_BAD_INPUT
    _one_error_line(capsys, "report folder", "Read-only file system")


@pytest.fixture
def run_root(tmp_path):
    """A pipeline root with an ML Metadata store that records one (empty) run's context."""
    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    root = tmp_path / "root"
    root.mkdir()
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = str(root / "metadata.sqlite")
    store = metadata_store.MetadataStore(config)
    context_type = metadata_store_pb2.ContextType(name="pipeline_run")
    type_id = store.put_context_type(context_type)
    store.put_contexts([metadata_store_pb2.Context(type_id=type_id, name="run-1")])
    return root


def test_a_truncated_models_config_is_found_before_training(tmp_path, capsys):
    write_dataset(str(tmp_path / "data"), train=50, test=10, seed=4)
    serving = tmp_path / "serving"
    serving.mkdir()
    (serving / "models.config").write_text('model_config_list {\n  config {\n    name: "cifar10"\n    base_pa')
    root = tmp_path / "root"
    assert main(["run", "--data", str(tmp_path / "data"), "--pipeline-root", str(root),
                 "--serving-dir", str(serving)]) == EXIT_BAD_INPUT
    _one_error_line(capsys, str(serving / "models.config"), "is not a ModelServerConfig TF Serving can read")
    assert not root.exists(), "refused before the run started"


def test_report_of_an_unknown_run_with_a_huge_id_is_one_short_line(capsys, run_root):
    assert main(["report", str(run_root), "--run", "r" * 100_000, "--verbose"]) == EXIT_BAD_INPUT
    err = _one_error_line(capsys, "no run 'rrrr", "known: run-1")
    assert len(err) < 400


def test_a_fifo_in_place_of_a_downloads_part_file_is_one_line(tmp_path, capsys):
    import http.server
    import threading

    class Archive(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's naming
            self.send_response(200)
            self.send_header("Content-Length", "3")
            self.end_headers()
            self.wfile.write(b"abc")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Archive)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    os.mkfifo(tmp_path / "cifar-10-python.tar.gz.part")
    try:
        with _deadline(5):
            assert main(["data", "download", "--dest", str(tmp_path), "--md5", "0" * 32, "--url",
                         f"http://127.0.0.1:{server.server_address[1]}/cifar-10-python.tar.gz"]) == EXIT_BAD_INPUT
    finally:
        server.shutdown()
        server.server_close()
    _one_error_line(capsys, "cifar-10-python.tar.gz.part is not a regular file", "remove it")
