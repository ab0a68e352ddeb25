"""Send images to the served model and read back class probabilities.

Three transports, one result type: TF Serving's REST API (``POST
/v1/models/<name>[/versions/<n>|/labels/<label>]:predict`` with ``{"b64": ...}``
instances), its gRPC ``PredictionService`` (tensorflow-serving-api), and a SavedModel
loaded in this process (offline use, tests). All call the ``serving_images`` signature.

An answer is checked before anything is printed (:func:`checked_predictions`): one
prediction per image, a probability per class that is finite and in [0, 1], summing to 1,
and the class the model names (when it names one) the top class of this client's list.
Answers are size-capped (``answer_limit``) and the timeout bounds the whole exchange.

Every REST answer is read by one bounded JSON reader (:func:`decode_answer`, ``bounded_input.parse_json``)
and then by one parser of its shape, each written from TF Serving 2.16.1's answer: predictions
(:func:`checked_predictions`); the answers about versions (status, metadata) are read in
:mod:`cifar_tfx.serving.versions`, which shares this module's transports.
"""

from __future__ import annotations

import base64
import dataclasses
import http.client
import json
import socket
import math
import threading
import urllib.error
import urllib.parse
import urllib.request
from typing import Dict, List, Optional, Sequence

from cifar_tfx.bounded_input import InputRefused, parse_json
from cifar_tfx.model_contract import IMAGES_INPUT, IMAGES_SIGNATURE

SIGNATURE, INPUT = IMAGES_SIGNATURE, IMAGES_INPUT


class PredictError(Exception):
    """The server could not be reached or refused the request; the message says which."""


class NotFound(PredictError):
    """The server answered 404 / NOT_FOUND: no such model, or no such version (yet)."""


def shown(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text):,} characters)"


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


SUM_TOLERANCE = 1e-3  # float32 softmax rows sum to 1 within ~1e-6; a model that does not is refused


def answer_limit(image_count: int) -> int:
    """Bytes an answer for ``image_count`` images may take: a prediction is under 1 KB of JSON."""
    return 1_000_000 + 16_000 * image_count


def model_path(model: str, version: Optional[int] = None, label: Optional[str] = None) -> str:
    """``/v1/models/<model>[/versions/<n>|/labels/<label>]`` with the names URL-quoted."""
    if version is not None and label is not None:
        raise PredictError("give a version or a label, not both")
    path = f"/v1/models/{urllib.parse.quote(model, safe='')}"
    if version is not None:
        path += f"/versions/{int(version)}"
    elif label is not None:
        path += f"/labels/{urllib.parse.quote(label, safe='')}"
    return path


def rest_url(server: str, model: str, version: Optional[int] = None, label: Optional[str] = None,
             verb: str = ":predict") -> str:
    base = server.rstrip("/")
    if "://" not in base:
        base = "http://" + base
    return base + model_path(model, version, label) + verb


def checked_predictions(rows: object, class_names: Sequence[str], count: int, where: str) -> List[Prediction]:
    """Predictions from rows of ``{"probabilities": [...], "class_name": ...}``, or a :class:`PredictError`
    saying what in the answer does not fit the request: the number of rows, a row's length or numbers,
    probabilities that are not a distribution, or a class name that is not this client's top class."""
    if not isinstance(rows, list) or len(rows) != count:
        got = len(rows) if isinstance(rows, list) else type(rows).__name__
        raise PredictError(f"{where} answered {got} predictions for {count} images")
    predictions = []
    for index, row in enumerate(rows):
        values = row.get("probabilities") if isinstance(row, dict) else None
        if not isinstance(values, list) or len(values) != len(class_names) \
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            raise PredictError(f"unexpected answer from {where}: each prediction needs 'probabilities', "
                               f"{len(class_names)} numbers (is this the model this client was made for?)")
        values = [float(v) for v in values]
        total = sum(values)
        if not all(math.isfinite(v) and -SUM_TOLERANCE <= v <= 1 + SUM_TOLERANCE for v in values) \
                or abs(total - 1.0) > SUM_TOLERANCE:
            raise PredictError(f"{where} answered probabilities that are not a distribution for image "
                               f"{index + 1} (sum {total:.4g}; NaN, negative or above 1 are refused)")
        named = row.get("class_name")
        if isinstance(named, bytes):
            named = named.decode("utf-8", "replace")
        top = class_names[max(range(len(values)), key=values.__getitem__)]
        if named is not None and named != top:
            raise PredictError(f"{where} named class {shown(named, 40)} where this client's classes say {top!r}: the "
                               "model's classes are not the ones of --dataset")
        predictions.append(Prediction(values, class_names))
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
                 version: Optional[int] = None, timeout: float = 30.0, label: Optional[str] = None) -> List[Prediction]:
    """One REST predict call for ``images`` (of a version, a label, or the latest)."""
    url = rest_url(server, model, version, label)
    answer = rest_exchange(url, json.dumps(rest_request_body(images)).encode(), timeout, answer_limit(len(images)),
                           what=f"model {model!r}{version_phrase(version, label)}")
    if not isinstance(answer, dict) or "predictions" not in answer:
        raise PredictError(f"unexpected answer from {url}: {str(answer)[:200]}")
    return checked_predictions(answer["predictions"], class_names, len(images), url)


def rest_exchange(url: str, body: Optional[bytes], timeout: float, limit: int, what: str) -> object:
    """POST ``body`` (GET when ``None``) to ``url``; the JSON answer, read within ``timeout`` seconds in all
    and refused past ``limit`` bytes; every failure is one :class:`PredictError`."""
    try:
        request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    except ValueError as err:
        raise PredictError(f"{url!r} is not a usable URL: {err}") from err

    def send() -> bytes:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read(limit + 1)
        if len(raw) > limit:
            raise PredictError(f"{url} answered more than {limit:,} bytes; refused unread")
        return raw

    try:
        raw = _call_with_deadline(send, timeout, url)
    except urllib.error.HTTPError as err:
        detail = _error_text(err)
        if err.code == 404:
            raise NotFound(f"{what} not found at {url}: {detail}") from err
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
    return decode_answer(raw, url, limit)


def decode_answer(raw: bytes, url: str, limit: int) -> object:
    """The JSON of an answer through the one bounded reader (``parse_json``: size, depth, finite numbers of sane
    length), or one :class:`PredictError`."""
    try:
        return parse_json(raw, what=f"the answer of {url}", max_bytes=limit)
    except InputRefused as err:
        if "is not JSON" in str(err):
            raise PredictError(f"{url} did not answer JSON (is it TF Serving's REST port?): {raw[:80]!r}") from None
        raise PredictError(str(err)) from None


def version_phrase(version: Optional[int], label: Optional[str] = None) -> str:
    return f" version {version}" if version is not None else (f" label {label!r}" if label is not None else "")


ERROR_LIMIT = 65536  # TF Serving's error answer is {"error": "<one status message>"} (json_tensor.cc)


def _error_text(err: urllib.error.HTTPError) -> str:
    """The ``error`` of an error answer (MakeJsonFromStatus, util/json_tensor.cc at 2.16.1), cut to one
    short line; the HTTP reason when the body is not that shape (a proxy's page, deep or huge JSON)."""
    try:
        answer = parse_json(err.read(ERROR_LIMIT + 1), what="the error answer", max_bytes=ERROR_LIMIT)
    except (InputRefused, OSError, http.client.HTTPException):
        answer = None
    text = answer.get("error") if isinstance(answer, dict) else None
    if not isinstance(text, str):
        return str(err.reason or "")[:200]
    text = " ".join(text.split())
    return text if len(text) <= 300 else text[:300] + "…"


def model_spec(spec, model: str, version: Optional[int] = None, label: Optional[str] = None) -> None:
    """Fill a ``ModelSpec``: the name and a version or a version label (model.proto)."""
    if version is not None and label is not None:
        raise PredictError("give a version or a label, not both")
    spec.name = model
    if version is not None:
        spec.version.value = version
    elif label is not None:
        spec.version_label = label


def grpc_call(target: str, method, request, timeout: float, limit: int, what: str):
    """``method(request)`` on a fresh channel to ``target`` whose answers are capped at ``limit`` bytes;
    ``timeout`` is the deadline of the whole call; every failure is one :class:`PredictError`."""
    import grpc

    options = [("grpc.max_receive_message_length", limit)]
    with grpc.insecure_channel(target, options=options) as channel:
        try:
            return method(channel)(request, timeout=timeout)
        except grpc.RpcError as err:
            code, detail = err.code(), err.details()
            if code == grpc.StatusCode.UNAVAILABLE:
                raise PredictError(f"cannot connect to {target} ({detail}); is TF Serving running there?") from err
            if code == grpc.StatusCode.NOT_FOUND:
                raise NotFound(f"{what} not found at {target}: {detail}") from err
            if code == grpc.StatusCode.INVALID_ARGUMENT:
                raise PredictError(f"the server rejected the request (INVALID_ARGUMENT): {detail}") from err
            if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                raise PredictError(f"no answer from {target} within {timeout:g} s") from err
            if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
                raise PredictError(f"{target} answered more than {limit:,} bytes; refused ({detail})") from err
            raise PredictError(f"{target} answered {code.name}: {detail}") from err


def predict_grpc(target: str, model: str, images: Sequence[bytes], class_names: Sequence[str],
                 version: Optional[int] = None, timeout: float = 30.0, label: Optional[str] = None) -> List[Prediction]:
    """One gRPC ``PredictionService.Predict`` call for ``images``."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    request = predict_pb2.PredictRequest()
    model_spec(request.model_spec, model, version, label)
    request.model_spec.signature_name = SIGNATURE
    request.inputs[INPUT].CopyFrom(tf.make_tensor_proto(list(images), dtype=tf.string))
    response = grpc_call(target, lambda channel: prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict,
                         request, timeout, answer_limit(len(images)),
                         f"model {model!r}{version_phrase(version, label)}")
    if "probabilities" not in response.outputs:
        raise PredictError(f"unexpected answer from {target}: no 'probabilities' output "
                           f"(outputs: {', '.join(sorted(response.outputs)) or 'none'})")
    probabilities = tf.make_ndarray(response.outputs["probabilities"])
    if probabilities.ndim != 2:
        raise PredictError(f"{target} answered probabilities of shape {list(probabilities.shape)} for "
                           f"{len(images)} images")
    names = tf.make_ndarray(response.outputs["class_name"]).reshape(-1) if "class_name" in response.outputs else None
    rows = [{"probabilities": [float(p) for p in row]} for row in probabilities]
    if names is not None and len(names) == len(rows):
        for row, name in zip(rows, names):
            row["class_name"] = name
    return checked_predictions(rows, class_names, len(images), target)


def predict_saved_model(export_dir: str, images: Sequence[bytes], class_names: Sequence[str]) -> List[Prediction]:
    """The same request run through a SavedModel's ``serving_images`` signature in this process."""
    import tensorflow as tf

    try:
        signature = tf.saved_model.load(export_dir).signatures[SIGNATURE]
    except (OSError, ValueError, IndexError, RuntimeError, tf.errors.OpError) as err:  # IndexError: truncated variables
        raise PredictError(f"{export_dir} is not a loadable SavedModel: {str(err).splitlines()[0]}") from err
    except KeyError as err:
        raise PredictError(f"the SavedModel in {export_dir} has no {SIGNATURE!r} signature") from err
    try:
        outputs = signature(**{INPUT: tf.constant(list(images))})
    except tf.errors.InvalidArgumentError as err:
        raise PredictError(f"the model rejected the input: {err.message.splitlines()[0]}") from err
    return [Prediction([float(p) for p in row], class_names) for row in outputs["probabilities"].numpy()]
