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
import re
import socket
import sys
import tarfile
import threading
import time
from concurrent import futures

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

import grpc  # noqa: E402
from tensorflow_serving.apis import (get_model_metadata_pb2, get_model_status_pb2, model_service_pb2_grpc,  # noqa: E402
                                    predict_pb2, prediction_service_pb2_grpc)

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


def test_a_saved_model_with_truncated_variables_is_one_error_line(saved_model, sample_pngs, tmp_path, capsys):
    import shutil

    damaged = tmp_path / "damaged"
    shutil.copytree(saved_model, damaged)
    (data,) = (damaged / "variables").glob("variables.data-*")
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 3])  # a copy cut short (disk full, killed)
    assert main(["predict", sample_pngs[0][0], "--saved-model", str(damaged)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not a loadable SavedModel" in err


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
    """TF Serving 2.16.1's REST API (http_rest_api_handler.cc, http_rest_api_util.cc): predict, model status and
    model metadata, by version or label. As the server does, status ignores a label (get_model_status_impl.cc
    looks only at has_version()) and metadata resolves it, answering ``model_spec`` with the version as a string
    (its signature defs are left empty here: the client does not read them); errors are ``{"error": ...}``.

    ``answer`` bends the predict answer as a faulty or foreign server would."""

    delay = 0.0
    seen = []
    answer = "right"  # right, short (one row less), nan, unnormalised, foreign (other class names), huge, dribble
    PATHS = ("/v1/models/cifar10", "/v1/models/cifar10/versions/2", "/v1/models/cifar10/labels/stable")
    GET_PATH = re.compile(r"/v1/models/([^/:]+)(?:/versions/(\d+)|/labels/([^/:]+))?(/metadata)?")
    LABELS = {"stable": 2}

    def do_GET(self):  # noqa: N802 - model status and metadata
        type(self).seen.append((self.path, None))
        model, version, label, metadata = self.GET_PATH.fullmatch(self.path).groups()
        versions = {2: {"version": "2", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}},
                    3: {"version": "3", "state": "END",
                        "status": {"error_code": "NOT_FOUND", "error_message": "Could not find base path"}}}
        if metadata:
            if label is not None and label not in self.LABELS:
                return self._reply(400, {"error": f"Unrecognized servable version label: {label}"})
            version = self.LABELS[label] if label is not None else int(version or 2)
            if model != "cifar10" or version != 2:
                return self._reply(404, {"error": f"Servable not found for request: Specific({model}, {version})"})
            return self._reply(200, {"model_spec": {"name": model, "signature_name": "", "version": str(version)},
                                     "metadata": {"signature_def": {"signature_def": {}}}})
        if model != "cifar10":
            return self._reply(404, {"error": f"Could not find any versions of model {model}"})
        if version is not None:
            if int(version) not in versions:
                return self._reply(404, {"error": f"Could not find version {version} of model {model}"})
            return self._reply(200, {"model_version_status": [versions[int(version)]]})
        return self._reply(200, {"model_version_status": list(versions.values())})

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen.append((self.path, body))
        time.sleep(self.delay)
        label = re.fullmatch(r"/v1/models/cifar10/labels/([^/:]+):predict", self.path)
        if label and label.group(1) not in self.LABELS:  # server_core.cc GetModelVersionForLabel: InvalidArgument
            return self._reply(400, {"error": f"Unrecognized servable version label: {label.group(1)}"})
        if self.path not in tuple(path + ":predict" for path in self.PATHS):
            return self._reply(404, {"error": "Servable not found for request: Latest(nope)"})
        if body.get("signature_name") != "serving_images" or not body.get("instances"):
            return self._reply(400, {"error": "bad request body"})
        rows = [{"probabilities": [0.05] * 9 + [0.55], "class_id": 9, "class_name": "truck"}
                for _ in body["instances"]]
        if self.answer == "short":
            rows = rows[:-1]
        elif self.answer == "nan":
            rows[0]["probabilities"][0] = float("nan")
        elif self.answer == "unnormalised":
            rows[0]["probabilities"] = [0.5] * 10
        elif self.answer == "foreign":
            rows[0]["class_name"] = "sneaker"
        elif self.answer == "huge":
            rows[0]["padding"] = "x" * 3_000_000
        elif self.answer == "dribble":
            return self._dribble(json.dumps({"predictions": rows}).encode())
        return self._reply(200, {"predictions": rows})

    def _dribble(self, data):
        """Headers at once, then the body a byte every 0.1 s: each read is quick, the whole is not."""
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        try:
            for byte in data:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(0.1)
        except (BrokenPipeError, ConnectionResetError):
            pass

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


class _QuietWhenHungUpOn(http.server.ThreadingHTTPServer):
    """A client that refuses an answer unread closes the connection while the handler still writes it;
    socketserver would print that BrokenPipe/ConnectionReset to stderr, into the client's captured output."""

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@pytest.fixture
def rest_server():
    handler = type("Handler", (_Rest,), {"seen": [], "delay": 0.0, "answer": "right"})
    server = _QuietWhenHungUpOn(("127.0.0.1", 0), handler)
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


@pytest.mark.parametrize("answer, message", [
    ("short", "answered 2 predictions for 3 images"),
    ("nan", "NaN is not a number this program accepts"),  # refused by the JSON reader, before the rows
    ("unnormalised", r"not a distribution for image 1 \(sum 5;"),
    ("foreign", "named class 'sneaker' where this client's classes say 'truck'"),
    ("huge", "answered more than 1,048,000 bytes; refused unread"),
])
def test_rest_answers_that_do_not_fit_the_request_are_refused(rest_server, sample_pngs, capsys, answer, message):
    handler, url = rest_server
    handler.answer = answer
    assert main(["predict", *sample_pngs[0][:3], "--server", url]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert re.search(message, captured.err), captured.err


def test_rest_timeout_bounds_the_whole_answer(rest_server, sample_pngs):
    handler, url = rest_server
    handler.answer = "dribble"  # every read succeeds within the timeout; the body takes ~20 s
    started = time.monotonic()
    with pytest.raises(client.PredictError, match="within 1 s \\(the whole request\\)"):
        client.predict_rest(url, "cifar10", load_images(sample_pngs[0][:1]), NAMES, timeout=1.0)
    assert time.monotonic() - started < 3


def test_rest_by_label_and_model_names_quoted(rest_server, sample_pngs, capsys):
    handler, url = rest_server
    assert main(["predict", sample_pngs[0][0], "--server", url, "--label", "stable"]) == 0
    assert handler.seen[-1][0] == "/v1/models/cifar10/labels/stable:predict"
    assert client.rest_url(url, "a b/c", label="x y").endswith("/v1/models/a%20b%2Fc/labels/x%20y:predict")
    assert main(["predict", sample_pngs[0][0], "--server", url, "--label", "stable", "--version", "2"]) == 2
    assert main(["predict", sample_pngs[0][0], "--server", url, "--label", "nope"]) == 2
    assert "(HTTP 400): Unrecognized servable version label: nope" in capsys.readouterr().err


def test_serving_status_over_rest(rest_server, capsys):
    handler, url = rest_server
    assert main(["serving", "status", "--server", url]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "cifar10 version 2: AVAILABLE", "cifar10 version 3: END (NOT_FOUND: Could not find base path)"]
    assert main(["serving", "status", "--server", url, "--label", "stable"]) == 0
    assert capsys.readouterr().out.splitlines() == ["cifar10 version 2: AVAILABLE"]
    assert [path for path, _ in handler.seen[-2:]] == ["/v1/models/cifar10/labels/stable/metadata",
                                                       "/v1/models/cifar10/versions/2"]
    assert main(["serving", "status", "--server", url, "--label", "nope"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert "Unrecognized servable version label: nope" in captured.err
    assert main(["serving", "status", "--server", url, "--model", "nope"]) == 2
    assert "model 'nope' not found" in capsys.readouterr().err


# --- gRPC against a stand-in server --------------------------------------------------------


class _Predictor(prediction_service_pb2_grpc.PredictionServiceServicer, model_service_pb2_grpc.ModelServiceServicer):
    """PredictionService.Predict and ModelService.GetModelStatus as TF Serving answers them."""

    delay = 0.0
    answer = "right"  # right, short, nan, huge

    def __init__(self):
        self.specs = []

    def Predict(self, request, context):  # noqa: N802
        time.sleep(self.delay)
        self.specs.append(request.model_spec)
        if request.model_spec.name != "cifar10":
            context.abort(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: Latest({request.model_spec.name})")
        if request.model_spec.signature_name != "serving_images" or "images" not in request.inputs:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "input 'images' missing")
        count = tf.make_ndarray(request.inputs["images"]).shape[0]
        response = predict_pb2.PredictResponse()
        rows = count - 1 if self.answer == "short" else count
        probabilities = np.tile(np.array([[0.5] + [0.5 / 9] * 9], np.float32), (rows, 1))
        if self.answer == "nan":
            probabilities[0, 3] = np.nan
        if self.answer == "huge":
            response.outputs["padding"].CopyFrom(tf.make_tensor_proto(np.zeros(2_000_000, np.float32)))
        response.outputs["probabilities"].CopyFrom(tf.make_tensor_proto(probabilities))
        response.outputs["class_name"].CopyFrom(tf.make_tensor_proto(np.array([b"airplane"] * rows)))
        return response

    def GetModelStatus(self, request, context):  # noqa: N802
        """get_model_status_impl.cc (2.16.1): one version if has_version(), else every version; a label is ignored."""
        self.specs.append(request.model_spec)
        if request.model_spec.name != "cifar10":
            context.abort(grpc.StatusCode.NOT_FOUND, "Could not find any versions of model nope")
        response = get_model_status_pb2.GetModelStatusResponse()
        if request.model_spec.HasField("version") and request.model_spec.version.value != 2:
            context.abort(grpc.StatusCode.NOT_FOUND, f"Could not find version {request.model_spec.version.value} "
                          "of model cifar10")
        response.model_version_status.add(version=2, state=get_model_status_pb2.ModelVersionStatus.AVAILABLE)
        return response

    def GetModelMetadata(self, request, context):  # noqa: N802
        """get_model_metadata_impl.cc (2.16.1): the label resolved (server_core.cc), model_spec.version answered."""
        self.specs.append(request.model_spec)
        if request.model_spec.version_label not in ("", "stable"):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"Unrecognized servable version label: {request.model_spec.version_label}")
        if list(request.metadata_field) != ["signature_def"]:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "GetModelMetadataRequest must specify at least one "
                          "metadata_field")
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = request.model_spec.name
        response.model_spec.version.value = 2
        return response


@pytest.fixture
def grpc_server():
    servicer = _Predictor()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(servicer, server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(servicer, server)
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


@pytest.mark.parametrize("answer, message", [
    ("short", "answered 1 predictions for 2 images"),
    ("nan", "probabilities that are not a distribution for image 1"),
    ("huge", "answered more than 1,032,000 bytes; refused"),
])
def test_grpc_answers_that_do_not_fit_the_request_are_refused(grpc_server, sample_pngs, capsys, answer, message):
    servicer, target = grpc_server
    servicer.answer = answer
    assert main(["predict", *sample_pngs[0][:2], "--grpc", target]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1 and message in captured.err, captured.err


def test_grpc_by_label_and_status(grpc_server, sample_pngs, capsys):
    servicer, target = grpc_server
    assert main(["predict", sample_pngs[0][0], "--grpc", target, "--label", "stable"]) == 0
    assert servicer.specs[-1].version_label == "stable" and not servicer.specs[-1].HasField("version")
    capsys.readouterr()
    assert main(["serving", "status", "--grpc", target]) == 0
    assert capsys.readouterr().out.strip() == "cifar10 version 2: AVAILABLE"
    assert main(["serving", "status", "--grpc", target, "--label", "stable"]) == 0
    assert capsys.readouterr().out.strip() == "cifar10 version 2: AVAILABLE"
    assert servicer.specs[-2].version_label == "stable" and servicer.specs[-1].version.value == 2
    assert main(["serving", "status", "--grpc", target, "--label", "nope"]) == 2
    assert "Unrecognized servable version label: nope" in capsys.readouterr().err
    assert main(["serving", "status", "--grpc", target, "--model", "nope"]) == 2


def test_label_over_grpc_asks_the_status_of_the_labelled_version(grpc_server, tmp_path, capsys):
    servicer, target = grpc_server
    for version in (1, 2):
        (tmp_path / "cifar10" / str(version)).mkdir(parents=True)
    (tmp_path / "models.config").write_text(
        f'model_config_list {{ config {{ name: "cifar10" base_path: "{tmp_path / "cifar10"}" }} }}\n')
    assert main(["serving", "label", str(tmp_path), "stable=2", "--grpc", target, "--wait-seconds", "5"]) == 0
    assert servicer.specs[-1].name == "cifar10" and servicer.specs[-1].version.value == 2
    assert "cifar10: labels stable=2" in capsys.readouterr().out
