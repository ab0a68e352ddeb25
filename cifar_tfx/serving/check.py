"""Check that a SavedModel can be served, the way TFX's InfraValidator would, without Docker.

``python -m cifar_tfx.serving.check EXPORT_DIR --classes a,b,c [--max-latency-ms N]`` loads the
model in a fresh process, replays its TF Serving warm-up requests
(``assets.extra/tf_serving_warmup_requests``) through the signatures they name, and
prints one JSON object: ``{"ok": bool, "reason": str, "latency_ms": {...}}``. It refuses a
model that does not load, lacks a signature or the warm-up file, answers with the wrong
shape, probabilities that do not sum to 1 or class names that are not the dataset's,
or whose slowest warm request exceeds the latency bound. The Pusher runs it before
publishing a version (``run_check``), so the serving folder never gets such a model.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Dict, List, Sequence
from cifar_tfx.model_contract import EXAMPLES_SIGNATURE, IMAGES_SIGNATURE, WARMUP_PATH

SIGNATURES = (EXAMPLES_SIGNATURE, IMAGES_SIGNATURE)


def check_saved_model(export_dir: str, class_names: Sequence[str], max_latency_ms: float) -> Dict[str, object]:
    """Load ``export_dir`` here and replay its warm-up requests; return the verdict as a dict."""
    import numpy as np
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    def refused(reason: str, latencies=None) -> Dict[str, object]:
        return {"ok": False, "reason": reason, "latency_ms": latencies or {}}

    try:
        loaded = tf.saved_model.load(export_dir)
    except (OSError, ValueError, tf.errors.OpError) as err:
        return refused(f"the SavedModel does not load: {str(err).splitlines()[0]}")
    missing = [name for name in SIGNATURES if name not in loaded.signatures]
    if missing:
        return refused(f"the SavedModel lacks signature(s) {', '.join(missing)}")
    warmup = os.path.join(export_dir, WARMUP_PATH)
    if not tf.io.gfile.exists(warmup):
        return refused(f"no warm-up requests at {WARMUP_PATH}")
    latencies: Dict[str, List[float]] = {}
    names = set(class_names)
    for record in tf.data.TFRecordDataset(warmup):
        request = prediction_log_pb2.PredictionLog.FromString(record.numpy()).predict_log.request
        signature = request.model_spec.signature_name or EXAMPLES_SIGNATURE
        inputs = {key: tf.constant(tf.make_ndarray(value)) for key, value in request.inputs.items()}
        batch = int(next(iter(inputs.values())).shape[0])
        for attempt in range(2):  # the first call traces; the second is what a warm server does
            start = time.perf_counter()
            try:
                outputs = loaded.signatures[signature](**inputs)
            except (TypeError, ValueError, tf.errors.OpError) as err:
                return refused(f"{signature} fails on its warm-up request: {str(err).splitlines()[0]}")
            elapsed = (time.perf_counter() - start) * 1000
        latencies.setdefault(f"{signature}[{batch}]", []).append(round(elapsed, 2))
        probabilities = outputs.get("probabilities")
        if probabilities is None or tuple(probabilities.shape) != (batch, len(class_names)):
            shape = None if probabilities is None else tuple(probabilities.shape)
            return refused(f"{signature} answers probabilities of shape {shape}, expected "
                           f"({batch}, {len(class_names)})", latencies)
        if not np.allclose(probabilities.numpy().sum(axis=1), 1.0, atol=1e-3):
            return refused(f"{signature} answers probabilities that do not sum to 1", latencies)
        answered = {name.decode() for name in outputs["class_name"].numpy()} if "class_name" in outputs else None
        if answered is None or not answered <= names:
            return refused(f"{signature} answers class names {sorted(answered or [])} outside the dataset's",
                           latencies)
        if elapsed > max_latency_ms:
            return refused(f"{signature} took {elapsed:.0f} ms for a warm batch of {batch}, over the "
                           f"{max_latency_ms:g} ms bound", latencies)
    if not latencies:
        return refused("the warm-up file holds no requests")
    return {"ok": True, "reason": "", "latency_ms": latencies}


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
    return json.loads(lines[-1])


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
