"""Check that a SavedModel can be served, the way TFX's InfraValidator would, without a server.

``python -m cifar_tfx.serving.check EXPORT_DIR --classes a,b,c [--max-latency-ms N]`` loads the
model in a fresh process and replays its TF Serving warm-up requests
(``assets.extra/tf_serving_warmup_requests``) as TF Serving would receive them, and prints one
JSON object: ``{"ok": bool, "reason": str, "latency_ms": {...}, "checked": [...]}``. It follows
TF Serving's own rules, each from tensorflow/serving's source:

* the model loads under the ``serve`` tag (``saved_model_tags``' default, model_servers/server.cc);
* the warm-up file holds at most 1,000 records, else the version does not load
  (``WarmupConsts::kMaxNumRecords``, servables/tensorflow/saved_model_warmup_util.h), and every
  record is a ``predict_log`` (the only kind replayed here: another kind is refused by name);
* each request runs as the gRPC API receives it (the ``PredictRequest`` parsed from its wire
  bytes) and as the REST API receives it (the JSON body a client sends, ``instances`` with
  binary strings as ``{"b64": ...}``, decoded by the rules of util/json_tensor.cc), and both
  answers agree;
* the answer, encoded as REST JSON, is one the project's client accepts (``checked_predictions``:
  one row per input, finite probabilities summing to 1, class names of the dataset), with the right
  shape, and the slowest warm request stays under the latency bound.

Where a ``tensorflow_model_server`` binary is on ``PATH``, TF Serving itself then serves the
candidate and answers the warm-up images (:mod:`cifar_tfx.serving.server_check`); otherwise
``checked`` says it was not run. The Pusher runs the check before publishing (``run_check``), so the serving folder never
gets a model that fails it.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import subprocess
import sys
import time
from typing import Dict, List, Mapping, Sequence

from cifar_tfx.model_contract import EXAMPLES_SIGNATURE, IMAGES_INPUT, IMAGES_SIGNATURE, WARMUP_PATH

SIGNATURES = (EXAMPLES_SIGNATURE, IMAGES_SIGNATURE)
SERVE_TAG = "serve"
MAX_WARMUP_RECORDS = 1000
NOT_RUN = "TF Serving itself not run (no tensorflow_model_server on PATH)"


class Refused(Exception):
    """The model would not be served as meant; the message says why."""


def rest_body(signature: str, inputs: Mapping[str, "np.ndarray"]) -> str:  # noqa: F821
    """The REST predict body a client sends for ``inputs`` (row format; bytes as ``{"b64": ...}``)."""
    names = sorted(inputs)
    batch = len(inputs[names[0]])

    def value(item):
        return {"b64": base64.b64encode(item).decode("ascii")} if isinstance(item, bytes) else item.tolist()

    rows = [value(inputs[names[0]][i]) if len(names) == 1 else {n: value(inputs[n][i]) for n in names}
            for i in range(batch)]
    return json.dumps({"signature_name": signature, "instances": rows})


def decode_rest_body(text: str, input_names: Sequence[str]) -> Dict[str, list]:
    """The inputs TF Serving's REST API makes of a row-format body (json_tensor.cc): one input's values
    are the instances themselves, several inputs' are objects keyed by input name; an object whose only
    key is ``b64`` is a base64 binary string."""
    def decoded(item):
        if isinstance(item, dict) and set(item) == {"b64"}:
            return base64.b64decode(item["b64"], validate=True)
        return item

    rows = json.loads(text)["instances"]
    if len(input_names) == 1:
        return {input_names[0]: [decoded(row) for row in rows]}
    return {name: [decoded(row[name]) for row in rows] for name in input_names}


def rest_answer(outputs: Mapping[str, "np.ndarray"]) -> str:  # noqa: F821
    """The REST predict answer (row format) TF Serving writes for ``outputs``; strings as UTF-8."""
    batch = len(next(iter(outputs.values())))

    def value(item):
        if isinstance(item, bytes):
            return item.decode("utf-8")
        return item.tolist() if hasattr(item, "tolist") else item

    return json.dumps({"predictions": [{name: value(array[i]) for name, array in outputs.items()}
                                       for i in range(batch)]})


def check_saved_model(export_dir: str, class_names: Sequence[str], max_latency_ms: float) -> Dict[str, object]:
    """Load ``export_dir`` here and replay its warm-up requests; return the verdict as a dict."""
    from cifar_tfx.serving.client import PredictError
    from cifar_tfx.serving.server_check import check_with_server, server_binary

    latencies: Dict[str, List[float]] = {}
    checked: List[str] = []
    binary = server_binary()
    try:
        images = _replay(export_dir, class_names, max_latency_ms, latencies, checked)
        if binary is not None:
            try:
                checked.append(check_with_server(binary, export_dir, images[:8], class_names))
            except PredictError as err:
                raise Refused(str(err)) from err
    except Refused as err:
        return {"ok": False, "reason": str(err), "latency_ms": latencies,
                "checked": checked + ([] if binary else [NOT_RUN])}
    return {"ok": True, "reason": "", "latency_ms": latencies, "checked": checked + ([] if binary else [NOT_RUN])}


def _replay(export_dir: str, class_names: Sequence[str], max_latency_ms: float,
            latencies: Dict[str, List[float]], checked: List[str]) -> List[bytes]:
    """The check itself; raises :class:`Refused` at the first rule broken, recording what it checked.
    Returns the images of the ``serving_images`` warm-up requests."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

    try:
        loaded = tf.saved_model.load(export_dir, tags=[SERVE_TAG])
    except (OSError, ValueError, IndexError, RuntimeError, tf.errors.OpError) as err:  # IndexError: truncated
        raise Refused(f"the SavedModel does not load under the {SERVE_TAG!r} tag TF Serving asks for: "
                      f"{str(err).splitlines()[0]}") from err
    missing = [name for name in SIGNATURES if name not in loaded.signatures]
    if missing:
        raise Refused(f"the SavedModel lacks signature(s) {', '.join(missing)}")
    checked.append(f"loads under the {SERVE_TAG!r} tag with signatures {', '.join(SIGNATURES)}")
    warmup = os.path.join(export_dir, WARMUP_PATH)
    if not tf.io.gfile.exists(warmup):
        raise Refused(f"no warm-up requests at {WARMUP_PATH}")
    records = [record.numpy() for record in tf.data.TFRecordDataset(warmup).take(MAX_WARMUP_RECORDS + 1)]
    if not records:
        raise Refused("the warm-up file holds no requests")
    if len(records) > MAX_WARMUP_RECORDS:
        raise Refused(f"the warm-up file holds more than {MAX_WARMUP_RECORDS} records: TF Serving refuses to load "
                      "the version")
    checked.append(f"{len(records)} warm-up records (TF Serving's limit: {MAX_WARMUP_RECORDS})")
    images: List[bytes] = []
    for index, record in enumerate(records, start=1):
        log = prediction_log_pb2.PredictionLog.FromString(record)
        kind = log.WhichOneof("log_type")
        if kind != "predict_log":
            raise Refused(f"warm-up record {index} is a {kind or 'empty log'}; this check replays predict_log only")
        wire = predict_pb2.PredictRequest.FromString(log.predict_log.request.SerializeToString())
        signature = wire.model_spec.signature_name or EXAMPLES_SIGNATURE
        if signature not in loaded.signatures or not wire.inputs:
            raise Refused(f"warm-up record {index} asks for signature {signature!r} with inputs "
                          f"{sorted(wire.inputs)}")
        inputs = {key: tf.make_ndarray(value) for key, value in wire.inputs.items()}
        if signature == IMAGES_SIGNATURE:
            images += [bytes(image) for image in inputs.get(IMAGES_INPUT, [])]
        grpc_outputs = _timed_call(loaded.signatures[signature], inputs, signature, latencies)
        rest_inputs = decode_rest_body(rest_body(signature, inputs), sorted(inputs))
        rest_outputs = _call(loaded.signatures[signature], rest_inputs, signature)
        _check_answer(signature, grpc_outputs, rest_outputs, class_names, len(next(iter(inputs.values()))))
        slowest = max(latencies[f"{signature}[{len(next(iter(inputs.values())))}]"])
        if slowest > max_latency_ms:
            raise Refused(f"{signature} took {slowest:.0f} ms for a warm batch, over the {max_latency_ms:g} ms bound")
    checked.append("every request through the gRPC and the REST JSON encodings, with equal answers")
    checked.append(f"answers the client accepts, warm latency under {max_latency_ms:g} ms")
    return images


def _call(signature_fn, inputs, name: str) -> Dict[str, "np.ndarray"]:  # noqa: F821
    import tensorflow as tf

    try:
        outputs = signature_fn(**{key: tf.constant(value) for key, value in inputs.items()})
    except (TypeError, ValueError, tf.errors.OpError) as err:
        raise Refused(f"{name} fails on its warm-up request: {str(err).splitlines()[0]}") from err
    return {key: value.numpy() for key, value in outputs.items()}


def _timed_call(signature_fn, inputs, name: str, latencies: Dict[str, List[float]]):
    """Two calls (the first traces; the second is what a warm server does); the second is timed."""
    for _ in range(2):
        start = time.perf_counter()
        outputs = _call(signature_fn, inputs, name)
        elapsed = (time.perf_counter() - start) * 1000
    latencies.setdefault(f"{name}[{len(next(iter(inputs.values())))}]", []).append(round(elapsed, 2))
    return outputs


def _check_answer(signature: str, grpc_outputs, rest_outputs, class_names: Sequence[str], batch: int) -> None:
    import numpy as np

    from cifar_tfx.serving.client import PredictError, checked_predictions

    probabilities = grpc_outputs.get("probabilities")
    if probabilities is None or tuple(probabilities.shape) != (batch, len(class_names)):
        shape = None if probabilities is None else tuple(probabilities.shape)
        raise Refused(f"{signature} answers probabilities of shape {shape}, expected ({batch}, {len(class_names)})")
    if not np.allclose(probabilities, rest_outputs.get("probabilities"), atol=1e-5, equal_nan=True):
        raise Refused(f"{signature} answers differently over REST JSON than over gRPC")
    try:
        rows = json.loads(rest_answer(grpc_outputs))["predictions"]
        checked_predictions(rows, class_names, batch, f"{signature} (as REST JSON)")
    except (PredictError, UnicodeDecodeError) as err:
        raise Refused(str(err)) from err


CHECK_TIMEOUT_SECONDS = 900.0  # loading and replaying a ResNet-110 on a slow CPU takes a few minutes


def run_check(export_dir: str, class_names: Sequence[str], max_latency_ms: float,
              timeout_seconds: float = CHECK_TIMEOUT_SECONDS) -> Dict[str, object]:
    """:func:`check_saved_model` in a fresh Python process (nothing of this one's state leaks in)."""
    command = [sys.executable, "-m", "cifar_tfx.serving.check", export_dir,
               "--classes", json.dumps(list(class_names)), "--max-latency-ms", str(max_latency_ms)]
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_seconds, env=env)
    except subprocess.TimeoutExpired:
        return {"ok": False, "reason": f"the check did not finish within {timeout_seconds:g} s", "latency_ms": {}}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"ok": False, "reason": f"the check process failed: {tail}", "latency_ms": {}}
    return read_verdict(lines[-1])


def read_verdict(line: str) -> Dict[str, object]:
    """The check process's verdict from its last JSON line, read by the bounded reader; a line that is no
    verdict (a library's output, too deep, not an object with ``ok``) is a failed check that says so."""
    from cifar_tfx.bounded_input import InputRefused, parse_json

    try:
        verdict = parse_json(line, what="the check process's verdict")
    except InputRefused as err:
        return {"ok": False, "reason": str(err), "latency_ms": {}}
    if not isinstance(verdict, dict) or not isinstance(verdict.get("ok"), bool) \
            or not isinstance(verdict.get("reason", ""), str):
        return {"ok": False, "reason": f"the check process printed no verdict: {line[:120]}", "latency_ms": {}}
    return {"reason": "", "latency_ms": {}, **verdict}


def main(argv: Sequence[str] = ()) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("export_dir")
    parser.add_argument("--classes", required=True, help="JSON list of the dataset's class names")
    parser.add_argument("--max-latency-ms", type=float, required=True)
    args = parser.parse_args(list(argv) or None)
    print(json.dumps(check_saved_model(args.export_dir, json.loads(args.classes), args.max_latency_ms)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
