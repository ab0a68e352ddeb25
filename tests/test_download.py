"""`data download` against a real HTTP server on 127.0.0.1 serving a small archive."""

import hashlib
import http.server
import io
import os
import socket
import threading

import pytest

from cifar_tfx.data.download import download
from cifar_tfx.data.errors import ChecksumError, DownloadError

PAYLOAD = os.urandom(300_000)
PAYLOAD_MD5 = hashlib.md5(PAYLOAD).hexdigest()


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves PAYLOAD at /cifar-10-python.tar.gz with byte ranges; can cut the body short."""

    cut_after = None  # bytes of body to send before dropping the connection
    honour_range = True
    requests = []

    def do_GET(self):  # noqa: N802 - http.server's naming
        type(self).requests.append((self.path, self.headers.get("Range")))
        if self.path != "/cifar-10-python.tar.gz":
            self.send_error(404)
            return
        start = 0
        rng = self.headers.get("Range")
        if rng and self.honour_range:
            start = int(rng.split("=")[1].split("-")[0])
            if start >= len(PAYLOAD):
                self.send_response(416)
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}")
        else:
            self.send_response(200)
        body = PAYLOAD[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.cut_after is not None:
            self.wfile.write(body[: self.cut_after])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    handler = type("Handler", (_Handler,), {"requests": []})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd, handler, f"http://127.0.0.1:{httpd.server_address[1]}/cifar-10-python.tar.gz"
    httpd.shutdown()
    httpd.server_close()


def test_download_verifies_and_places_archive(server, tmp_path):
    _, _, url = server
    log = io.StringIO()
    path = download("python", str(tmp_path), url=url, md5=PAYLOAD_MD5, stream=log)
    assert path == str(tmp_path / "cifar-10-python.tar.gz")
    assert open(path, "rb").read() == PAYLOAD
    assert not os.path.exists(path + ".part")
    assert "downloading cifar-10-python.tar.gz" in log.getvalue() and "MB/s" in log.getvalue()


def test_interrupted_download_leaves_only_part_then_resumes(server, tmp_path):
    _, handler, url = server
    handler.cut_after = 100_000
    with pytest.raises(DownloadError, match="run the same command again to resume"):
        download("python", str(tmp_path), url=url, md5=PAYLOAD_MD5, stream=io.StringIO())
    final = tmp_path / "cifar-10-python.tar.gz"
    assert not final.exists()
    assert (tmp_path / "cifar-10-python.tar.gz.part").stat().st_size == 100_000
    handler.cut_after = None
    download("python", str(tmp_path), url=url, md5=PAYLOAD_MD5, stream=io.StringIO())
    assert final.read_bytes() == PAYLOAD
    assert handler.requests[-1][1] == "bytes=100000-"


def test_server_ignoring_range_restarts_cleanly(server, tmp_path):
    _, handler, url = server
    handler.honour_range = False
    (tmp_path / "cifar-10-python.tar.gz.part").write_bytes(b"stale bytes")
    download("python", str(tmp_path), url=url, md5=PAYLOAD_MD5, stream=io.StringIO())
    assert (tmp_path / "cifar-10-python.tar.gz").read_bytes() == PAYLOAD


def test_md5_mismatch_places_nothing(server, tmp_path):
    _, _, url = server
    with pytest.raises(ChecksumError, match=f"md5 .* is {PAYLOAD_MD5}, expected 0{{32}}"):
        download("python", str(tmp_path), url=url, md5="0" * 32, stream=io.StringIO())
    assert os.listdir(tmp_path) == []


def test_official_md5_is_the_default(server, tmp_path):
    _, _, url = server
    with pytest.raises(ChecksumError, match="expected c58f30108f718f92721af3b95e74349a"):
        download("python", str(tmp_path), url=url, stream=io.StringIO())


def test_http_404(server, tmp_path):
    _, _, url = server
    with pytest.raises(DownloadError, match="answered HTTP 404"):
        download("python", str(tmp_path), url=url.replace("cifar-10", "nothing"), md5=PAYLOAD_MD5,
                 stream=io.StringIO())


def test_offline_fails_at_once_saying_where_to_put_the_archive(tmp_path):
    with socket.socket() as sock:  # a port with nothing listening: connection refused
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/cifar-10-python.tar.gz"
    with pytest.raises(DownloadError) as info:
        download("python", str(tmp_path), url=url, stream=io.StringIO(), timeout=5)
    message = str(info.value)
    assert "cannot reach" in message
    assert f"put it at {tmp_path}/cifar-10-python.tar.gz" in message
    assert "c58f30108f718f92721af3b95e74349a" in message
    assert not (tmp_path / "cifar-10-python.tar.gz").exists()


def test_present_archive_with_right_md5_is_kept(server, tmp_path):
    _, handler, url = server
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(PAYLOAD)
    download("python", str(tmp_path), url=url, md5=PAYLOAD_MD5, stream=io.StringIO())
    assert handler.requests == []
