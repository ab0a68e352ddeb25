"""Paths that may be local or remote (``gs://``, ``s3://``, ``ram://`` ...), behind one small API.

Local paths go through ``os`` and plain ``open``, so commands such as ``data verify``
never import TensorFlow. A path with a URI scheme goes through ``tf.io.gfile``,
TensorFlow's filesystem layer, which every TFX component already uses for its
artifacts; TensorFlow is imported only then. Every remote operation goes through
:func:`_remote`, which first checks the scheme against those the layer has registered
(:func:`check_scheme`: ``s3://`` or ``hdfs://`` without their plugins is one line saying
what works) and turns the layer's errors into one-line ``OSError``, so callers handle one
kind of I/O error. Every local read goes through :func:`open_binary`, which refuses
what is not a regular file before reading.

Object stores have no directory rename: :func:`copy_tree` therefore takes
``last``, the files to write after all others, so that the file that makes a folder usable comes last
(see ``components/serving_pusher.py``).
"""

from __future__ import annotations

import os
import posixpath
import shutil
import stat
import tempfile
import warnings
from typing import BinaryIO, Callable, Iterator, List, Sequence, Tuple, TypeVar

T = TypeVar("T")


def is_remote(path: str) -> bool:
    """True for a URI with a scheme other than ``file://`` (``gs://bucket/x``, ``ram://x``)."""
    scheme, sep, _ = path.partition("://")
    return bool(sep) and scheme != "file" and scheme.isidentifier()


class UnsupportedSchemeError(OSError):
    """A URI whose scheme TensorFlow's filesystem layer, as installed, cannot open (``s3://``, ``hdfs://``)."""


class NotRegularFileError(OSError):
    """A local path to read that is a pipe, socket, device or folder: reading it could block or never end."""


def _tensorflow():
    """TensorFlow, imported quietly: a command that reads a URI prints its own lines, not TensorFlow's."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # CUDA plugins log "Unable to register" at error level
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # google.api_core's notice about Python versions
        import tensorflow as tf  # noqa: PLC0415 - only remote paths need TensorFlow
    return tf


def registered_schemes() -> List[str]:
    """The URI schemes ``tf.io.gfile`` can open in this installation (TensorFlow 2.16: gs, ram, file)."""
    return sorted(scheme for scheme in _tensorflow().io.gfile.get_registered_schemes() if scheme)


def check_scheme(path: str) -> None:
    """Refuse, before anything is read or written, a URI the filesystem layer cannot open; say what works."""
    if not is_remote(path):
        return
    scheme = path.partition("://")[0]
    known = registered_schemes()
    if scheme not in known:
        usable = ", ".join(f"{name}://" for name in known if name not in ("file", "ram")) or "none"
        raise UnsupportedSchemeError(
            f"{scheme}:// is not a filesystem this installation can open (remote schemes it opens: {usable}); "
            "use one of those, or mount the bucket as a volume and give its local path")


def _gfile(path: str):
    """``tf.io.gfile`` for ``path``, once its scheme is known to be one it opens."""
    check_scheme(path)
    return _tensorflow().io.gfile


def _remote_errors() -> tuple:
    return (_tensorflow().errors.OpError,)


def _remote(path: str, operation: Callable[..., T]) -> T:
    """``operation(tf.io.gfile)`` for ``path``, its errors (no credentials, no bucket) as one-line ``OSError``."""
    gfile = _gfile(path)
    try:
        return operation(gfile)
    except _remote_errors() as err:
        raise OSError(f"{path}: {_first_line(err.message)}") from err


def _first_line(text: str) -> str:
    return (text.strip().splitlines() or [""])[0][:300]


class _RemoteReader:
    """A read-only binary file on a remote filesystem whose errors are ``OSError``."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._handle = _remote(path, lambda gfile: gfile.GFile(path, "rb"))

    def read(self, size: int = -1) -> bytes:
        try:
            return self._handle.read(size)
        except _remote_errors() as err:
            raise OSError(f"{self._path}: {_first_line(err.message)}") from err

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
    """Open ``path`` for reading bytes: a remote object, or a local regular file.

    A local path is opened without blocking and checked with ``fstat`` on the open descriptor (the rule of
    :func:`cifar_tfx.bounded_input.read_regular_file`), so a FIFO, which would block the read forever, or a
    device such as ``/dev/zero``, which never ends, raises :class:`NotRegularFileError` at once.
    """
    if is_remote(path):
        return _RemoteReader(path)  # type: ignore[return-value]
    local = _local(path)
    descriptor = os.open(local, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(descriptor).st_mode
        if not stat.S_ISREG(mode):
            kind = "a folder" if stat.S_ISDIR(mode) else "not a regular file (a pipe, socket or device)"
            raise NotRegularFileError(f"it is {kind}; refused rather than read")
        os.set_blocking(descriptor, True)
        return os.fdopen(descriptor, "rb")
    except BaseException:
        os.close(descriptor)
        raise


def read_bytes(path: str) -> bytes:
    """The whole content of ``path``."""
    with open_binary(path) as handle:
        return handle.read()


def exists(path: str) -> bool:
    return _remote(path, lambda gfile: gfile.exists(path)) if is_remote(path) else os.path.exists(_local(path))


def isdir(path: str) -> bool:
    return _remote(path, lambda gfile: gfile.isdir(path)) if is_remote(path) else os.path.isdir(_local(path))


def isfile(path: str) -> bool:
    return exists(path) and not isdir(path)


def listdir(path: str) -> List[str]:
    """Entry names of the folder ``path`` (no trailing slashes), sorted."""
    if is_remote(path):
        return sorted(name.rstrip("/") for name in _remote(path, lambda gfile: gfile.listdir(path)))
    return sorted(os.listdir(_local(path)))


def makedirs(path: str) -> None:
    if is_remote(path):
        _remote(path, lambda gfile: gfile.makedirs(path))
    else:
        os.makedirs(_local(path), exist_ok=True)


def remove_tree(path: str) -> None:
    """Delete ``path`` and everything under it; a missing path is not an error."""
    if is_remote(path):
        _remote(path, lambda gfile: gfile.exists(path) and gfile.rmtree(path))
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
        for folder, _, names in _remote(path, lambda gfile: sorted(gfile.walk(path))):
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
        found = _remote(path, lambda gfile: gfile.stat(path))
        return int(found.length), int(found.mtime_nsec)
    found = os.stat(_local(path))
    return found.st_size, found.st_mtime_ns


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
    check_scheme(source)
    _remote(target if is_remote(target) else source,
            lambda gfile: gfile.copy(source, target, overwrite=True))


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
        def write(gfile) -> None:
            with gfile.GFile(path, "w") as out:
                out.write(text)

        _remote(path, write)
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
