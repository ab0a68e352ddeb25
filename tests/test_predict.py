"""`cifar-tfx predict`: request bodies against a real SavedModel; REST and gRPC against stand-in servers.

No TF Serving binary exists here. The stand-ins below are test doubles on 127.0.0.1
that answer like TF Serving's documented APIs; the request body itself is checked
by decoding it as TF Serving's REST API documents and running it through the
real SavedModel's signature.
"""

import base64
import http.server
import io
import json
import socket
import tarfile
import threading
import time
from concurrent import futures

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

import grpc  # noqa: E402
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc  # noqa: E402

from cifar_tfx.cli import main  # noqa: E402
from cifar_tfx.example_format import encode_png, serialize_batch  # noqa: E402
from cifar_tfx.data.datasets import CIFAR10  # noqa: E402
from cifar_tfx.data.errors import DataError  # noqa: E402
from cifar_tfx.serving import client  # noqa: E402
from cifar_tfx.serving.images import load_images  # noqa: E402

NAMES = CIFAR10.class_names


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    """A small trained and exported model (a few steps: the point is the plumbing)."""
    import tensorflow_transform as tft

    from cifar_tfx.trainer.export import export_saved_model
    from cifar_tfx.trainer.hparams import DEMO, with_overrides
    from cifar_tfx.trainer.train import train_model
    from benchmarks.transform_fixtures import build_transform_output, write_split

    root = tmp_path_factory.mktemp("model")
    train = write_split(str(root / "train.gz"), 128, seed=3)
    tft_output = tft.TFTransformOutput(build_transform_output(train, str(root / "tft")))
    model, _ = train_model(train_files=[train], eval_files=[train], tft_output=tft_output,
                           hparams=with_overrides(DEMO, batch_size=32, train_steps=4, log_every_seconds=60),
                           dataset=CIFAR10, checkpoint_dir=str(root / "ckpt"), stream=io.StringIO())
    return export_saved_model(model, tft_output, NAMES, str(root / "export"))


@pytest.fixture(scope="module")
def sample_pngs(tmp_path_factory, sample_archives):
    """Eight real CIFAR-10 test images written as PNG files, with their pixels."""
    folder = tmp_path_factory.mktemp("pngs")
    with tarfile.open(sample_archives["binary"]) as tar:
        raw = tar.extractfile("cifar-10-batches-bin/test_batch.bin").read(8 * 3073)
    records = np.frombuffer(raw, np.uint8).reshape(8, 3073)
    images = records[:, 1:].reshape(8, 3, 32, 32).transpose(0, 2, 3, 1)
    paths = []
    for index, image in enumerate(images):
        path = folder / f"test_{index}.png"
        path.write_bytes(encode_png(image))
        paths.append(str(path))
    return paths, images, records[:, 0]


def decode_rest_body_like_tf_serving(body):
    """TF Serving's REST row format: ``instances`` of ``{"b64": ...}`` for a one-input signature."""
    assert body["signature_name"] == "serving_images"
    return [base64.b64decode(instance["b64"]) for instance in body["instances"]]


def test_rest_body_runs_through_the_real_signature(saved_model, sample_pngs, capsys):
    paths, images, _ = sample_pngs
    assert main(["predict", *paths, "--print-request"]) == 0
    body = json.loads(capsys.readouterr().out)
    decoded = decode_rest_body_like_tf_serving(body)
    assert decoded == [open(p, "rb").read() for p in paths]
    signature = tf.saved_model.load(saved_model).signatures["serving_images"]
    via_body = signature(images=tf.constant(decoded))["probabilities"].numpy()
    direct = client.predict_saved_model(saved_model, load_images(paths), NAMES)
    np.testing.assert_allclose(via_body, [p.probabilities for p in direct], rtol=1e-6)


def test_saved_model_top1_equals_the_evaluators_signature(saved_model, sample_pngs, capsys):
    paths, images, labels = sample_pngs
    assert main(["predict", *paths, "--saved-model", saved_model, "--json", "--top-k", "1", "--batch-size", "3"]) == 0
    rows = json.loads(capsys.readouterr().out)
    evaluator_view = tf.saved_model.load(saved_model).signatures["serving_default"](
        examples=tf.constant(list(serialize_batch(images, labels))))
    expected = [name.decode() for name in evaluator_view["class_name"].numpy()]
    assert [row["top"][0]["class"] for row in rows] == expected
    assert [row["file"] for row in rows] == paths


def test_wrong_size_image_is_refused_or_resized(tmp_path):
    path = tmp_path / "big.png"
    path.write_bytes(encode_png(np.zeros((64, 48, 3), np.uint8)))
    with pytest.raises(DataError, match="is a 48x64 PNG; the model takes 32x32 PNG or JPEG"):
        load_images([str(path)])
    resized = load_images([str(path)], resize=True)[0]
    from PIL import Image

    assert Image.open(io.BytesIO(resized)).size == (32, 32)
    (tmp_path / "junk.png").write_bytes(b"not an image")
    with pytest.raises(DataError, match="is not a readable image"):
        load_images([str(tmp_path / "junk.png")])


# --- REST against a stand-in server --------------------------------------------------------


class _Rest(http.server.BaseHTTPRequestHandler):
    delay = 0.0
    seen = []

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen.append((self.path, body))
        time.sleep(self.delay)
        if self.path not in ("/v1/models/cifar10:predict", "/v1/models/cifar10/versions/2:predict"):
            return self._reply(404, {"error": "Servable not found for request: Latest(nope)"})
        if body.get("signature_name") != "serving_images" or not body.get("instances"):
            return self._reply(400, {"error": "bad request body"})
        rows = [{"probabilities": [0.05] * 9 + [0.55], "class_id": 9, "class_name": "truck"}
                for _ in body["instances"]]
        return self._reply(200, {"predictions": rows})

    def _reply(self, code, payload):
        data = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        try:
            self.wfile.write(data)
        except BrokenPipeError:
            pass

    def log_message(self, *args):
        pass


@pytest.fixture
def rest_server():
    handler = type("Handler", (_Rest,), {"seen": [], "delay": 0.0})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield handler, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_rest_success_batches_requests(rest_server, sample_pngs, capsys):
    handler, url = rest_server
    paths = sample_pngs[0]
    assert main(["predict", *paths, "--server", url, "--batch-size", "3", "--version", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 8 and out[0].startswith(paths[0] + ": truck 0.550")
    assert [len(body["instances"]) for _, body in handler.seen] == [3, 3, 2]
    assert handler.seen[0][0] == "/v1/models/cifar10/versions/2:predict"


def test_rest_404(rest_server, sample_pngs):
    _, url = rest_server
    with pytest.raises(client.PredictError, match="model 'nope' not found at .*Servable not found"):
        client.predict_rest(url, "nope", load_images(sample_pngs[0][:1]), NAMES)


def test_rest_400(rest_server):
    _, url = rest_server
    with pytest.raises(client.PredictError, match=r"rejected the request \(HTTP 400\): bad request body"):
        client.predict_rest(url, "cifar10", [], NAMES)


def test_rest_connection_refused(sample_pngs, capsys):
    port = _free_port()
    assert main(["predict", sample_pngs[0][0], "--server", f"http://127.0.0.1:{port}"]) == 2
    assert "cannot connect to http://127.0.0.1:" in capsys.readouterr().err


def test_rest_timeout(rest_server, sample_pngs):
    handler, url = rest_server
    handler.delay = 2.0
    with pytest.raises(client.PredictError, match="no answer from .* within 0.5 s"):
        client.predict_rest(url, "cifar10", load_images(sample_pngs[0][:1]), NAMES, timeout=0.5)


# --- gRPC against a stand-in server --------------------------------------------------------


class _Predictor(prediction_service_pb2_grpc.PredictionServiceServicer):
    delay = 0.0

    def Predict(self, request, context):  # noqa: N802
        time.sleep(self.delay)
        if request.model_spec.name != "cifar10":
            context.abort(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: Latest({request.model_spec.name})")
        if request.model_spec.signature_name != "serving_images" or "images" not in request.inputs:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "input 'images' missing")
        count = tf.make_ndarray(request.inputs["images"]).shape[0]
        response = predict_pb2.PredictResponse()
        probabilities = np.tile(np.array([[0.5] + [0.5 / 9] * 9], np.float32), (count, 1))
        response.outputs["probabilities"].CopyFrom(tf.make_tensor_proto(probabilities))
        return response


@pytest.fixture
def grpc_server():
    servicer = _Predictor()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield servicer, f"127.0.0.1:{port}"
    server.stop(0)


def test_grpc_success(grpc_server, sample_pngs, capsys):
    _, target = grpc_server
    assert main(["predict", *sample_pngs[0][:2], "--grpc", target, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [row["top"][0] for row in rows] == [{"class": "airplane", "probability": 0.5}] * 2


def test_grpc_not_found(grpc_server, sample_pngs):
    _, target = grpc_server
    with pytest.raises(client.PredictError, match="model 'nope' not found"):
        client.predict_grpc(target, "nope", load_images(sample_pngs[0][:1]), NAMES)


def test_grpc_invalid_argument(grpc_server):
    _, target = grpc_server
    with pytest.raises(client.PredictError, match=r"rejected the request \(INVALID_ARGUMENT\)"):
        _bad_grpc(target)


def _bad_grpc(target):
    """A request without the ``images`` input (what a wrong client would send)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(client, "INPUT", "pixels")
        client.predict_grpc(target, "cifar10", [b"x"], NAMES)


def test_grpc_connection_refused(sample_pngs):
    with pytest.raises(client.PredictError, match="cannot connect to 127.0.0.1:"):
        client.predict_grpc(f"127.0.0.1:{_free_port()}", "cifar10", load_images(sample_pngs[0][:1]), NAMES, timeout=3)


def test_grpc_timeout(grpc_server, sample_pngs):
    servicer, target = grpc_server
    servicer.delay = 2.0
    with pytest.raises(client.PredictError, match="no answer from .* within 0.5 s"):
        client.predict_grpc(target, "cifar10", load_images(sample_pngs[0][:1]), NAMES, timeout=0.5)
