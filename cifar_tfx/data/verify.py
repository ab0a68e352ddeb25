"""Summaries of a dataset that identify its content: counts, per-class counts, digests.

``duplicates`` counts exact-pixel duplicate images within each split and test images
that also occur in the training split (train/test leakage).

The digest of a split is the hex SHA-256 over its examples in batch order, each
contributing its image bytes in height-width-channel order followed by its label
as one byte. It depends only on pixels and labels, so the pickled and the binary
archive of the same data (or an extracted folder) give the same digest.
"""

from __future__ import annotations

import hashlib
from typing import Dict, Iterable, List

import numpy as np

from cifar_tfx.data.datasets import CIFAR10, SPLITS, DatasetSpec
from cifar_tfx.data.errors import DataLeakageError, RecordError
from cifar_tfx.data.reader import Batch, read_batches


def example_records(batch: Batch) -> np.ndarray:
    """``[N, image_bytes + 1]`` uint8: each row an example's HWC pixels then its label."""
    flat = batch.images.reshape(len(batch), -1)
    return np.concatenate([flat, batch.labels.reshape(-1, 1)], axis=1)


def summarize_split(batches: Iterable[Batch], num_classes: int) -> Dict[str, object]:
    """Count, per-class counts and digest of one split's batches."""
    digest = hashlib.sha256()
    classes = np.zeros(num_classes, dtype=np.int64)
    count = 0
    for batch in batches:
        digest.update(example_records(batch).tobytes())
        classes += np.bincount(batch.labels, minlength=num_classes)
        count += len(batch)
    return {"count": count, "classes": [int(c) for c in classes], "digest": digest.hexdigest()}


def image_keys(batches: Iterable[Batch]) -> List[bytes]:
    """A 16-byte BLAKE2 digest of each image's pixels (labels not included), in order."""
    return [hashlib.blake2b(image.tobytes(), digest_size=16).digest()
            for batch in batches for image in batch.images]


def duplicate_report(train_keys: List[bytes], test_keys: List[bytes]) -> Dict[str, int]:
    """Exact-pixel duplicates: extra copies within each split, and test images also in train."""
    train_set = set(train_keys)
    return {
        "within_train": len(train_keys) - len(train_set),
        "within_test": len(test_keys) - len(set(test_keys)),
        "test_in_train": sum(1 for key in test_keys if key in train_set),
    }


def check_no_leakage(report: Dict[str, int], test_count: int, where: str, tolerance: float) -> None:
    """Raise :class:`DataLeakageError` if more than ``tolerance`` of the test split is in train."""
    if test_count and report["test_in_train"] / test_count > tolerance:
        raise DataLeakageError(
            f"{where}: {report['test_in_train']:,} of {test_count:,} test images also occur in the training "
            f"split (more than {tolerance:.1%}); the test accuracy would not measure generalisation. "
            "Check that the test batch is not a copy of a training batch")


def verify(path: str, spec: DatasetSpec = CIFAR10) -> Dict[str, object]:
    """Read ``path`` completely and return its summary (see the module docstring).

    Raises a :class:`~cifar_tfx.data.errors.DataError` for anything unreadable and a
    :class:`RecordError` if either split is empty.
    """
    source, batches = read_batches(path, SPLITS, spec)
    summary: Dict[str, object] = {"format": source.fmt, "source": source.kind, "dataset": spec.name}
    for split in SPLITS:
        part = summarize_split(batches[split], spec.num_classes)
        if part["count"] == 0:
            raise RecordError(f"{path}: the {split} split is empty")
        summary[split] = part
    summary["duplicates"] = duplicate_report(image_keys(batches["train"]), image_keys(batches["test"]))
    return summary

