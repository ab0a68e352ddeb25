"""A restricted unpickler for CIFAR-10's pickled batches.

The official batches are Python-2 pickles of a dict holding byte strings, ints,
lists and one uint8 numpy array. A pickle can name any importable callable and
have the unpickler call it, so the default unpickler would run whatever a
tampered file asks for. This one resolves exactly four globals — numpy's array
reconstructor, ``ndarray`` and ``dtype``, and the latin-1 ``_codecs.encode`` that
Python 3 uses for byte strings at protocol 2 — and wraps them so that only uint8
arrays and byte strings can be built. Every other global is refused before
anything is called.
"""

from __future__ import annotations

import io
import pickle
from typing import Any, Dict

import numpy as np

from cifar_tfx.data.errors import UnsafePickleError

_RECONSTRUCT_MODULES = ("numpy.core.multiarray", "numpy._core.multiarray")
_ALLOWED_DTYPES = ("u1", "|u1", "uint8")


MAX_ARRAY_BYTES = 256 << 20  # a CIFAR training split is 150 MiB of pixels
MAX_DEPTH = 8                # a batch is a dict of lists, strings and one array: two levels
MAX_ITEMS = 1_000_000        # a batch holds 10,000 labels, 10,000 file names and four keys


class _ArrayBuilder:
    """Stands in for an ndarray while unpickling: checks the state numpy would get, then builds.

    numpy's own ``__setstate__`` would allocate whatever shape the pickle declares; this
    refuses a shape over :data:`MAX_ARRAY_BYTES`, a dtype other than uint8 and raw data
    whose length is not the shape's, before any allocation.
    """

    def __init__(self) -> None:
        self.array: Any = None

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) != 5:
            raise UnsafePickleError("numpy array state has an unexpected form; refused")
        _, shape, dtype, fortran, raw = state
        if not isinstance(shape, tuple) or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise UnsafePickleError(f"numpy array shape {shape!r} is not a tuple of sizes; refused")
        size = 1
        for dim in shape:
            size *= dim
        if size > MAX_ARRAY_BYTES:
            raise UnsafePickleError(f"numpy array declares shape {shape} ({size:,} bytes), more than the "
                                    f"{MAX_ARRAY_BYTES:,} a batch can hold; refused before allocating")
        if dtype != np.dtype(np.uint8) or not isinstance(raw, bytes) or len(raw) != size:
            raise UnsafePickleError(f"numpy array of shape {shape} has {len(raw) if isinstance(raw, bytes) else '?'} "
                                    "bytes of data or a dtype other than uint8; refused")
        self.array = np.frombuffer(raw, dtype=np.uint8).reshape(shape, order="F" if fortran else "C").copy()


class _NdarrayType:
    """What the name ``numpy.ndarray`` resolves to: an argument of ``_reconstruct``, never a constructor
    (``numpy.ndarray((10**11,), 'u1')`` called by a pickle would allocate whatever it asks)."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        raise UnsafePickleError("pickle calls numpy.ndarray directly; only numpy's own array pickling is allowed")


def _bytes(*args: Any) -> bytes:
    # Python 3 writes b"" at protocol 2 as bytes(): the only call of bytes a batch needs.
    if args:
        raise UnsafePickleError("pickle calls bytes with arguments; refused")
    return b""


def _safe_reconstruct(subtype: Any, shape: Any, dtype_char: Any) -> _ArrayBuilder:
    if subtype is not _NdarrayType:
        raise UnsafePickleError(f"pickle asks to reconstruct {subtype!r}; only numpy.ndarray is allowed")
    return _ArrayBuilder()


def _unwrap(obj: Any) -> Any:
    """``obj`` with every :class:`_ArrayBuilder` replaced by the array it built.

    A pickle can reference one container many times (its memo): a 500-byte file of 40
    levels, each holding the level below twice, describes 2**40 items. Each distinct object
    is unwrapped once here and shared references stay shared, so the work is bounded by
    the pickle's own size; containers may nest :data:`MAX_DEPTH` deep and hold
    :data:`MAX_ITEMS` items in all, far beyond a real batch, before the file is refused.
    """
    done: Dict[int, Any] = {}
    items = 0

    def visit(node: Any, depth: int) -> Any:
        nonlocal items
        if isinstance(node, _ArrayBuilder):
            if node.array is None:
                raise UnsafePickleError("numpy array without its data; refused")
            return node.array
        if not isinstance(node, (dict, list, tuple)):
            return node
        if id(node) in done:
            return done[id(node)]
        if depth >= MAX_DEPTH:
            raise UnsafePickleError(f"pickle nests containers more than {MAX_DEPTH} deep; a batch nests two; refused")
        items += len(node)
        if items > MAX_ITEMS:
            raise UnsafePickleError(f"pickle holds more than {MAX_ITEMS:,} items; a batch holds about 30,000; refused")
        if isinstance(node, dict):
            result: Any = {key: visit(value, depth + 1) for key, value in node.items()}
        elif isinstance(node, list):
            result = [visit(value, depth + 1) for value in node]
        else:
            result = tuple(visit(value, depth + 1) for value in node)
        done[id(node)] = result
        return result

    return visit(obj, 0)


def _latin1_encode(text: Any, encoding: Any = "latin1") -> bytes:
    # Python 3 writes byte strings at protocol 2 as _codecs.encode(str, "latin1").
    if not isinstance(text, str) or encoding != "latin1":
        raise UnsafePickleError("pickle calls _codecs.encode with unexpected arguments; refused")
    return text.encode("latin1")


def _safe_dtype(spec: Any, *args: Any) -> np.dtype:
    name = spec.decode("ascii", "replace") if isinstance(spec, bytes) else str(spec)
    if name not in _ALLOWED_DTYPES:
        raise UnsafePickleError(f"pickle asks for numpy dtype {name!r}; only uint8 is allowed")
    return np.dtype(np.uint8)


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that admits only plain containers and uint8 numpy arrays."""

    def find_class(self, module: str, name: str) -> Any:
        if module in _RECONSTRUCT_MODULES and name == "_reconstruct":
            return _safe_reconstruct
        if module == "numpy" and name == "ndarray":
            return _NdarrayType
        if module in ("builtins", "__builtin__") and name == "bytes":
            return _bytes
        if module == "numpy" and name == "dtype":
            return _safe_dtype
        if module == "_codecs" and name == "encode":
            return _latin1_encode
        raise UnsafePickleError(
            f"pickle asks for {module}.{name}; a CIFAR batch holds only dicts, lists, "
            "strings, ints and uint8 arrays, so this file is refused"
        )

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError("pickle uses persistent ids; refused")


def safe_loads(data: bytes) -> Any:
    """Unpickle ``data`` (Python-2 byte strings stay ``bytes``) with the restrictions above."""
    try:
        return _unwrap(RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load())
    except UnsafePickleError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as err:
        raise UnsafePickleError(f"not a readable batch pickle: {err}") from err
