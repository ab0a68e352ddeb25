"""Read the IDX files of the MNIST family (Fashion-MNIST): one images file and one labels file per split.

An IDX file is a big-endian header, then raw values: two zero bytes, a type byte
(0x08 = unsigned byte, the only type these datasets use), the number of dimensions,
one 4-byte size per dimension. Images files have three dimensions (count, rows,
columns), labels files one (count). Files may be gzipped (``.gz``, as distributed)
or plain. Everything a file declares is checked before it is read: the type, the
number and size of dimensions against the dataset, and the count against a bound,
so a hostile header cannot make the reader allocate more than the dataset can hold.
A file that ends early, goes on past its declared size, or whose gzip stream is
corrupt is refused with its name.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from typing import Tuple

import numpy as np

from cifar_tfx import storage
from cifar_tfx.data.datasets import DatasetSpec
from cifar_tfx.data.errors import CorruptArchiveError, MissingDataError, RecordError

UNSIGNED_BYTE = 0x08
MAX_EXAMPLES = 1_000_000  # per file; the MNIST family has 60,000 + 10,000
_GZIP_ERRORS = (OSError, EOFError, zlib.error, gzip.BadGzipFile)


def find_file(folder: str, name: str) -> str:
    """``folder/name`` or ``folder/name.gz``, whichever exists (plain first)."""
    for candidate in (storage.join(folder, name), storage.join(folder, name + ".gz")):
        if storage.isfile(candidate):
            return candidate
    raise MissingDataError(f"{folder} lacks {name} (or {name}.gz), one of the dataset's IDX files")


def has_idx_files(folder: str, spec: DatasetSpec) -> bool:
    """True when ``folder`` holds the first training file of ``spec`` (plain or gzipped)."""
    first = spec.idx_files["train"][0]
    return any(storage.isfile(storage.join(folder, first + suffix)) for suffix in ("", ".gz"))


def read_idx(path: str, item_shape: Tuple[int, ...]) -> np.ndarray:
    """The ``[count, *item_shape]`` uint8 array stored in the IDX file at ``path``."""
    try:
        opened = storage.open_binary(path)
    except OSError as err:
        raise MissingDataError(f"cannot read {path}: {err}") from err
    with opened as raw:
        stream = gzip.GzipFile(fileobj=raw, mode="rb") if path.endswith(".gz") else raw
        try:
            header = _read_exactly(stream, 4, path, "header")
            if header[:2] != b"\0\0" or header[2] != UNSIGNED_BYTE:
                raise RecordError(f"{path}: not an IDX file of unsigned bytes (magic {header.hex()}, "
                                  f"expected 0000{UNSIGNED_BYTE:02x}{len(item_shape) + 1:02x})")
            if header[3] != len(item_shape) + 1:
                raise RecordError(f"{path}: {header[3]} dimensions, expected {len(item_shape) + 1}")
            dims = struct.unpack(f">{header[3]}I", _read_exactly(stream, 4 * header[3], path, "header"))
            count, shape = dims[0], tuple(dims[1:])
            if shape != tuple(item_shape):
                raise RecordError(f"{path}: items are {'x'.join(map(str, shape))}, "
                                  f"the dataset's are {'x'.join(map(str, item_shape))}")
            if not 0 < count <= MAX_EXAMPLES:
                raise RecordError(f"{path}: declares {count:,} items; expected 1 to {MAX_EXAMPLES:,}")
            size = count * int(np.prod(item_shape, dtype=np.int64))
            body = _read_exactly(stream, size, path, f"{count:,} items")
            if stream.read(1):
                raise RecordError(f"{path}: data goes on past the {count:,} items its header declares")
        except _GZIP_ERRORS as err:
            raise CorruptArchiveError(f"{path} is truncated or corrupt: {err}") from err
    return np.frombuffer(body, dtype=np.uint8).reshape((count,) + tuple(item_shape))


def _read_exactly(stream, size: int, path: str, what: str) -> bytes:
    data = stream.read(size)
    if len(data) != size:
        raise CorruptArchiveError(f"{path} is truncated: {what} need {size:,} bytes, the file has {len(data):,}")
    return data


def read_idx_split(folder: str, spec: DatasetSpec, split: str) -> Tuple[np.ndarray, np.ndarray]:
    """``(images [N, H, W, C] uint8, labels [N] int64)`` of ``split``; counts must agree."""
    images_name, labels_name = spec.idx_files[split]
    images_path, labels_path = find_file(folder, images_name), find_file(folder, labels_name)
    images = read_idx(images_path, (spec.height, spec.width))
    labels = read_idx(labels_path, ())
    if len(images) != len(labels):
        raise RecordError(f"{split}: {images_path} holds {len(images):,} images but {labels_path} "
                          f"{len(labels):,} labels")
    return images.reshape(-1, spec.height, spec.width, spec.channels), labels.astype(np.int64)
