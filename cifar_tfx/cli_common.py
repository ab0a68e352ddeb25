"""What every ``cifar-tfx`` command shares: exit codes, the bad-argument error, small argument checks."""

from __future__ import annotations

import argparse
import os
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


def interruption_in(err: BaseException) -> Optional[BaseException]:
    """The ``KeyboardInterrupt`` or :class:`Terminated` in ``err``'s chain of causes."""
    return cause_of_kind(err, (KeyboardInterrupt, Terminated))


class BadArgumentError(Exception):
    """A command-line value that cannot work; reported as one ``error:`` line, exit 2."""


def use_keras2() -> None:
    """tensorflow-transform 1.16 needs Keras 2; this must happen before TensorFlow loads."""
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")


def check_writable_folder(path: str, option: str) -> None:
    """Refuse, before anything runs, a local folder that cannot be created or written."""
    from cifar_tfx import storage

    if storage.is_remote(path):
        return
    if os.path.exists(path) and not os.path.isdir(path):
        raise BadArgumentError(f"{option} {path} is a file, not a folder")
    existing = path
    while not os.path.exists(existing):
        existing = os.path.dirname(os.path.abspath(existing))
    if not os.path.isdir(existing) or not os.access(existing, os.W_OK | os.X_OK):
        raise BadArgumentError(f"{option} {path} cannot be created or written ({existing} is not a writable folder)")


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value
