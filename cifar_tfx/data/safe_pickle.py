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
from typing import Any

import numpy as np

from cifar_tfx.data.errors import UnsafePickleError

_RECONSTRUCT_MODULES = ("numpy.core.multiarray", "numpy._core.multiarray")
_ALLOWED_DTYPES = ("u1", "|u1", "uint8")


def _safe_reconstruct(subtype: Any, shape: Any, dtype_char: Any) -> np.ndarray:
    if subtype is not np.ndarray:
        raise UnsafePickleError(f"pickle asks to reconstruct {subtype!r}; only numpy.ndarray is allowed")
    return np.ndarray.__new__(np.ndarray, (0,), dtype=np.uint8)


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
            return np.ndarray
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
        return RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()
    except UnsafePickleError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as err:
        raise UnsafePickleError(f"not a readable batch pickle: {err}") from err
