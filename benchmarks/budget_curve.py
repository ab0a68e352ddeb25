"""Test accuracy against wall-clock budget on the full CIFAR-10: a table and a picture.

    .venv/bin/python -m benchmarks.budget_curve --data <cifar-10-python.tar.gz> \
        --points budget:5 budget:10 budget:20 budget:30 seed:10 seed:30

Each point is one run of the README's command, ``cifar-tfx run --data D --time-budget-minutes N``
(``budget``: the budget profile, ResNet-9 with its width chosen on the machine), the same with
``--architecture resnet`` (``budget-resnet``: the budget profile's CIFAR ResNet with its depth chosen on
the machine, what ``budget`` was before it trained ResNet-9) or with ``--profile full`` (``seed``: the
seed's rule, ResNet-56 with drops at 1/2 and 3/4 of the budget), on one pipeline root, so ExampleGen,
StatisticsGen and Transform run once and are cached after. A point's test accuracy is the
Evaluator's (the run's last line); each point is a reported run and reads the test set once.

Points can be run in parts, on different days: each is stored with its date, commit, wall time
and peak memory in ``--table`` (JSON; a new run of the same point replaces it) and the picture
(``--png``) is drawn again from the whole table. ``--plot-only`` redraws without running.
Nothing else should run on the machine meanwhile: the budget is wall-clock time.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import subprocess
import sys
import time
from typing import Dict, List, Optional, Tuple

PROFILES = {"budget": [], "budget-resnet": ["--architecture", "resnet"], "seed": ["--profile", "full"]}
LABELS = {"budget": "budget profile (ResNet-9, width chosen on the machine)",
          "budget-resnet": "budget profile with --architecture resnet (depth chosen on the machine)",
          "seed": "seed's rule (ResNet-56, drops at 1/2 and 3/4)"}
DEFAULT_TABLE = os.path.join("benchmarks", "results", "budget_curve.json")
DEFAULT_PNG = os.path.join("benchmarks", "results", "budget_curve.png")
ACCURACY_LINE = re.compile(r"\(test accuracy ([0-9.]+)\)")
TRAINED_LINE = re.compile(r"^trained (ResNet-[^:]+): ([\d,]+) steps")


def parse_point(text: str) -> Tuple[str, float]:
    """``"budget:10"`` -> ``("budget", 10.0)``; ``ValueError`` naming what is wrong."""
    profile, _, minutes = text.partition(":")
    if profile not in PROFILES or not minutes:
        raise ValueError(f"point {text!r} must be PROFILE:MINUTES with PROFILE one of {', '.join(PROFILES)}")
    return profile, float(minutes)


def read_run_output(stdout: str) -> Dict[str, object]:
    """Test accuracy, network and steps from a run's printed lines (``None`` where absent)."""
    accuracy = network = steps = None
    for line in stdout.splitlines():
        found = ACCURACY_LINE.search(line)
        if found and line.startswith(("pushed:", "not pushed:")):
            accuracy = float(found.group(1))
        trained = TRAINED_LINE.match(line)
        if trained:
            network, steps = trained.group(1), int(trained.group(2).replace(",", ""))
    return {"test_accuracy": accuracy, "network": network, "steps": steps}


def network_of(row: Dict[str, object]) -> Optional[str]:
    """What a row trained: ``network``, or ``depth`` in rows stored before ResNet-9."""
    return row.get("network") or (f"ResNet-{row['depth']}" if row.get("depth") else None)


def run_point(profile: str, minutes: float, data: str, work: str) -> Dict[str, object]:
    """Run one point's command; return what the table keeps."""
    command = [os.path.join(os.path.dirname(sys.executable), "cifar-tfx"), "run", "--data", data,
               "--pipeline-root", os.path.join(work, "root"), "--serving-dir", os.path.join(work, "serving"),
               "--time-budget-minutes", f"{minutes:g}", *PROFILES[profile]]
    print(f"{profile}:{minutes:g}: {' '.join(command)}", flush=True)
    started = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    lines = []
    for line in process.stdout:  # shown as it comes: the run's progress
        sys.stdout.write(line)
        lines.append(line)
    _, status, usage = os.wait4(process.pid, 0)  # this run's own peak memory, not the earlier points'
    wall = time.monotonic() - started
    point = read_run_output("".join(lines))
    if point["test_accuracy"] is None:
        raise SystemExit(f"{profile}:{minutes:g}: the run printed no test accuracy "
                         f"(exit {os.waitstatus_to_exitcode(status)})")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], stdout=subprocess.PIPE, text=True,
                            cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip()
    return dict(point, profile=profile, minutes=minutes, wall_seconds=round(wall, 1),
                peak_rss_gib=round(usage.ru_maxrss / 2**20, 2),
                date=datetime.date.today().isoformat(), commit=commit or None)


def merged(table: List[Dict[str, object]], point: Dict[str, object]) -> List[Dict[str, object]]:
    """``table`` with ``point`` replacing any earlier run of the same profile and budget."""
    kept = [row for row in table if (row["profile"], row["minutes"]) != (point["profile"], point["minutes"])]
    return sorted(kept + [point], key=lambda row: (row["profile"], row["minutes"]))


def plot(table: List[Dict[str, object]], png: str, goal: Optional[float] = 0.90) -> None:
    """Accuracy against budget, one line per profile, each point labelled with its date: above the point when
    it is the best at its budget, below otherwise, so that labels of one budget do not overlap."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 6))
    best_at = {}  # budget -> highest accuracy at it
    for row in table:
        best_at[row["minutes"]] = max(best_at.get(row["minutes"], 0.0), row["test_accuracy"])
    for profile, label in LABELS.items():
        rows = [row for row in table if row["profile"] == profile]
        if not rows:
            continue
        axes.plot([row["minutes"] for row in rows], [100 * row["test_accuracy"] for row in rows], "o-", label=label)
        for row in rows:
            network = f"{network_of(row)}, " if network_of(row) else ""
            axes.annotate(f"{100 * row['test_accuracy']:.2f} %\n{network}{row['date']}",
                          (row["minutes"], 100 * row["test_accuracy"]), textcoords="offset points",
                          xytext=(4, 6) if row["test_accuracy"] == best_at[row["minutes"]] else (4, -22), fontsize=7)
    minutes = [row["minutes"] for row in table]
    accuracies = [100 * row["test_accuracy"] for row in table]
    axes.set_xlim(0, max(minutes) * 1.25)  # room for the last point's label
    axes.set_ylim(min(accuracies) - 5, max(accuracies + [100 * (goal or 0)]) + 4)  # room above for the best labels
    if goal is not None:
        axes.axhline(100 * goal, color="grey", linestyle=":", label=f"goal {100 * goal:.0f} % at 30 min")
    axes.set_xlabel("training budget (minutes, 2 CPU cores; probe included)")
    axes.set_ylabel("CIFAR-10 test accuracy (%)")
    axes.set_title("CIFAR-10 50k/10k: accuracy by wall-clock budget (`cifar-tfx run --time-budget-minutes N`)",
                   fontsize=9)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=1)  # below: no point hidden
    figure.tight_layout()
    os.makedirs(os.path.dirname(png) or ".", exist_ok=True)
    figure.savefig(png, dpi=110)
    plt.close(figure)


def markdown(table: List[Dict[str, object]]) -> str:
    """The table as BENCHMARKS.md shows it."""
    lines = ["| profile | budget | network | steps | test accuracy | wall time | peak RSS | date | commit |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in table:
        network = network_of(row) or "?"
        steps = f"{row['steps']:,}" if row.get("steps") else "?"
        lines.append(f"| {row['profile']} | {row['minutes']:g} min | {network} | {steps} | "
                     f"{row['test_accuracy']:.4f} | {row['wall_seconds'] / 60:.1f} min | {row['peak_rss_gib']} GiB | "
                     f"{row['date']} | {row.get('commit') or '?'} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", help="the full CIFAR-10 (cifar-10-python.tar.gz or its folder)")
    parser.add_argument("--points", nargs="*", default=[], help="PROFILE:MINUTES, e.g. budget:30 seed:10")
    parser.add_argument("--work", default=os.path.join("runs", "budget-curve"), help="pipeline root and serving folder")
    parser.add_argument("--table", default=DEFAULT_TABLE)
    parser.add_argument("--png", default=DEFAULT_PNG)
    parser.add_argument("--plot-only", action="store_true")
    args = parser.parse_args()
    try:
        points = [parse_point(text) for text in args.points]
    except ValueError as err:
        parser.error(str(err))
    if points and not args.data and not args.plot_only:
        parser.error("--data is needed to run points")
    table = json.load(open(args.table)) if os.path.exists(args.table) else []
    for profile, minutes in ([] if args.plot_only else points):
        table = merged(table, run_point(profile, minutes, args.data, args.work))
        os.makedirs(os.path.dirname(args.table) or ".", exist_ok=True)
        with open(args.table, "w") as handle:
            json.dump(table, handle, indent=2)
    if table:
        plot(table, args.png)
        print(markdown(table))
        print(f"picture: {args.png}")


if __name__ == "__main__":
    main()
