"""What every ``cifar-tfx`` command shares: exit codes, the bad-argument error, small argument checks."""

from __future__ import annotations

import argparse
import os
import tempfile
from typing import Optional

EXIT_BAD_INPUT = 2
EXIT_PIPELINE_FAILED = 3
EXIT_NOT_PUSHED = 4
EXIT_RUN_UNFOLLOWED = 5  # kubeflow submit --wait: the run goes on, but its end or outcome could not be read
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it
EXIT_TERMINATED = 143   # 128 + SIGTERM: what Kubernetes sends a pod it stops


class Terminated(BaseException):
    """Raised in the main thread on SIGTERM, so that a run stops the way Ctrl-C stops it (not an
    ``Exception``: no handler of a failing component swallows it)."""


def cause_of_kind(err: BaseException, kinds) -> Optional[BaseException]:
    """The outermost exception of ``kinds`` in ``err``'s chain of causes, if any (Beam wraps what a
    component raises, so the error that says what happened is often inside another)."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, kinds):
            return err
        err = err.__cause__ or err.__context__  # type: ignore[assignment]
    return None


_stop_received: Optional[BaseException] = None  # what the last SIGINT / SIGTERM raised in this command


def raise_stop(stop: BaseException) -> None:
    """Raise ``stop`` (from a signal handler) and remember it for :func:`interruption_in`."""
    global _stop_received
    _stop_received = stop
    raise stop


def forget_stop() -> None:
    """End of a command: a later command in the same process starts with no signal received."""
    global _stop_received
    _stop_received = None


def interruption_in(err: BaseException) -> Optional[BaseException]:
    """The ``KeyboardInterrupt`` or :class:`Terminated` behind ``err``.

    Usually it is in the chain of causes. A signal that lands inside TensorFlow's C++ code can leave only a
    secondary error behind (an eager ``TypeError`` whose chain has lost the interrupt), so an error raised
    after this command received a stop signal is taken as that stop.
    """
    return cause_of_kind(err, (KeyboardInterrupt, Terminated)) or _stop_received


class BadArgumentError(Exception):
    """A command-line value that cannot work; reported as one ``error:`` line, exit 2."""


def use_keras2() -> None:
    """tensorflow-transform 1.16 needs Keras 2; this must happen before TensorFlow loads."""
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")


def check_writable_folder(path: str, option: str, remote: bool = False) -> None:
    """Refuse, before anything runs, a folder that cannot be created or written.

    A URI is refused unless ``remote`` (the command writes it through the filesystem layer), and then only if
    its scheme is one the layer opens. A local folder is tried, not inferred from permission bits: a folder is
    made and removed in its nearest existing parent, which catches a read-only mount, ``/proc`` and ``/sys``
    (which ``os.access`` reports writable to root) and a parent that is a file.
    """
    from cifar_tfx import storage

    if storage.is_remote(path):
        if not remote:
            raise BadArgumentError(f"{option} {path}: must be a local folder (a mounted bucket or volume works): "
                                   "this command writes it with local file operations")
        try:
            storage.check_scheme(path)
        except OSError as err:
            raise BadArgumentError(f"{option} {path}: {err}") from None
        return
    if os.path.exists(path) and not os.path.isdir(path):
        raise BadArgumentError(f"{option} {path} is a file, not a folder")
    existing = os.path.abspath(path)
    while not os.path.lexists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise BadArgumentError(f"{option} {path} cannot be created: {existing} is a file, not a folder")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".write-check-", dir=existing))
    except OSError as err:
        raise BadArgumentError(f"{option} {path} cannot be created or written ({existing}: "
                               f"{err.strerror or type(err).__name__})") from None


def check_writable_file(path: str, option: str) -> None:
    """Refuse, before anything runs, a file path that is a folder or whose folder cannot be created or written."""
    if os.path.isdir(path):
        raise BadArgumentError(f"{option} {path} is a folder; give the path of a file to write")
    check_writable_folder(os.path.dirname(os.path.abspath(path)), option)


def positive_seconds(text: str) -> float:
    """A finite number of seconds above 0 (``inf``, ``nan``, ``-1`` and ``1e300`` are refused)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value <= 366 * 24 * 3600:
        raise argparse.ArgumentTypeError(f"must be a number of seconds within (0, 1 year], got {text}")
    return value


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value
