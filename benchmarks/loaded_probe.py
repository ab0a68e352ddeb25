"""A budget run with another CPU-bound process beside it while the Trainer probes network sizes.

    .venv/bin/python -m benchmarks.loaded_probe --seconds 75 -- \
        .venv/bin/cifar-tfx run --data <cifar-10-python.tar.gz> --time-budget-minutes 30

Runs the command after ``--``, and when it prints ``Trainer: started`` starts one busy
Python loop (one core's worth of load) for ``--seconds``: long enough to cover the probe
(35-50 s: ResNet-9's widths on CIFAR-10, depths on Fashion-MNIST), over before the Trainer's
recheck times its own training after the first epoch.
Prints the command's output as it comes (the Trainer's ``budget:`` lines say what the probe
chose and what the recheck did) and exits with the command's exit code. What a user's busy
machine does to the network choice: BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

BUSY_LOOP = "import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end:\n    pass\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=75.0, help="how long the busy loop runs")
    parser.add_argument("--when", default="Trainer: started", help="start the loop when a line starts with this")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the run command")
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the run command after --")
    run = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    busy = None
    for line in run.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
        if busy is None and line.startswith(args.when):
            busy = subprocess.Popen([sys.executable, "-c", BUSY_LOOP.format(seconds=args.seconds)])
            print(f"loaded_probe: a busy loop runs beside the Trainer for {args.seconds:g} s", flush=True)
    code = run.wait()
    if busy is None:
        print(f"loaded_probe: no line started with {args.when!r}: nothing was loaded", flush=True)
    else:
        busy.wait()
    sys.exit(code)


if __name__ == "__main__":
    main()
