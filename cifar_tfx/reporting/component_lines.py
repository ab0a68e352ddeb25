"""One console line per finished component: what it produced, read from its output artifacts."""

from __future__ import annotations

from typing import Callable, Dict, Sequence

from cifar_tfx import storage
from cifar_tfx.reporting.outcome import read_gate, training_summary


def _examples(artifact) -> str:
    counts = [f"{artifact.properties[f'{split}_examples']:,} {split}" for split in ("train", "test")
              if f"{split}_examples" in artifact.properties]
    shards = storage.join(artifact.uri, "Split-train")
    files = len(storage.listdir(shards)) if storage.isdir(shards) else 0
    return " + ".join(counts) + f" examples, {files} shards per split" if counts else "examples"


def _evaluation(artifact) -> str:
    gate = read_gate(artifact.uri)
    return "evaluated" if gate is None else f"test accuracy {gate[1].accuracy:.4f}"


def _blessing(artifact) -> str:
    return "blessed" if artifact.properties.get("blessed") == 1 else "not blessed"


def _pushed(artifact) -> str:
    if artifact.properties.get("pushed") == 1:
        return f"pushed version {artifact.properties.get('pushed_version')}"
    check = artifact.properties.get("serving_check")
    return "not pushed" + (f" (serving check: {check})" if check and check != "passed" else "")


_DESCRIBE: Dict[str, Callable[[object], str]] = {
    "examples": _examples,
    "statistics": lambda _: "statistics of each split",
    "schema": lambda _: "schema inferred",
    "pinned_schema": lambda _: "schema pinned to the dataset's shape and classes",
    "anomalies": lambda _: "anomalies checked",
    "transform_graph": lambda _: "transform graph (training-split statistics)",
    "model_run": lambda artifact: training_summary(artifact.uri) or "training report",
    "evaluation": _evaluation,
    "blessing": _blessing,
    "pushed_model": _pushed,
}


def describe(produced: Sequence) -> str:
    """``"50,000 train + 10,000 test examples, 4 shards per split"`` and the like; ``"cached"`` if nothing new.

    ``produced`` holds :class:`~cifar_tfx.reporting.run_record.ProducedArtifact` of one component.
    """
    if not produced:
        return "done (a check that passed, or a resolver)"
    parts = []
    for artifact in produced:
        describe_one = _DESCRIBE.get(artifact.output)
        if describe_one is not None:
            text = describe_one(artifact)
            if text not in parts:
                parts.append(text)
    text = "; ".join(parts) or ", ".join(sorted({a.output for a in produced}))
    return f"cached: {text} (from an earlier run)" if all(a.cached for a in produced) else text
