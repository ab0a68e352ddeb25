"""Summaries of a dataset that identify its content: counts, per-class counts, digests.

The digest of a split is the hex SHA-256 over its examples in batch order, each
contributing its image bytes in height-width-channel order followed by its label
as one byte. It depends only on pixels and labels, so the pickled and the binary
archive of the same data (or an extracted folder) give the same digest.
"""

from __future__ import annotations

import hashlib
from typing import Dict, Iterable

import numpy as np

from cifar_tfx.data.datasets import CIFAR10, SPLITS, DatasetSpec
from cifar_tfx.data.errors import RecordError
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
    return summary

