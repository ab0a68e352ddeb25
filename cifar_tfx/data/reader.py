"""Read CIFAR-format batches from an official archive or an extracted folder.

Both official CIFAR layouts are understood (and, through :mod:`cifar_tfx.data.idx`, the
IDX files of Fashion-MNIST):

* ``python``: ``cifar-10-batches-py/data_batch_1`` ... pickled dicts whose ``data`` is
  an ``N x 3072`` uint8 array in plane-major order (all red, then green, then blue);
* ``binary``: ``cifar-10-batches-bin/data_batch_1.bin`` ... fixed-length records of one
  label byte followed by 3072 plane-major pixel bytes.

Archives are streamed member by member and never extracted to disk. Only the batch
members the caller asks for are read; any link, device or path leaving the archive's
folder makes the whole archive refused. Every batch comes back as a :class:`Batch`
of ``[N, height, width, channels]`` uint8 images (height-width-channel order, the
order TensorFlow uses) and ``[N]`` uint8 labels, in the dataset's batch order.
"""

from __future__ import annotations

import dataclasses
import gzip
import posixpath
import tarfile
import zlib
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, TypeVar

import numpy as np

from cifar_tfx import storage
from cifar_tfx.data.datasets import CIFAR10, DATASETS, SPLITS, DatasetSpec
from cifar_tfx.data.errors import (
    CorruptArchiveError,
    DataError,
    MissingDataError,
    RecordError,
    UnsafeArchiveError,
    UnsafePickleError,
)
from cifar_tfx.data import idx
from cifar_tfx.data.read_ahead import ReadAhead
from cifar_tfx.data.safe_pickle import describe, safe_loads

Parsed = TypeVar("Parsed")


@dataclasses.dataclass(frozen=True)
class Batch:
    """One batch file's examples: ``images`` [N, H, W, C] uint8 and ``labels`` [N] uint8."""

    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclasses.dataclass(frozen=True)
class Source:
    """Where a dataset lives and in which layout.

    ``kind`` is ``"archive"`` (a .tar.gz) or ``"folder"``; ``fmt`` is ``"python"``
    or ``"binary"``; ``root`` is the batch folder itself for folders, the archive
    file for archives.
    """

    kind: str
    fmt: str
    root: str


# ---------------------------------------------------------------------------
# Locating and detecting
# ---------------------------------------------------------------------------


def detect_source(path: str, spec: DatasetSpec = CIFAR10) -> Source:
    """Work out whether ``path`` is an archive or folder, and which layout it holds."""
    try:
        found, folder = storage.exists(path), storage.isdir(path)
    except OSError as err:
        raise MissingDataError(f"cannot read {path}: {err}") from err
    if not found:
        raise MissingDataError(f"no such file or directory: {path}")
    if folder:
        return _detect_folder(path, spec)
    return Source(kind="archive", fmt=_detect_archive_format(path, spec), root=path)


def _detect_folder(path: str, spec: DatasetSpec) -> Source:
    source = _find_in_folder(path, spec)
    if source is not None:
        return source
    others = [other.name for other in DATASETS.values() if other is not spec and _find_in_folder(path, other)]
    hint = f" (it holds {others[0]} data: --dataset {others[0]})" if others else ""
    if "idx" in spec.formats:
        names = ", ".join(f"{name}[.gz]" for split in SPLITS for name in spec.idx_files[split])
        raise MissingDataError(f"{path} holds no {spec.name} IDX files: expected {names}{hint}")
    raise MissingDataError(
        f"{path} holds no {spec.name} batches: expected {spec.python_train_members[0]} "
        f"or {spec.binary_train_members[0]} in it or in {spec.python_folder}/ or {spec.binary_folder}/{hint}"
    )


def _find_in_folder(path: str, spec: DatasetSpec) -> Optional[Source]:
    """The folder source of ``spec``'s files in ``path`` (or in its layout's sub-folder), or None."""
    if "idx" in spec.formats:
        return Source(kind="folder", fmt="idx", root=path) if idx.has_idx_files(path, spec) else None
    for folder in [path] + [storage.join(path, spec.folder(fmt)) for fmt in spec.formats]:
        for fmt in spec.formats:
            if storage.isfile(storage.join(folder, spec.members(fmt, "train")[0])):
                return Source(kind="folder", fmt=fmt, root=folder)
    return None


def _detect_archive_format(path: str, spec: DatasetSpec) -> str:
    if spec.formats == ("idx",):
        raise MissingDataError(f"{path} is a file; {spec.name} is read from the folder that holds its IDX files")
    with _open_tar_stream(path) as stream:
        for member in _guarded_members(stream.tar, path):
            top = member.name.split("/", 1)[0]
            for fmt in spec.formats:
                if top == spec.folder(fmt):
                    return fmt
    raise CorruptArchiveError(
        f"{path} holds neither {spec.python_folder}/ nor {spec.binary_folder}/; "
        f"it is not an official {spec.name} archive"
    )


# ---------------------------------------------------------------------------
# Archive streaming with member checks
# ---------------------------------------------------------------------------

_STREAM_ERRORS = (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile, OSError)


def _archive_error(path: str, err: BaseException, otherwise: str) -> CorruptArchiveError:
    """The error for a failed read: a gzip checksum or length mismatch says so wherever it surfaced."""
    if isinstance(err, gzip.BadGzipFile) and ("CRC check failed" in str(err) or "Incorrect length" in str(err)):
        return CorruptArchiveError(f"{path} is corrupt: {err} (the gzip checksum does not match its content; "
                                   "download the archive again)")
    return CorruptArchiveError(f"{path} {otherwise}: {err}")


class _open_tar_stream:
    """Context manager: a streaming tar reader with readable errors and gzip integrity checks.

    A gzipped archive is decompressed by :class:`gzip.GzipFile`, which checks the CRC-32
    and length in the gzip trailer when it reaches the end of the stream; tarfile's own
    stream mode never looks at them, so flipped bytes would pass. :meth:`verify_to_end`
    reads whatever tarfile left unread so that the trailer is always checked. Inflating
    runs in a :class:`ReadAhead` thread, so it overlaps whatever the caller does with the
    members already read.
    """

    def __init__(self, path: str) -> None:
        self._path = path
        self._file = None
        self._gzip = None
        self._inflated = None
        self._tar = None

    def __enter__(self) -> "_open_tar_stream":
        try:
            self._file = storage.open_binary(self._path)
        except OSError as err:
            raise MissingDataError(f"cannot open {self._path}: {err}") from err
        try:
            magic = self._file.read(2)
            self._file.close()
            self._file = storage.open_binary(self._path)
            if magic == b"\x1f\x8b":
                self._gzip = gzip.GzipFile(fileobj=self._file, mode="rb")
                self._inflated = ReadAhead(self._gzip)
            self._tar = tarfile.open(fileobj=self._inflated or self._file, mode="r|")
        except _STREAM_ERRORS as err:
            self.__exit__()
            raise _archive_error(self._path, err, "is not a readable tar archive") from err
        return self

    @property
    def tar(self) -> tarfile.TarFile:
        return self._tar

    def verify_to_end(self) -> None:
        """Read the rest of the compressed stream: a wrong CRC or length raises ``CorruptArchiveError``."""
        if self._inflated is None:
            return
        try:
            while self._inflated.read(1 << 20):
                pass
        except _STREAM_ERRORS as err:
            raise _archive_error(self._path, err, "is truncated or corrupt") from err

    def __exit__(self, *exc: object) -> None:
        for closing in (self._tar, self._inflated, self._gzip, self._file):
            if closing is not None:
                try:
                    closing.close()
                except _STREAM_ERRORS:
                    pass  # The interesting error, if any, is already propagating.


def _guarded_members(tar: tarfile.TarFile, path: str) -> Iterator[tarfile.TarInfo]:
    """Yield members, refusing the archive at the first unsafe one; map stream errors."""
    folder = None
    iterator = iter(tar)
    while True:
        try:
            member = next(iterator)
        except StopIteration:
            return
        except _STREAM_ERRORS as err:
            raise _archive_error(path, err, "is truncated or corrupt") from err
        name = member.name
        norm = posixpath.normpath(name)
        if name.startswith("/") or norm == ".." or norm.startswith("../") or "/../" in f"/{name}/":
            raise UnsafeArchiveError(f"{path}: member {name!r} points outside the archive's folder; refused")
        top = norm.split("/", 1)[0]
        folder = folder or top
        if top != folder:
            raise UnsafeArchiveError(
                f"{path}: member {name!r} lies outside the archive's folder {folder!r}; refused"
            )
        if member.issym() or member.islnk():
            raise UnsafeArchiveError(f"{path}: member {name!r} is a link; refused")
        if member.isdev():
            raise UnsafeArchiveError(f"{path}: member {name!r} is a device or fifo; refused")
        yield member


def _read_archive_members(path: str, wanted: Sequence[str], max_member_bytes: int,
                          parse: Callable[[bytes, str], Parsed]) -> Dict[str, Parsed]:
    """Stream the archive once and return ``parse(bytes, where)`` of each ``wanted`` member path.

    A member declaring more than ``max_member_bytes`` is refused before it is read. Each
    member is parsed as soon as it is read (while the next one inflates), but nothing is
    returned before the whole stream, gzip checksum included, has been checked.
    """
    found: Dict[str, Parsed] = {}
    wanted_set = set(wanted)
    with _open_tar_stream(path) as stream:
        tar = stream.tar
        for member in _guarded_members(tar, path):
            name = posixpath.normpath(member.name)
            if name not in wanted_set or not member.isfile():
                continue
            if member.size > max_member_bytes:
                raise RecordError(f"{path}: {name} declares {member.size:,} bytes; a batch of this dataset "
                                  f"holds at most {max_member_bytes:,}")
            try:
                handle = tar.extractfile(member)
                data = handle.read() if handle is not None else b""
            except _STREAM_ERRORS as err:
                raise _archive_error(path, err, f"is truncated or corrupt in {name}") from err
            if len(data) != member.size:
                raise CorruptArchiveError(
                    f"{path} is truncated: {name} has {len(data)} of {member.size} bytes"
                )
            try:
                found[name] = parse(data, f"{path}:{name}")
            except DataError:
                stream.verify_to_end()  # damage anywhere in the archive is reported as corruption first
                raise
        stream.verify_to_end()
    missing = [name for name in wanted if name not in found]
    if missing:
        raise CorruptArchiveError(f"{path} lacks expected member(s): {', '.join(missing)}")
    return found


# ---------------------------------------------------------------------------
# Parsing one batch
# ---------------------------------------------------------------------------


def parse_python_batch(raw: bytes, spec: DatasetSpec, where: str) -> Batch:
    """Parse a pickled batch (restricted unpickler) into a :class:`Batch`."""
    try:
        obj = safe_loads(raw)
    except UnsafePickleError as err:
        raise UnsafePickleError(f"{where}: {err}") from err
    if not isinstance(obj, dict):
        raise RecordError(f"{where}: batch pickle holds {type(obj).__name__}, expected a dict")
    batch = {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in obj.items()}
    if "data" not in batch or "labels" not in batch:
        keys = ", ".join(describe(key, 20) for key in list(batch)[:8]) + (", ..." if len(batch) > 8 else "")
        raise RecordError(f"{where}: batch lacks 'data' or 'labels' (keys: {keys})")
    data, labels = batch["data"], batch["labels"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != spec.image_bytes:
        shape = getattr(data, "shape", None)
        dtype = getattr(data, "dtype", type(data).__name__)
        raise RecordError(
            f"{where}: 'data' must be an N x {spec.image_bytes} uint8 array, got shape {shape} dtype {dtype}"
        )
    if not isinstance(labels, (list, tuple)) or not all(isinstance(v, int) for v in labels):
        raise RecordError(f"{where}: 'labels' must be a list of ints")
    if len(labels) != data.shape[0]:
        raise RecordError(f"{where}: {data.shape[0]} images but {len(labels)} labels")
    label_array = _checked_labels(np.asarray(labels, dtype=np.int64), spec, where)
    return Batch(images=_planes_to_hwc(data, spec), labels=label_array)


def parse_binary_batch(raw: bytes, spec: DatasetSpec, where: str) -> Batch:
    """Parse a fixed-length-record batch into a :class:`Batch`."""
    if len(raw) % spec.record_bytes != 0:
        raise RecordError(
            f"{where}: {len(raw)} bytes is not a whole number of {spec.record_bytes}-byte records"
        )
    records = np.frombuffer(raw, dtype=np.uint8).reshape(-1, spec.record_bytes)
    labels = _checked_labels(records[:, 0].astype(np.int64), spec, where)
    return Batch(images=_planes_to_hwc(records[:, 1:], spec), labels=labels)


def _checked_labels(labels: np.ndarray, spec: DatasetSpec, where: str) -> np.ndarray:
    if labels.size == 0:
        raise RecordError(f"{where}: batch holds no records")
    bad = np.flatnonzero((labels < 0) | (labels >= spec.num_classes))
    if bad.size:
        raise RecordError(
            f"{where}: label {int(labels[bad[0]])} at record {int(bad[0])} is outside 0..{spec.num_classes - 1}"
        )
    return labels.astype(np.uint8)


def _planes_to_hwc(flat: np.ndarray, spec: DatasetSpec) -> np.ndarray:
    planes = flat.reshape(-1, spec.channels, spec.height, spec.width)
    return np.ascontiguousarray(planes.transpose(0, 2, 3, 1))


# ---------------------------------------------------------------------------
# Public entry points
# ---------------------------------------------------------------------------


def read_batches(
    path: str, splits: Iterable[str] = SPLITS, spec: DatasetSpec = CIFAR10
) -> Tuple[Source, Dict[str, List[Batch]]]:
    """Read every batch of ``splits`` from an archive or folder, in batch order.

    Returns the detected :class:`Source` and, per split, the list of batches.
    An archive is streamed once whatever the number of splits.
    """
    splits = list(splits)
    for split in splits:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    source = detect_source(path, spec)
    if source.fmt == "idx":
        result = {}
        for split in splits:
            images, labels = idx.read_idx_split(source.root, spec, split)
            result[split] = [Batch(images=images, labels=_checked_labels(labels, spec, f"{source.root} ({split})"))]
        return source, result
    parse = parse_python_batch if source.fmt == "python" else parse_binary_batch
    members = {split: spec.members(source.fmt, split) for split in splits}
    if source.kind == "archive":
        folder = spec.folder(source.fmt)
        wanted = [f"{folder}/{m}" for split in splits for m in members[split]]
        parsed = _read_archive_members(path, wanted, spec.max_batch_bytes, lambda data, where: parse(data, spec, where))
        return source, {split: [parsed[f"{folder}/{m}"] for m in members[split]] for split in splits}
    result: Dict[str, List[Batch]] = {}
    for split in splits:
        batches = []
        for member in members[split]:
            data, where = _read_file(storage.join(source.root, member), spec.max_batch_bytes)
            batches.append(parse(data, spec, where))
        result[split] = batches
    return source, result


def _read_file(path: str, max_bytes: int) -> Tuple[bytes, str]:
    """A batch file of an extracted folder, bounded like an archive member: a file larger than any
    batch of the dataset is refused from its size, before it is read."""
    if not storage.isfile(path):
        raise MissingDataError(f"missing batch file: {path}")
    try:
        size = storage.file_size(path)
        if size > max_bytes:
            raise RecordError(f"{path} has {size:,} bytes; a batch of this dataset holds at most {max_bytes:,}")
        with storage.open_binary(path) as handle:
            data = handle.read(max_bytes + 1)  # the file may have grown since
    except OSError as err:
        raise CorruptArchiveError(f"cannot read {path}: {err}") from err
    if len(data) > max_bytes:
        raise RecordError(f"{path} holds more than {max_bytes:,} bytes; a batch of this dataset holds at most that")
    return data, path


def source_fingerprint(path: str) -> str:
    """Cheap identity of the data at ``path`` (local or remote): names, sizes and modification times.

    Changes when a file is replaced, appended to or touched; ExampleGen records it on
    its output and the local runner makes it part of ExampleGen's cache key.
    """
    try:
        entries = [f"{name}:{size}:{mtime}" for name, size, mtime in storage.walk_files(path)]
    except OSError as err:
        raise MissingDataError(f"cannot read {path}: {err}") from err
    return "|".join(entries)
