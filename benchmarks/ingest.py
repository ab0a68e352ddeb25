"""Ingestion throughput and peak memory on a 60,000-image `data synth` dataset.

    .venv/bin/python -m benchmarks.ingest [--train 50000 --test 10000]

Runs `data verify` (on the folder, and on a .tar.gz of it with and without the read-ahead
thread) and the ExampleGen executor (Beam DirectRunner), each in a fresh child process, and
prints images/s and the child's peak resident memory.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tarfile
import tempfile
import time

VERIFY = "from cifar_tfx.data.verify import verify; import sys; verify(sys.argv[1])"
# The same, with the archive inflated in the reading thread (no read-ahead thread): what the
# read-ahead buys.
VERIFY_INLINE = ("import cifar_tfx.data.reader as reader; reader.ReadAhead = lambda source: source\n"
                 "from cifar_tfx.data.verify import verify; import sys; verify(sys.argv[1])")
EXAMPLE_GEN = (
    "import os, sys; os.environ['TF_USE_LEGACY_KERAS'] = '1'\n"
    "from tfx.types import standard_artifacts\n"
    "from cifar_tfx.components.example_gen import CifarExampleGenExecutor\n"
    "examples = standard_artifacts.Examples(); examples.uri = sys.argv[2]\n"
    "CifarExampleGenExecutor().Do({}, {'examples': [examples]},"
    " {'data_path': sys.argv[1], 'dataset': 'cifar10', 'num_shards': 4})\n"
)
IMPORT_ONLY = (
    "import os; os.environ['TF_USE_LEGACY_KERAS'] = '1'\n"
    "from tfx.types import standard_artifacts\n"
    "from cifar_tfx.components.example_gen import CifarExampleGenExecutor\n"
)


# VmHWM, not getrusage: Linux carries ru_maxrss across fork+exec, so a child would
# report its parent's peak. VmHWM belongs to the child's own address space.
_REPORT_PEAK = ("\nprint([line.split()[1] for line in open('/proc/self/status')"
                " if line.startswith('VmHWM')][0])\n")


def run_child(code: str, *args: str) -> tuple:
    """(wall seconds, peak RSS MiB) of ``python -c code args`` in a fresh process."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code + _REPORT_PEAK, *args], check=True,
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    seconds = time.perf_counter() - start
    return seconds, int(done.stdout.split()[-1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--train", type=int, default=50_000)
    parser.add_argument("--test", type=int, default=10_000)
    args = parser.parse_args()
    from cifar_tfx.data.synth import write_dataset

    total = args.train + args.test
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        write_dataset(os.path.join(tmp, "data"), args.train, args.test)
        print(f"data synth: {total} images in {time.perf_counter() - start:.1f} s")
        seconds, peak = run_child(VERIFY, os.path.join(tmp, "data"))
        print(f"data verify (folder): {total / seconds:,.0f} images/s ({seconds:.1f} s incl. interpreter start), "
              f"peak RSS {peak:,.0f} MiB")
        archive = os.path.join(tmp, "cifar-10-python.tar.gz")
        with tarfile.open(archive, "w:gz") as tar:  # the official archive's layout and compression
            tar.add(os.path.join(tmp, "data", "cifar-10-batches-py"), arcname="cifar-10-batches-py")
        inline_seconds, inline_peak = run_child(VERIFY_INLINE, archive)
        print(f"data verify (.tar.gz, gzip CRC checked, inflated inline): {total / inline_seconds:,.0f} images/s "
              f"({inline_seconds:.1f} s incl. interpreter start), peak RSS {inline_peak:,.0f} MiB")
        seconds, peak = run_child(VERIFY, archive)
        print(f"data verify (.tar.gz, gzip CRC checked, inflated in a read-ahead thread): {total / seconds:,.0f} "
              f"images/s ({seconds:.1f} s incl. interpreter start), peak RSS {peak:,.0f} MiB; "
              f"{inline_seconds / seconds:.2f}x the inline rate")
        import_seconds, _ = run_child(IMPORT_ONLY)
        seconds, peak = run_child(EXAMPLE_GEN, os.path.join(tmp, "data"), os.path.join(tmp, "examples"))
        work = seconds - import_seconds
        print(f"ExampleGen executor: {total / work:,.0f} images/s ({work:.1f} s after {import_seconds:.1f} s "
              f"of imports), peak RSS {peak:,.0f} MiB")


if __name__ == "__main__":
    main()
