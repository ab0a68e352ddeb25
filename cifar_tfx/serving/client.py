"""Send images to the served model and read back class probabilities.

Three transports, one result type: TF Serving's REST API (``POST
/v1/models/<name>[/versions/<n>]:predict`` with ``{"b64": ...}`` instances),
its gRPC ``PredictionService`` (tensorflow-serving-api), and a SavedModel loaded
in this process (offline use, tests). All call the ``serving_images`` signature.
"""

from __future__ import annotations

import base64
import dataclasses
import http.client
import json
import socket
import threading
import urllib.error
import urllib.request
from typing import Dict, List, Optional, Sequence
from cifar_tfx.model_contract import IMAGES_INPUT, IMAGES_SIGNATURE

SIGNATURE, INPUT = IMAGES_SIGNATURE, IMAGES_INPUT


class PredictError(Exception):
    """The server could not be reached or refused the request; the message says which."""


@dataclasses.dataclass(frozen=True)
class Prediction:
    probabilities: List[float]
    class_names: Sequence[str]

    def top(self, k: int) -> List[tuple]:
        """``[(class_name, probability), ...]`` best first."""
        order = sorted(range(len(self.probabilities)), key=lambda i: -self.probabilities[i])[:k]
        return [(self.class_names[i], self.probabilities[i]) for i in order]


def rest_request_body(images: Sequence[bytes]) -> Dict[str, object]:
    """The JSON body TF Serving's REST predict API takes for ``serving_images``."""
    return {"signature_name": SIGNATURE,
            "instances": [{"b64": base64.b64encode(image).decode("ascii")} for image in images]}


def rest_url(server: str, model: str, version: Optional[int] = None) -> str:
    base = server.rstrip("/")
    if "://" not in base:
        base = "http://" + base
    path = f"/v1/models/{model}" + (f"/versions/{version}" if version is not None else "") + ":predict"
    return base + path


def _predictions_from_rows(rows: object, class_names: Sequence[str], where: str) -> List[Prediction]:
    """Predictions from rows of ``{"probabilities": [...]}``; anything else is a :class:`PredictError`."""
    predictions = []
    for row in rows if isinstance(rows, list) else [None]:
        values = row.get("probabilities") if isinstance(row, dict) else None
        if not isinstance(values, list) or len(values) != len(class_names) \
                or not all(isinstance(v, (int, float)) for v in values):
            raise PredictError(f"unexpected answer from {where}: each prediction needs 'probabilities', "
                               f"{len(class_names)} numbers (is this the model this client was made for?)")
        predictions.append(Prediction([float(p) for p in values], class_names))
    return predictions


def _call_with_deadline(call, timeout: float, what: str):
    """Run ``call()`` in a helper thread and give up after ``timeout`` seconds in all.

    Socket time-outs bound each read, not the request: a server that sends one byte a
    second would hold the client for ever. The helper thread is a daemon; it ends with
    the process.
    """
    result: Dict[str, object] = {}

    def run() -> None:
        try:
            result["value"] = call()
        except BaseException as err:  # noqa: BLE001 - handed back to the caller's thread
            result["error"] = err

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise PredictError(f"no answer from {what} within {timeout:g} s (the whole request)")
    if "error" in result:
        raise result["error"]  # type: ignore[misc]
    return result["value"]


def predict_rest(server: str, model: str, images: Sequence[bytes], class_names: Sequence[str],
                 version: Optional[int] = None, timeout: float = 30.0) -> List[Prediction]:
    """One REST predict call for ``images``."""
    url = rest_url(server, model, version)
    body = json.dumps(rest_request_body(images)).encode()
    try:
        request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    except ValueError as err:
        raise PredictError(f"--server {server!r} is not a usable URL: {err}") from err

    def send() -> bytes:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.read()

    try:
        raw = _call_with_deadline(send, timeout, url)
    except urllib.error.HTTPError as err:
        detail = _error_text(err)
        if err.code == 404:
            raise PredictError(f"model {model!r}{_version(version)} not found at {url}: {detail}") from err
        if err.code == 400:
            raise PredictError(f"the server rejected the request (HTTP 400): {detail}") from err
        raise PredictError(f"{url} answered HTTP {err.code}: {detail}") from err
    except urllib.error.URLError as err:
        if isinstance(err.reason, (socket.timeout, TimeoutError)):
            raise PredictError(f"no answer from {url} within {timeout:g} s") from err
        raise PredictError(f"cannot connect to {url} ({err.reason}); is TF Serving running there?") from err
    except (socket.timeout, TimeoutError) as err:
        raise PredictError(f"no answer from {url} within {timeout:g} s") from err
    except (http.client.HTTPException, ConnectionError) as err:
        raise PredictError(f"{url} broke off the answer ({type(err).__name__}: {err})") from err
    except ValueError as err:  # malformed URL parts found only when connecting
        raise PredictError(f"cannot send to {url}: {err}") from err
    try:
        answer = json.loads(raw)
    except ValueError as err:
        raise PredictError(f"{url} did not answer JSON (is it TF Serving's REST port?): {raw[:80]!r}") from err
    if not isinstance(answer, dict) or "predictions" not in answer:
        raise PredictError(f"unexpected answer from {url}: {str(answer)[:200]}")
    return _predictions_from_rows(answer["predictions"], class_names, url)


def _version(version: Optional[int]) -> str:
    return "" if version is None else f" version {version}"


def _error_text(err: urllib.error.HTTPError) -> str:
    try:
        return json.loads(err.read()).get("error", "")
    except (ValueError, AttributeError):
        return err.reason or ""


def predict_grpc(target: str, model: str, images: Sequence[bytes], class_names: Sequence[str],
                 version: Optional[int] = None, timeout: float = 30.0) -> List[Prediction]:
    """One gRPC ``PredictionService.Predict`` call for ``images``."""
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = SIGNATURE
    if version is not None:
        request.model_spec.version.value = version
    request.inputs[INPUT].CopyFrom(tf.make_tensor_proto(list(images), dtype=tf.string))
    with grpc.insecure_channel(target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        try:
            response = stub.Predict(request, timeout=timeout)
        except grpc.RpcError as err:
            code, detail = err.code(), err.details()
            if code == grpc.StatusCode.UNAVAILABLE:
                raise PredictError(f"cannot connect to {target} ({detail}); is TF Serving running there?") from err
            if code == grpc.StatusCode.NOT_FOUND:
                raise PredictError(f"model {model!r}{_version(version)} not found at {target}: {detail}") from err
            if code == grpc.StatusCode.INVALID_ARGUMENT:
                raise PredictError(f"the server rejected the request (INVALID_ARGUMENT): {detail}") from err
            if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                raise PredictError(f"no answer from {target} within {timeout:g} s") from err
            raise PredictError(f"{target} answered {code.name}: {detail}") from err
    if "probabilities" not in response.outputs:
        raise PredictError(f"unexpected answer from {target}: no 'probabilities' output "
                           f"(outputs: {', '.join(sorted(response.outputs)) or 'none'})")
    rows = [{"probabilities": [float(p) for p in row]}
            for row in tf.make_ndarray(response.outputs["probabilities"]).reshape(len(images), -1)]
    return _predictions_from_rows(rows, class_names, target)


def predict_saved_model(export_dir: str, images: Sequence[bytes], class_names: Sequence[str]) -> List[Prediction]:
    """The same request run through a SavedModel's ``serving_images`` signature in this process."""
    import tensorflow as tf

    try:
        signature = tf.saved_model.load(export_dir).signatures[SIGNATURE]
    except (OSError, ValueError, tf.errors.OpError) as err:
        raise PredictError(f"{export_dir} is not a loadable SavedModel: {str(err).splitlines()[0]}") from err
    except KeyError as err:
        raise PredictError(f"the SavedModel in {export_dir} has no {SIGNATURE!r} signature") from err
    try:
        outputs = signature(**{INPUT: tf.constant(list(images))})
    except tf.errors.InvalidArgumentError as err:
        raise PredictError(f"the model rejected the input: {err.message.splitlines()[0]}") from err
    return [Prediction([float(p) for p in row], class_names) for row in outputs["probabilities"].numpy()]
