"""``cifar-tfx report``: one self-contained HTML page for one pipeline run.

Everything comes from what the run left behind: ML Metadata (components, wall times,
artifacts), the Trainer's TensorBoard events and report folder, the Evaluator's TFMA
output (with its confusion matrix: the test split is read by the Evaluator only), the ExampleGen TFRecords and the trained SavedModel (for the misclassified
images). Pictures are embedded as base64 PNGs, so the file can be mailed or archived.
"""

from __future__ import annotations

import base64
import glob
import html
import os
from typing import Dict, List, Optional, Sequence, Tuple

from cifar_tfx import storage
from cifar_tfx.data.datasets import DATASETS, DEFAULT_DATASET, DatasetSpec
from cifar_tfx.model_contract import EXAMPLES_SIGNATURE
from cifar_tfx.pipeline import component_ids as ids
from cifar_tfx.reporting import report_figures
from cifar_tfx.components.gate import Bounds, Metrics
from cifar_tfx.reporting.outcome import read_confusion, read_gate, training_report, training_summary
from cifar_tfx.reporting.run_record import RunRecord, load_run

MISCLASSIFIED_SHOWN = 32
_STYLE = """body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}
img{max-width:100%;border:1px solid #eee}.ok{color:#070}.bad{color:#b00}code{font-size:90%}"""


# Once loaded, the page records on <body> how many of its pictures decoded (a headless browser reads it).
_SELF_CHECK = """<script>window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  var ok = images.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  document.body.setAttribute("data-images-loaded", ok);
  document.body.setAttribute("data-images-broken", images.length - ok);
});</script>"""


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _table(rows: Sequence[Tuple[object, ...]], header: Sequence[str] = ()) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table>{'<tr>' + head + '</tr>' if head else ''}{body}</table>"


def _scalars(model_run_uri: str) -> Dict[str, List[Tuple[int, float, float]]]:
    import tensorflow as tf

    rows: Dict[str, List[Tuple[int, float, float]]] = {}
    for path in sorted(glob.glob(os.path.join(model_run_uri, "train", "events.out.tfevents.*"))):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                rows.setdefault(value.tag, []).append(
                    (event.step, event.wall_time, float(tf.make_ndarray(value.tensor))))
    return {tag: sorted(values) for tag, values in rows.items()}


def _gate_rows(bounds: Bounds, baseline: Optional[Metrics]) -> List[Tuple[str, str]]:
    """The bounds the Evaluator applied and the baseline it compared with."""
    rows = [("minimum accuracy", f"{bounds.min_accuracy:.4f}"),
            ("allowed drop against the last blessed model", f"{bounds.max_regression:.4f}"),
            ("minimum accuracy of every class", f"{bounds.min_class_accuracy:.4f}" if bounds.min_class_accuracy
             else "none")]
    rows.append(("last blessed model's accuracy (baseline)", "none: first blessed model" if baseline is None
                 else f"{baseline.accuracy:.4f}"))
    return rows


def _hparam_rows(values: Dict[str, object]) -> List[Tuple[str, str, str]]:
    """``(option, value, what it is)`` for each recorded hyperparameter, in declaration order."""
    from cifar_tfx.cli_hparams import option_name
    from cifar_tfx.trainer.hparams import knobs

    rows = []
    for name, (_, declared) in knobs().items():
        if name in values:
            value = values[name]
            shown = "unset" if value is None else f"{value} {declared.unit}".strip()
            rows.append((option_name(name) if declared.flag else name, shown, declared.help))
    return rows


def _read_examples(examples_uri: str, split: str, keep_records: int = 0):
    """``(the first keep_records serialized records, every label)`` of one ExampleGen split, in one pass."""
    import tensorflow as tf

    from cifar_tfx.example_format import LABEL_KEY

    files = sorted(tf.io.gfile.glob(storage.join(examples_uri, f"Split-{split}", "*")))
    dataset = tf.data.TFRecordDataset(files, compression_type="GZIP")
    records, labels = [], []
    for batch in dataset.batch(1024):
        parsed = tf.io.parse_example(batch, {LABEL_KEY: tf.io.FixedLenFeature([1], tf.int64)})
        if len(records) < keep_records:
            records.extend(batch.numpy().tolist()[:keep_records - len(records)])
        labels.extend(parsed[LABEL_KEY].numpy().reshape(-1).tolist())
    return records, labels


def _misclassified(model_uri: str, records: List[bytes], labels: List[int], class_names: Sequence[str]):
    import tensorflow as tf

    from cifar_tfx.example_format import IMAGE_KEY

    serve = tf.saved_model.load(storage.join(model_uri, "Format-Serving")).signatures[EXAMPLES_SIGNATURE]
    wrong: List[Tuple[bytes, int, int]] = []
    for start in range(0, len(records), 256):
        chunk = records[start:start + 256]
        predicted = serve(examples=tf.constant(chunk))["class_id"].numpy()
        for record, truth, guess in zip(chunk, labels[start:start + 256], predicted):
            if int(guess) != int(truth):
                wrong.append((record, int(truth), int(guess)))
        if len(wrong) >= MISCLASSIFIED_SHOWN:
            break
    images, captions = [], []
    for record, truth, guess in wrong[:MISCLASSIFIED_SHOWN]:
        encoded = tf.io.parse_single_example(record, {IMAGE_KEY: tf.io.FixedLenFeature([1], tf.string)})[IMAGE_KEY]
        images.append(tf.io.decode_image(encoded[0], expand_animations=False).numpy())
        captions.append(f"{class_names[truth]} -> {class_names[guess]}")
    return images, captions


def _dataset_of(record: RunRecord, training: Dict[str, object]) -> DatasetSpec:
    name = str(training.get("dataset") or "")
    if name in DATASETS:
        return DATASETS[name]
    return next((spec for spec in DATASETS.values() if record.pipeline_name.startswith(spec.name.replace("_", "-"))),
                DATASETS[DEFAULT_DATASET])


def _gate_section(record: RunRecord, gate) -> List[str]:
    """The decision, the bounds the Evaluator applied and what the Pusher did."""
    parts = ["<h2>Gate decision</h2>"]
    blessing = record.artifact(ids.EVALUATOR, "blessing")
    pushed = record.artifact(ids.PUSHER, "pushed_model")
    if gate is not None:
        bounds, candidate, baseline, decision = gate
        blessed = blessing is not None and blessing.properties.get("blessed") == 1
        verdict = "blessed" if blessed else "not blessed: " + ("; ".join(decision.failures) or "see below")
        parts.append(f'<p class="{"ok" if blessed else "bad"}">Test accuracy {candidate.accuracy:.4f}: '
                     f'{html.escape(verdict)}</p>')
        parts.append(_table(_gate_rows(bounds, baseline)))
    else:
        parts.append("<p class=bad>The run stopped before the Evaluator.</p>")
    if pushed is not None:
        if pushed.properties.get("pushed") == 1:
            parts.append(f"<p>Pushed as version {html.escape(str(pushed.properties.get('pushed_version')))} to "
                         f"<code>{html.escape(str(pushed.properties.get('pushed_destination')))}</code>.</p>")
        else:
            check = pushed.properties.get("serving_check")
            parts.append("<p>Not pushed" + (f" (serving check: {html.escape(str(check))})"
                                             if check and check != "passed" else "") + ".</p>")
    return parts


def _training_section(model_run, evaluation, gate) -> List[str]:
    """Curves, then the Evaluator's confusion matrix and per-class accuracy on the test split."""
    parts: List[str] = []
    if model_run is not None:
        parts.append("<h2>Training</h2>")
        summary = training_summary(model_run.uri)
        if summary:
            parts.append(f"<p>{html.escape(summary)}</p>")
        scalars = _scalars(model_run.uri)
        if scalars:
            parts.append(_img(report_figures.training_curves(scalars), "training curves"))
    confusion = read_confusion(evaluation.uri) if evaluation is not None else None
    if confusion is not None:
        parts.append("<h2>Test split: confusion matrix (Evaluator)</h2>")
        parts.append(_img(report_figures.confusion_matrix(confusion[1], confusion[0]), "confusion matrix"))
    if gate is not None and gate[1].class_accuracy:
        parts.append("<h2>Per-class accuracy (Evaluator)</h2>")
        parts.append(_img(report_figures.per_class_accuracy(dict(gate[1].class_accuracy)), "per-class accuracy"))
    return parts


def _data_section(record: RunRecord, names: Sequence[str], max_examples: int) -> List[str]:
    """Misclassified test images and images per class and split (each split read once)."""
    examples = record.artifact(ids.EXAMPLE_GEN, "examples")
    model = record.artifact(ids.TRAINER, "model")
    if examples is None:
        return []
    parts: List[str] = []
    labels_by_split: Dict[str, List[int]] = {}
    records, labels_by_split["test"] = _read_examples(examples.uri, "test", max_examples)
    labels_by_split["train"] = _read_examples(examples.uri, "train")[1]
    if model is not None:
        images, captions = _misclassified(model.uri, records, labels_by_split["test"], names)
        parts.append(f"<h2>Misclassified test images (first {len(images)} in the first {len(records):,})</h2>")
        parts.append(_img(report_figures.misclassified_grid(images, captions), "misclassified images")
                     if images else "<p>None.</p>")
    parts.append("<h2>Data</h2>")
    parts.append(_img(report_figures.class_counts(report_figures.per_split_counts(labels_by_split, names),
                                                  names), "images per class"))
    parts.append(_table([(key, value) for key, value in sorted(examples.properties.items())]))
    return parts


def _run_section(record: RunRecord, training: Dict[str, object]) -> List[str]:
    """Components with their wall time, the hyperparameters as trained, and the lineage."""
    parts = ["<h2>Components</h2>", _table(
        [(c.node, c.state, f"{c.seconds:.1f} s", ", ".join(sorted(c.outputs)) or "-") for c in record.components],
        ("component", "state", "wall time", "outputs"))]
    if training.get("hparams"):
        parts.append("<h2>Hyperparameters (as trained; the gate's are above)</h2>")
        parts.append(_table(_hparam_rows(training["hparams"]), ("option", "value", "what it is")))
        choice = training.get("network_choice") or training.get("depth_choice")  # reports before ResNet-9
        if choice:
            parts.append(f"<p>Network chosen for the budget: {html.escape(str(choice.get('reason')))}</p>")
    parts.append("<h2>Lineage</h2>")
    lineage = [(f"{c.node}.{key}", artifact.uri) for c in record.components
               for key, artifacts in sorted(c.outputs.items()) for artifact in artifacts]
    parts.append(_table(lineage, ("artifact", "URI")))
    return parts


def build_report(pipeline_root: str, run: str = "latest", max_examples: int = 2000) -> Tuple[str, RunRecord]:
    """``(HTML page, run record)`` for ``run`` of the pipeline at ``pipeline_root``."""
    record = load_run(pipeline_root, run)
    model_run = record.artifact(ids.TRAINER, "model_run")
    training = training_report(model_run.uri) if model_run else {}
    names = list(_dataset_of(record, training).class_names)
    evaluation = record.artifact(ids.EVALUATOR, "evaluation")
    gate = read_gate(evaluation.uri) if evaluation is not None else None
    parts = [f"<h1>{html.escape(record.pipeline_name)}: run {html.escape(record.run_id)}</h1>"]
    parts += _gate_section(record, gate) + _training_section(model_run, evaluation, gate)
    parts += _data_section(record, names, max_examples) + _run_section(record, training)
    page = (f"<!doctype html><html><head><meta charset=utf-8><title>{html.escape(record.pipeline_name)} "
            f"{html.escape(record.run_id)}</title><style>{_STYLE}</style></head><body>"
            + "\n".join(parts) + _SELF_CHECK + "</body></html>")
    return page, record


def write_report(pipeline_root: str, run: str = "latest", out: Optional[str] = None) -> str:
    """Write the report (default ``<pipeline_root>/reports/<run id>.html``); return its path."""
    page, record = build_report(pipeline_root, run)
    path = out or os.path.join(pipeline_root, "reports", f"{record.run_id}.html")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(page)
    return path
