"""Static descriptions of the datasets this project ingests.

A :class:`DatasetSpec` says what one example looks like (image shape, classes) and
where its batches live inside the official archives. Everything that needs the
image size or the class names reads it from here, so a new dataset of the same
shape is one more entry in :data:`DATASETS`.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, Tuple


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """Shape, classes and archive layout of one image-classification dataset."""

    name: str
    height: int
    width: int
    channels: int
    class_names: Tuple[str, ...]
    # Folder inside the pickled-batch ("python") archive and its batch members, in order.
    python_folder: str
    python_train_members: Tuple[str, ...]
    python_test_members: Tuple[str, ...]
    python_meta_member: str
    # Folder inside the fixed-length-record ("binary") archive and its batch members, in order.
    binary_folder: str
    binary_train_members: Tuple[str, ...]
    binary_test_members: Tuple[str, ...]
    # Official download locations and md5 checksums published by the dataset authors.
    urls: Dict[str, str]
    md5: Dict[str, str]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_bytes(self) -> int:
        """Bytes of one image: height * width * channels (uint8)."""
        return self.height * self.width * self.channels

    @property
    def record_bytes(self) -> int:
        """Bytes of one binary-format record: one label byte, then the image."""
        return 1 + self.image_bytes

    def members(self, fmt: str, split: str) -> Tuple[str, ...]:
        """Batch member names (relative to the archive folder) of ``split`` in ``fmt``."""
        table = {
            ("python", "train"): self.python_train_members,
            ("python", "test"): self.python_test_members,
            ("binary", "train"): self.binary_train_members,
            ("binary", "test"): self.binary_test_members,
        }
        return table[(fmt, split)]

    def folder(self, fmt: str) -> str:
        return self.python_folder if fmt == "python" else self.binary_folder


SPLITS = ("train", "test")
FORMATS = ("python", "binary")

_CIFAR10_SITE = "https://www.cs.toronto.edu/~kriz/"

CIFAR10 = DatasetSpec(
    name="cifar10",
    height=32,
    width=32,
    channels=3,
    class_names=(
        "airplane", "automobile", "bird", "cat", "deer",
        "dog", "frog", "horse", "ship", "truck",
    ),
    python_folder="cifar-10-batches-py",
    python_train_members=tuple(f"data_batch_{i}" for i in range(1, 6)),
    python_test_members=("test_batch",),
    python_meta_member="batches.meta",
    binary_folder="cifar-10-batches-bin",
    binary_train_members=tuple(f"data_batch_{i}.bin" for i in range(1, 6)),
    binary_test_members=("test_batch.bin",),
    urls={
        "python": _CIFAR10_SITE + "cifar-10-python.tar.gz",
        "binary": _CIFAR10_SITE + "cifar-10-binary.tar.gz",
    },
    # Published on the dataset page.
    md5={
        "python": "c58f30108f718f92721af3b95e74349a",
        "binary": "c32a1d4ab5d03f1284b67883e8d87530",
    },
)

DATASETS: Dict[str, DatasetSpec] = {CIFAR10.name: CIFAR10}


def get_dataset(name: str) -> DatasetSpec:
    """Return the spec called ``name`` or raise ``KeyError`` listing the known ones."""
    try:
        return DATASETS[name]
    except KeyError:
        raise KeyError(f"unknown dataset {name!r}; known: {', '.join(sorted(DATASETS))}") from None
