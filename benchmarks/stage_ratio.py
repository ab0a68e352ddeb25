"""Non-training stages against one ResNet-56 training epoch, from a finished run's ML Metadata.

    .venv/bin/python -m benchmarks.stage_ratio --pipeline-root PATH [--run latest]

The epoch time on the same machine comes from the Trainer: its measured throughput when it
trained ResNet-56 (e.g. ``--profile full --time-budget-minutes 10``), else, for a budget run,
the ResNet-56 throughput its probe fit predicted (said so in the output). Prints
each non-training component's wall time (ExampleGen through Transform, Evaluator,
Pusher, as ML Metadata recorded them), their sum, one epoch (training examples /
training images per second) and the ratio.
"""

from __future__ import annotations

import argparse
import json
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

NON_TRAINING = ("CifarExampleGen", "StatisticsGen", "SchemaGen", "PinSchema", "ExampleValidator", "AnomalyGate",
                "Transform", "Evaluator", "Pusher")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pipeline-root", required=True)
    parser.add_argument("--run", default="latest")
    args = parser.parse_args()

    from cifar_tfx import storage
    from cifar_tfx.reporting.run_record import load_run

    record = load_run(args.pipeline_root, args.run)
    examples = record.artifact("CifarExampleGen", "examples")
    model_run = record.artifact("Trainer", "model_run")
    if examples is None or model_run is None:
        raise SystemExit("the run has no ExampleGen or Trainer output")
    training = json.loads(storage.read_bytes(storage.join(model_run.uri, "report", "training.json")))
    choice = training.get("network_choice") or training.get("depth_choice") or {}  # depth_choice: older reports
    predicted = choice.get("predicted_images_per_second", {}) if choice.get("knob", "depth") == "depth" else {}
    network = training.get("network") or f"ResNet-{training['hparams']['depth']}"
    if training["hparams"].get("architecture", "resnet") == "resnet" and training["hparams"]["depth"] == 56:
        rate, source = training["images_per_second"], "measured"
    elif "56" in predicted:
        rate = float(predicted["56"])
        source = f"predicted by the budget's depth probe (the run trained {network})"
    else:
        raise SystemExit(f"the run trained {network} without a depth probe: no ResNet-56 rate to compare with "
                         "(run --profile full --time-budget-minutes 10, or a budget with --architecture resnet)")
    train_examples = int(examples.properties["train_examples"])
    epoch = train_examples / rate
    total = 0.0
    for name in NON_TRAINING:
        component = record.component(name)
        if component is None:
            continue
        total += component.seconds
        print(f"{name:>18}: {component.seconds:6.1f} s  ({component.state})")
    print(f"non-training stages: {total:.1f} s; one ResNet-56 epoch of {train_examples:,} images at "
          f"{rate:,.0f} img/s ({source}): {epoch:.1f} s; ratio {total / epoch:.2f}")


if __name__ == "__main__":
    main()
