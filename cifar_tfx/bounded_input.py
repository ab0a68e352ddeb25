"""One way in for what a user's file or a server's answer hands the program: bounded, or refused in one line.

* :func:`read_regular_file` opens a path only if it is a regular file (a FIFO would block forever, a device
  such as ``/dev/zero`` never ends, a folder is no file), and reads at most ``max_bytes``.
* :func:`parse_json` parses JSON text no larger than ``max_bytes``, nested no deeper than ``max_depth``,
  whose numbers are finite and of sane length (``NaN``, ``Infinity``, ``1e999`` and a 5,000-digit integer
  are refused instead of becoming ``inf`` or an ``int()`` error deep inside a caller).

Both raise :class:`InputRefused`, whose message is the one line a command prints.
"""

from __future__ import annotations

import json
import math
import os
import stat
from typing import Any, Union

MAX_NUMBER_CHARACTERS = 64   # a float64 needs at most 24; an integer this long is no count, id or version
DEFAULT_MAX_DEPTH = 32       # every document this program reads or receives nests fewer than 10 levels


class InputRefused(ValueError):
    """A file or an answer that this program will not read; the message names it and says why."""


def read_regular_file(path: str, *, max_bytes: int, what: str = "file") -> bytes:
    """The bytes of the regular file at ``path`` (at most ``max_bytes``), or :class:`InputRefused`.

    The file is opened without blocking and checked with ``fstat`` on the open descriptor, so a path
    that is swapped for a FIFO between a check and the open is still refused.
    """
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise InputRefused(f"{what} {path} does not exist") from None
    except IsADirectoryError:
        raise InputRefused(f"{what} {path} is a folder, not a file") from None
    except OSError as err:
        raise InputRefused(f"cannot open {what} {path}: {err.strerror}") from None
    status = os.fstat(descriptor)
    if not stat.S_ISREG(status.st_mode) or status.st_size > max_bytes:
        os.close(descriptor)
        if stat.S_ISDIR(status.st_mode):
            raise InputRefused(f"{what} {path} is a folder, not a file")
        if not stat.S_ISREG(status.st_mode):
            raise InputRefused(f"{what} {path} is not a regular file (a pipe, socket or device); refused")
        raise InputRefused(f"{what} {path} has {status.st_size:,} bytes, more than the {max_bytes:,} "
                           "it may have; refused before reading")
    with os.fdopen(descriptor, "rb") as handle:
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:  # it grew while being read
        raise InputRefused(f"{what} {path} holds more than the {max_bytes:,} bytes it may have")
    return data


def parse_json(text: Union[str, bytes], *, what: str, max_bytes: int = 1 << 20,
               max_depth: int = DEFAULT_MAX_DEPTH) -> Any:
    """``text`` parsed as JSON within the bounds above, or :class:`InputRefused` naming ``what``."""
    if len(text) > max_bytes:
        raise InputRefused(f"{what} has {len(text):,} bytes, more than the {max_bytes:,} expected")
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise InputRefused(f"{what} is not UTF-8 text") from None
    depth = nesting_depth(text)
    if depth > max_depth:
        raise InputRefused(f"{what} nests {depth} levels deep, more than the {max_depth} expected")
    try:
        return json.loads(text, parse_constant=_refuse_constant, parse_int=_bounded_int,
                          parse_float=_finite_float)
    except InputRefused as err:
        raise InputRefused(f"{what}: {err}") from None
    except ValueError as err:  # json.JSONDecodeError is a ValueError
        raise InputRefused(f"{what} is not JSON ({_first_line(err)})") from None


def nesting_depth(text: str) -> int:
    """How deeply ``[`` and ``{`` nest in JSON ``text``, brackets inside strings not counted.
    Linear in the text and without recursion, so a 100,000-deep answer costs microseconds, not a crash."""
    depth = deepest = 0
    in_string = escaped = False
    for character in text:
        if in_string:
            if escaped:
                escaped = False
            elif character == "\\":
                escaped = True
            elif character == '"':
                in_string = False
        elif character == '"':
            in_string = True
        elif character in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif character in "]}":
            depth -= 1
    return deepest


def _refuse_constant(name: str) -> float:
    raise InputRefused(f"{name} is not a number this program accepts")


def _bounded_int(text: str) -> int:
    if len(text) > MAX_NUMBER_CHARACTERS:
        raise InputRefused(f"a number of {len(text):,} digits is not a value this program accepts")
    return int(text)


def _finite_float(text: str) -> float:
    if len(text) > MAX_NUMBER_CHARACTERS:
        raise InputRefused(f"a number of {len(text):,} characters is not a value this program accepts")
    value = float(text)
    if not math.isfinite(value):
        raise InputRefused(f"{text} is not a finite number")
    return value


def _first_line(err: BaseException) -> str:
    return str(err).splitlines()[0][:200] if str(err) else type(err).__name__
