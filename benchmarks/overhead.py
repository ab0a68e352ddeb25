"""Where the wall time of one budget run went, from its ML Metadata and the Trainer's report.

    .venv/bin/python -m benchmarks.overhead --pipeline-root PATH [--run latest] [--wall-seconds S]

Prints each component's wall time in run order (as ML Metadata recorded it), splits the Trainer
into its budget (probe and training, ``training.json``'s ``elapsed_seconds``) and the rest (start,
the Trainer's own evaluation where it made one, the export), and, given the whole command's wall time (``/usr/bin/time``), what ran outside every
component (imports, the run report). The overhead is everything but the budget.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pipeline-root", required=True)
    parser.add_argument("--run", default="latest")
    parser.add_argument("--wall-seconds", type=float, default=0.0,
                        help="the whole command's wall time; 0: report the components only")
    args = parser.parse_args()

    from cifar_tfx.pipeline import component_ids as ids
    from cifar_tfx.reporting.outcome import training_report
    from cifar_tfx.reporting.run_record import load_run

    record = load_run(args.pipeline_root, args.run)
    model_run = record.artifact(ids.TRAINER, "model_run")
    budget = float(training_report(model_run.uri).get("elapsed_seconds", 0.0)) if model_run else 0.0
    inside = 0.0
    for component in record.components:  # in start order
        inside += component.seconds
        line = f"{component.node:>20}: {component.seconds:7.1f} s"
        if component.node == ids.TRAINER and budget:
            line += f"  (budget: probe + training {budget:.1f} s; the rest {component.seconds - budget:.1f} s)"
        print(line)
    print(f"{'components':>20}: {inside:7.1f} s, of which outside the Trainer's budget {inside - budget:.1f} s")
    if args.wall_seconds:
        outside = args.wall_seconds - inside
        print(f"{'outside components':>20}: {outside:7.1f} s (imports, the run report)")
        print(f"{'whole command':>20}: {args.wall_seconds:7.1f} s = budget {budget:.1f} s + overhead "
              f"{args.wall_seconds - budget:.1f} s")


if __name__ == "__main__":
    main()
