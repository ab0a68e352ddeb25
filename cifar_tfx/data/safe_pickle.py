"""A restricted unpickler for CIFAR-10's pickled batches.

The official batches are Python-2 pickles of a dict holding byte strings, ints,
lists and one uint8 numpy array. A pickle can name any importable callable and
have the unpickler call it, so the default unpickler would run whatever a
tampered file asks for. This one resolves exactly five globals — numpy's array
reconstructor, ``ndarray`` and ``dtype``, ``bytes`` and the latin-1 ``_codecs.encode``
that Python 3 uses for byte strings at protocol 2 — and wraps them so that only uint8
arrays and byte strings can be built. Every other global is refused before
anything is called.

Refusing globals is not enough: a small file can describe far more than it holds. The loader is a
:class:`~cifar_tfx.data.bounded_unpickler.BoundedUnpickler`, which bounds, opcode by opcode, the items,
keys, integers and opcodes a file makes it build; the array and the byte strings made here charge their
bytes to its budget before they are made (a 1 MB string referenced by 2,000 array states is refused at
the third copy, not after 2 GB). After loading, containers may nest :data:`MAX_DEPTH` deep; shared
references stay shared.
"""

from __future__ import annotations

import pickle
import struct
from typing import Any, Dict

import numpy as np

from cifar_tfx.data.bounded_unpickler import Budget, BoundedUnpickler, describe
from cifar_tfx.data.errors import UnsafePickleError

__all__ = ["MAX_ARRAY_BYTES", "MAX_DEPTH", "RestrictedUnpickler", "describe", "safe_loads"]

_RECONSTRUCT_MODULES = ("numpy.core.multiarray", "numpy._core.multiarray")
_ALLOWED_DTYPES = ("u1", "|u1", "uint8")
_UINT8 = np.dtype(np.uint8)

MAX_ARRAY_BYTES = 256 << 20  # a CIFAR training split is 150 MiB of pixels
MAX_DEPTH = 8                # a batch is a dict of lists, strings and one array: two levels


class _ArrayBuilder:
    """Stands in for an ndarray while unpickling: checks the state numpy would get, then builds.

    numpy's own ``__setstate__`` would allocate whatever shape the pickle declares; this
    refuses a shape over :data:`MAX_ARRAY_BYTES`, a dtype other than uint8, raw data
    whose length is not the shape's, and data past the load's budget, before any allocation.
    """

    def __init__(self, budget: Budget) -> None:
        self.array: Any = None
        self._budget = budget

    def build(self, state: Any) -> None:
        if self.array is not None:
            raise UnsafePickleError("numpy array state given twice; refused")
        if not isinstance(state, tuple) or len(state) != 5:
            raise UnsafePickleError("numpy array state has an unexpected form; refused")
        _, shape, dtype, fortran, raw = state
        if not isinstance(shape, tuple) or len(shape) > 8 or not all(
                isinstance(d, int) and d >= 0 for d in shape):
            raise UnsafePickleError(f"numpy array shape {describe(shape)} is not a tuple of sizes; refused")
        size = 1
        for dim in shape:
            size *= dim
        if size > MAX_ARRAY_BYTES:
            raise UnsafePickleError(f"numpy array declares shape {shape} ({size:,} bytes), more than the "
                                    f"{MAX_ARRAY_BYTES:,} a batch can hold; refused before allocating")
        if dtype is not _UINT8 or not isinstance(raw, bytes) or len(raw) != size:
            raise UnsafePickleError(f"numpy array of shape {shape} has {len(raw) if isinstance(raw, bytes) else '?'} "
                                    "bytes of data or a dtype other than uint8; refused")
        self._budget.charge_bytes(size, f"a numpy array of {size:,} bytes")
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


def _safe_dtype(spec: Any, *args: Any) -> np.dtype:
    name = spec.decode("ascii", "replace") if isinstance(spec, bytes) else spec
    if name not in _ALLOWED_DTYPES:
        raise UnsafePickleError(f"pickle asks for numpy dtype {describe(name)}; only uint8 is allowed")
    return _UINT8


class RestrictedUnpickler(BoundedUnpickler):
    """Unpickler that admits only plain containers and uint8 numpy arrays, within the bounds of its base."""

    def find_class(self, module: str, name: str) -> Any:
        if module in _RECONSTRUCT_MODULES and name == "_reconstruct":
            return self._reconstruct
        if module == "numpy" and name == "ndarray":
            return _NdarrayType
        if module in ("builtins", "__builtin__") and name == "bytes":
            return _bytes
        if module == "numpy" and name == "dtype":
            return _safe_dtype
        if module == "_codecs" and name == "encode":
            return self._latin1_encode
        raise UnsafePickleError(
            f"pickle asks for {str(module)[:60]}.{str(name)[:60]}; a CIFAR batch holds only dicts, lists, "
            "strings, ints and uint8 arrays, so this file is refused"
        )

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError("pickle uses persistent ids; refused")

    def _reconstruct(self, subtype: Any, shape: Any, dtype_char: Any) -> _ArrayBuilder:
        if subtype is not _NdarrayType:
            raise UnsafePickleError(f"pickle asks to reconstruct {describe(subtype)}; only numpy.ndarray is allowed")
        return _ArrayBuilder(self.budget)

    def _latin1_encode(self, text: Any, encoding: Any = "latin1") -> bytes:
        # Python 3 writes byte strings at protocol 2 as _codecs.encode(str, "latin1").
        if not isinstance(text, str) or encoding != "latin1":
            raise UnsafePickleError("pickle calls _codecs.encode with unexpected arguments; refused")
        self.budget.charge_bytes(len(text), f"a string of {len(text):,} characters encoded to bytes")
        return text.encode("latin1")

    def load_build_state(self, target: Any, state: Any) -> None:
        if isinstance(target, _ArrayBuilder):
            target.build(state)
        elif target is not _UINT8 or not isinstance(state, tuple) or len(state) > 9:
            # uint8's own state is (3, '|', None, None, None, -1, -1, 0): nothing a canonical uint8 lacks.
            raise UnsafePickleError(f"pickle sets the state of {describe(target)}; a batch sets only arrays'")


def _unwrap(obj: Any) -> Any:
    """``obj`` with every :class:`_ArrayBuilder` replaced by the array it built.

    A pickle can reference one container many times (its memo): a 500-byte file of 40
    levels, each holding the level below twice, describes 2**40 items. Each distinct object
    is unwrapped once here and shared references stay shared, so the work is bounded by
    the pickle's own size; containers may nest :data:`MAX_DEPTH` deep before the file is refused.
    """
    done: Dict[int, Any] = {}

    def visit(node: Any, depth: int) -> Any:
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
        if isinstance(node, dict):
            result: Any = {key: visit(value, depth + 1) for key, value in node.items()}
        elif isinstance(node, list):
            result = [visit(value, depth + 1) for value in node]
        else:
            result = tuple(visit(value, depth + 1) for value in node)
        done[id(node)] = result
        return result

    return visit(obj, 0)


_MALFORMED = (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
              struct.error, OverflowError)


def safe_loads(data: bytes) -> Any:
    """Unpickle ``data`` (Python-2 byte strings stay ``bytes``) with the restrictions above."""
    unpickler = RestrictedUnpickler(data)
    try:
        return _unwrap(unpickler.load())
    except UnsafePickleError:
        raise
    except _MALFORMED as err:
        raise UnsafePickleError(f"not a readable batch pickle: {_first_line(err)}") from err
    finally:
        unpickler.release()


def _first_line(err: BaseException) -> str:
    text = str(err)
    return (text.splitlines()[0][:200] if text else type(err).__name__)
