"""What the operator sees during a run, and where library output goes instead.

TensorFlow, Beam, TFX and Google's client libraries write warnings and INFO lines
from C++ (straight to file descriptor 2), from Python ``logging`` and from
``warnings``. :func:`library_output_to` sends all of that to a log file for the
duration of a run by pointing descriptors 1 and 2 at the file (``sys.stdout`` and
``sys.stderr`` stay the same objects, so handlers bound to them before or after keep
working); the project's own lines (component start and end,
training progress) go through :func:`stream`, which keeps writing to the terminal.
Outside such a block (``--verbose``, a Kubeflow container, tests) :func:`stream`
is simply ``sys.stderr``. Short commands that load TensorFlow (``predict``,
``kubeflow compile``) use :func:`libraries_quiet`: the same redirection into a
temporary log that is removed when the command ends well.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
from typing import Iterator, Optional, TextIO, Tuple

_console: Optional[TextIO] = None
_stage: Optional[str] = None  # the pipeline node running now (set by the local runner), for interruption lines


def set_stage(name: Optional[str]) -> None:
    """Record which stage runs now (``None``: none)."""
    global _stage
    _stage = name


def stage() -> Optional[str]:
    """The stage :func:`set_stage` recorded last, if one is running."""
    return _stage


def stream() -> TextIO:
    """Where the project's own progress lines go: the terminal, even while libraries are quietened."""
    return _console or sys.stderr


def say(line: str) -> None:
    """Write one line to :func:`stream` and flush it."""
    out = stream()
    out.write(line + "\n")
    out.flush()


def _terminal_copy(current: TextIO, fd: int) -> TextIO:
    """A stream on a duplicate of ``fd`` if ``current`` writes to it, else ``current`` itself.

    Under pytest's ``capsys`` ``sys.stderr`` is an in-memory object: the project's lines keep
    going there, so tests read them as before.
    """
    try:
        if current.fileno() == fd:
            return os.fdopen(os.dup(fd), "w", buffering=1, encoding="utf-8", errors="replace")
    except (AttributeError, OSError, io.UnsupportedOperation, ValueError):
        pass
    return current


@contextlib.contextmanager
def library_output_to(log_path: str) -> Iterator[None]:
    """Within the block, everything written to descriptors 1 and 2 lands in ``log_path`` (appended).

    :func:`stream` writes to the terminal meanwhile. Descriptors and ``sys`` streams are
    restored on exit, also when the block raises.
    """
    global _console
    os.makedirs(os.path.dirname(os.path.abspath(log_path)), exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    log = open(log_path, "a", buffering=1, encoding="utf-8", errors="replace")
    console = _terminal_copy(sys.stderr, 2)
    saved_fds = (os.dup(1), os.dup(2))
    saved_console = _console
    try:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        _console = console
        yield
    finally:
        for handle in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                handle.flush()
        os.dup2(saved_fds[0], 1)
        os.dup2(saved_fds[1], 2)
        for fd in saved_fds:
            os.close(fd)
        _console = saved_console
        if console is not sys.stderr:
            console.close()
        log.close()


@contextlib.contextmanager
def libraries_quiet(command: str, verbose: bool, expected: Tuple[type, ...] = ()) -> Iterator[None]:
    """A short command's library output (``predict``, ``kubeflow compile``): in a log file, or shown with ``verbose``.

    Within the block descriptors 1 and 2 go to a fresh log in the temporary folder, as
    :func:`library_output_to` does for a run. The log is removed when the block ends normally, is
    interrupted, or raises one of ``expected`` (the project's own one-line errors); any other
    exception keeps it and names it on the terminal, so the libraries' last words are not lost.
    """
    if verbose:
        yield
        return
    handle, log_path = tempfile.mkstemp(prefix=f"cifar-tfx-{command}-", suffix=".log")
    os.close(handle)
    keep = False
    try:
        with library_output_to(log_path):
            yield
    except Exception as err:
        keep = not isinstance(err, expected)
        if keep:
            say(f"library output (TensorFlow, TFX warnings) of this command: {log_path}")
        raise
    finally:
        if not keep:
            with contextlib.suppress(OSError):
                os.remove(log_path)
