"""Is Beam's TFRecord CRC a cost? The implementation Beam falls back to versus a C library.

    .venv/bin/python -m benchmarks.tfrecord_crc

Beam's ``WriteToTFRecord`` checksums every record with CRC-32C. Without python-snappy it
warns and uses ``crcmod``; this prints whether crcmod's C extension is loaded, its
throughput next to google-crc32c's (both in the lock), and what that means for one pass
over 60,000 CIFAR-sized PNG examples (about 3 KB each).
"""

from __future__ import annotations

import os
import time


def megabytes_per_second(function, data: bytes, repeats: int = 5000) -> float:
    started = time.perf_counter()
    for _ in range(repeats):
        function(data)
    return repeats * len(data) / (time.perf_counter() - started) / 1e6


def main() -> None:
    import importlib

    import crcmod.predefined
    import google_crc32c

    uses_extension = importlib.import_module("crcmod.crcmod")._usingExtension  # the package re-exports a function

    record = os.urandom(3000)
    beam_fallback = megabytes_per_second(crcmod.predefined.mkPredefinedCrcFun("crc-32c"), record)
    library = megabytes_per_second(google_crc32c.value, record)
    dataset_mb = 60_000 * 3000 / 1e6
    print(f"crcmod (C extension loaded: {uses_extension}): {beam_fallback:,.0f} MB/s, "
          f"{dataset_mb / beam_fallback:.2f} s per 60,000-example pass")
    print(f"google-crc32c ({google_crc32c.implementation}): {library:,.0f} MB/s, "
          f"{dataset_mb / library:.3f} s per pass")


if __name__ == "__main__":
    main()
