"""Time and peak memory of `data verify` refusing each hostile file of issue 20 (goal: < 2 s, < 200 MB).

    python -m benchmarks.hostile_input

Each case is a folder in the python layout whose first training batch is replaced; `cifar-tfx data
verify` runs on it in a fresh process (interpreter start included), whose peak RSS is read from wait4.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import tempfile
import time

from cifar_tfx.data.synth import write_dataset


def _exponential() -> bytes:
    node = [b"x"]
    for _ in range(40):
        node = [node, node]
    return pickle.dumps({b"data": node, b"labels": node}, protocol=2)


def _deep() -> bytes:
    return b"\x80\x02" + b"]" * 100_000 + b"a" * 99_999 + b"."


CASES = {
    "exponential pickle (40 levels of shared references, 2**40 items if copied)": _exponential,
    "pickle nested 100,000 deep": _deep,
    "valid batch followed by 1 GiB of zeros": None,
}


def _run(folder: str):
    started = time.monotonic()
    child = subprocess.Popen([sys.executable, "-m", "cifar_tfx.cli", "data", "verify", folder],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.monotonic() - started
    error = child.stderr.read().decode().strip().splitlines()[-1:] if child.stderr else []
    return os.waitstatus_to_exitcode(status), seconds, usage.ru_maxrss / 1024, error


def main() -> None:
    for name, make in CASES.items():
        with tempfile.TemporaryDirectory() as folder:
            write_dataset(folder, train=50, test=10, seed=1)
            batch = os.path.join(folder, "cifar-10-batches-py", "data_batch_1")
            if make is None:
                with open(batch, "ab") as handle:
                    handle.truncate(os.path.getsize(batch) + (1 << 30))  # sparse
            else:
                with open(batch, "wb") as handle:
                    handle.write(make())
            code, seconds, peak_mb, error = _run(folder)
            print(f"{name}: exit {code}, {seconds:.2f} s, peak {peak_mb:.0f} MB; {error[0][:100] if error else ''}")


if __name__ == "__main__":
    main()
