"""Paths that may be local or remote (``gs://``, ``s3://``, ``ram://`` ...), behind one small API.

Local paths go through ``os`` and plain ``open``, so commands such as ``data verify``
never import TensorFlow. A path with a URI scheme goes through ``tf.io.gfile``,
TensorFlow's filesystem layer, which every TFX component already uses for its
artifacts; TensorFlow is imported only then. Errors of the remote layer are turned
into ``OSError`` so callers handle one kind of I/O error.

Object stores have no directory rename: :func:`copy_tree` therefore takes
``last``, the files to write after all others, so that the file that makes a folder usable comes last
(see ``components/serving_pusher.py``).
"""

from __future__ import annotations

import os
import posixpath
import shutil
import tempfile
from typing import BinaryIO, Iterator, List, Sequence, Tuple


def is_remote(path: str) -> bool:
    """True for a URI with a scheme other than ``file://`` (``gs://bucket/x``, ``ram://x``)."""
    scheme, sep, _ = path.partition("://")
    return bool(sep) and scheme != "file" and scheme.isidentifier()


def _gfile():
    import tensorflow as tf  # noqa: PLC0415 - only remote paths need TensorFlow

    return tf.io.gfile


def _remote_errors() -> tuple:
    import tensorflow as tf  # noqa: PLC0415

    return (tf.errors.OpError,)


class _RemoteReader:
    """A read-only binary file on a remote filesystem whose errors are ``OSError``."""

    def __init__(self, path: str) -> None:
        self._path = path
        try:
            self._handle = _gfile().GFile(path, "rb")
        except _remote_errors() as err:
            raise OSError(f"{path}: {err.message}") from err

    def read(self, size: int = -1) -> bytes:
        try:
            return self._handle.read(size)
        except _remote_errors() as err:
            raise OSError(f"{self._path}: {err.message}") from err

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> "_RemoteReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _local(path: str) -> str:
    return path[len("file://"):] if path.startswith("file://") else path


def absolute(path: str) -> str:
    """``path`` made absolute if local; a URI unchanged."""
    return path if is_remote(path) else os.path.abspath(_local(path))


def join(path: str, *parts: str) -> str:
    """Join path components with ``/`` (remote) or the OS separator (local)."""
    return posixpath.join(path, *parts) if is_remote(path) else os.path.join(path, *parts)


def open_binary(path: str) -> BinaryIO:
    """Open ``path`` for reading bytes."""
    if is_remote(path):
        return _RemoteReader(path)  # type: ignore[return-value]
    return open(_local(path), "rb")


def read_bytes(path: str) -> bytes:
    """The whole content of ``path``."""
    with open_binary(path) as handle:
        return handle.read()


def exists(path: str) -> bool:
    return _gfile().exists(path) if is_remote(path) else os.path.exists(_local(path))


def isdir(path: str) -> bool:
    return _gfile().isdir(path) if is_remote(path) else os.path.isdir(_local(path))


def isfile(path: str) -> bool:
    return exists(path) and not isdir(path)


def listdir(path: str) -> List[str]:
    """Entry names of the folder ``path`` (no trailing slashes), sorted."""
    if is_remote(path):
        return sorted(name.rstrip("/") for name in _gfile().listdir(path))
    return sorted(os.listdir(_local(path)))


def makedirs(path: str) -> None:
    if is_remote(path):
        _gfile().makedirs(path)
    else:
        os.makedirs(_local(path), exist_ok=True)


def remove_tree(path: str) -> None:
    """Delete ``path`` and everything under it; a missing path is not an error."""
    if is_remote(path):
        if _gfile().exists(path):
            _gfile().rmtree(path)
    else:
        shutil.rmtree(_local(path), ignore_errors=True)


def walk_files(path: str) -> Iterator[Tuple[str, int, int]]:
    """``(relative path, size in bytes, modification time in ns)`` of every file under ``path``.

    For a file, yields that file alone (relative path = its base name). Sorted.
    """
    if not isdir(path):
        yield (posixpath.basename(path.rstrip("/")), *_size_and_mtime(path))
        return
    if is_remote(path):
        for folder, _, names in sorted(_gfile().walk(path)):
            for name in sorted(names):
                full = posixpath.join(folder, name)
                yield (posixpath.relpath(full, path), *_size_and_mtime(full))
    else:
        local = _local(path)
        for folder, _, names in sorted(os.walk(local)):
            for name in sorted(names):
                full = os.path.join(folder, name)
                yield (os.path.relpath(full, local), *_size_and_mtime(full))


def file_size(path: str) -> int:
    """Bytes in the file at ``path`` (local or remote)."""
    return _size_and_mtime(path)[0]


def _size_and_mtime(path: str) -> Tuple[int, int]:
    if is_remote(path):
        stat = _gfile().stat(path)
        return int(stat.length), int(stat.mtime_nsec)
    stat = os.stat(_local(path))
    return stat.st_size, stat.st_mtime_ns


def copy_tree(source: str, destination: str, last: Sequence[str] = ()) -> None:
    """Copy every file under ``source`` to ``destination``; files named in ``last`` are copied last.

    ``last`` holds paths relative to ``source`` (for a SavedModel: ``saved_model.pb``).
    """
    files = [relative for relative, _, _ in walk_files(source)]
    ordered = [f for f in files if f not in last] + [f for f in last if f in files]
    for relative in ordered:
        target = join(destination, relative)
        makedirs(posixpath.dirname(target) if is_remote(target) else os.path.dirname(target))
        _copy_file(join(source, relative), target)


def _copy_file(source: str, target: str) -> None:
    if not is_remote(source) and not is_remote(target):
        shutil.copyfile(_local(source), _local(target))
        return
    _gfile().copy(source, target, overwrite=True)


def current_umask() -> int:
    """The process umask (read by setting it and back: no other way exists)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_text_atomically(path: str, text: str) -> None:
    """Replace ``path`` with ``text`` so that readers see the old or the new content, never a part.

    Locally: a temporary file in the same folder and ``os.replace``. Remote: one object
    write (object stores publish an object whole when its upload completes).
    """
    if is_remote(path):
        with _gfile().GFile(path, "w") as out:
            out.write(text)
        return
    local = _local(path)
    handle, temp = tempfile.mkstemp(prefix=".tmp-", dir=os.path.dirname(os.path.abspath(local)))
    try:
        with os.fdopen(handle, "w") as out:
            out.write(text)
        os.chmod(temp, 0o666 & ~current_umask())  # mkstemp makes 0600: a server running as another user reads it
        os.replace(temp, local)
    except BaseException:
        if os.path.exists(temp):
            os.remove(temp)
        raise
