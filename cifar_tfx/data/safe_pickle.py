"""A restricted unpickler for CIFAR-10's pickled batches that bounds memory and time while it builds.

The official batches are Python-2 pickles of a dict holding byte strings, ints,
lists and one uint8 numpy array. A pickle can name any importable callable and
have the unpickler call it, so the default unpickler would run whatever a
tampered file asks for. This one resolves exactly five globals — numpy's array
reconstructor, ``ndarray`` and ``dtype``, ``bytes`` and the latin-1 ``_codecs.encode``
that Python 3 uses for byte strings at protocol 2 — and wraps them so that only uint8
arrays and byte strings can be built. Every other global is refused before
anything is called.

Refusing globals is not enough: a small file can describe far more than it holds. A
1 MB byte string referenced by 2,000 array states asks for 2 GB of copies; a dict key
that is a tuple of 60 levels, each holding the level below twice, costs 2**60 steps to
hash. So the loader is built on the pure-Python unpickler, whose opcodes it can see one
by one (C's ``_pickle`` hashes keys, grows its memo table to whatever index a file
names and calls ``__setstate__`` before any Python hook runs), and every opcode that
builds goes through one :class:`_Budget`:

* bytes made by a call (an array's copy of its data, a string encoded to bytes) are
  charged before they are made, up to twice the file's size plus 1 MiB (a real batch
  needs its data once, or twice when Python 3 wrote it at protocol 2);
* container items are counted as they are added, up to :data:`MAX_ITEMS`;
* dict keys must be strings, bytes or numbers, whose hashing is linear in their size;
  sets, whose items are hashed too, are not needed by a batch and not read;
* integers must fit in 64 bits (a label of ``2**70`` is refused where it is read);
* only the opcodes a batch's pickle uses are read, any other refused by name, and at most
  :data:`MAX_OPCODES` of them (each costs a Python call: a file of 40 million one-byte opcodes is
  refused after a million, in a fraction of a second).

After loading, containers may nest :data:`MAX_DEPTH` deep; shared references stay shared.
Messages describe what they refuse in a few words, never with ``repr`` of what the file built.
"""

from __future__ import annotations

import io
import pickle
import pickletools
import struct
from typing import Any, Callable, Dict

import numpy as np

from cifar_tfx.data.errors import UnsafePickleError

_RECONSTRUCT_MODULES = ("numpy.core.multiarray", "numpy._core.multiarray")
_ALLOWED_DTYPES = ("u1", "|u1", "uint8")
_UINT8 = np.dtype(np.uint8)

MAX_ARRAY_BYTES = 256 << 20  # a CIFAR training split is 150 MiB of pixels
MAX_DEPTH = 8                # a batch is a dict of lists, strings and one array: two levels
MAX_ITEMS = 1_000_000        # a batch holds 10,000 labels, 10,000 file names and four keys
MAX_OPCODES = 1_000_000      # a batch of 10,000 images takes about 35,000; each costs the loader a Python call
BUILT_BYTES_PER_FILE_BYTE = 2  # data copied once into its array, and once more if encoded from a str first
BUILT_BYTES_SLACK = 1 << 20
MAX_INT_BITS = 63            # labels, sizes and versions; numpy takes the labels as int64
_KEY_TYPES = (str, bytes, int, float, bool, type(None))


def describe(value: Any, limit: int = 60) -> str:
    """A few words about ``value`` that cost no more than ``limit`` characters to make, whatever it holds
    (``repr`` of a shared nested list takes time exponential in its depth; ``str`` of a huge int raises)."""
    if isinstance(value, (str, bytes)):
        text = repr(value[:limit])
        return text + ("..." if len(value) > limit else "")
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, int):
        return str(value) if value.bit_length() <= 64 else f"an integer of {value.bit_length():,} bits"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, tuple) and len(value) <= 8 and all(isinstance(v, int) and v.bit_length() <= 64
                                                            for v in value):
        return repr(value)
    if isinstance(value, (tuple, list, dict)):
        return f"a {type(value).__name__} of {len(value):,} items"
    return f"a {type(value).__name__}"


class _Budget:
    """What one load may build: bytes made by calls and container items, checked before each is made."""

    def __init__(self, file_bytes: int) -> None:
        self.max_bytes = BUILT_BYTES_PER_FILE_BYTE * file_bytes + BUILT_BYTES_SLACK
        self.bytes = 0
        self.items = 0

    def charge_bytes(self, count: int, what: str) -> None:
        self.bytes += count
        if self.bytes > self.max_bytes:
            raise UnsafePickleError(
                f"pickle builds more than {self.max_bytes:,} bytes ({what} among them), more than twice its own "
                "size: it references the same data many times; refused before copying")

    def charge_items(self, count: int) -> None:
        self.items += count
        if self.items > MAX_ITEMS:
            raise UnsafePickleError(f"pickle holds more than {MAX_ITEMS:,} items; a batch holds about 30,000; refused")


class _ArrayBuilder:
    """Stands in for an ndarray while unpickling: checks the state numpy would get, then builds.

    numpy's own ``__setstate__`` would allocate whatever shape the pickle declares; this
    refuses a shape over :data:`MAX_ARRAY_BYTES`, a dtype other than uint8, raw data
    whose length is not the shape's, and data past the load's budget, before any allocation.
    """

    def __init__(self, budget: _Budget) -> None:
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


class _Dispatch(dict):
    """The opcodes a batch's pickle uses; any other is refused by name, before it does anything."""

    def __missing__(self, code: int) -> Callable[[Any], None]:
        opcode = pickletools.code2op.get(chr(code))
        name = opcode.name if opcode is not None else f"byte 0x{code:02x}"
        raise UnsafePickleError(f"pickle uses the {name} opcode, which a CIFAR batch never holds; refused")


_READ_AS_IS = ("PROTO", "FRAME", "STOP", "MARK", "POP", "POP_MARK", "NONE", "NEWTRUE", "NEWFALSE",
               "BININT", "BININT1", "BININT2", "FLOAT", "BINFLOAT",
               "STRING", "BINSTRING", "SHORT_BINSTRING", "BINBYTES", "SHORT_BINBYTES", "BINBYTES8",
               "UNICODE", "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8", "EMPTY_LIST", "EMPTY_TUPLE",
               "EMPTY_DICT", "GET", "BINGET", "LONG_BINGET", "PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE",
               "GLOBAL", "STACK_GLOBAL", "REDUCE")
_INTEGERS = ("INT", "LONG", "LONG1", "LONG4")
_FILLING = ("LIST", "TUPLE", "TUPLE1", "TUPLE2", "TUPLE3", "APPEND", "APPENDS")   # items counted
_KEYED = ("DICT", "SETITEM", "SETITEMS")                                        # items counted, keys checked


def _code(name: str) -> int:
    return getattr(pickle, name)[0]


class RestrictedUnpickler(pickle._Unpickler):  # noqa: SLF001 - the pure-Python unpickler: its opcodes can be seen
    """Unpickler that admits only plain containers and uint8 numpy arrays, within the budget above."""

    def __init__(self, data: bytes) -> None:
        super().__init__(io.BytesIO(data), encoding="bytes")
        self.budget = _Budget(len(data))
        self.opcodes = 0

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

    def _load_build(self) -> None:
        state = self.stack.pop()
        target = self.stack[-1]
        if isinstance(target, _ArrayBuilder):
            target.build(state)
        elif target is not _UINT8 or not isinstance(state, tuple) or len(state) > 9:
            # uint8's own state is (3, '|', None, None, None, -1, -1, 0): nothing a canonical uint8 lacks.
            raise UnsafePickleError(f"pickle sets the state of {describe(target)}; a batch sets only arrays'")

    def _check_integer(self) -> None:
        value = self.stack[-1]
        if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
            raise UnsafePickleError(f"pickle holds {describe(value)}; a batch's labels and sizes fit in 64 bits")

    def _check_keys(self, start: int) -> None:
        """The keys about to be hashed, from ``stack[start:]`` (key, value, key, value ...)."""
        items = self.stack[start:]
        self.budget.charge_items(len(items) // 2)
        for key in items[::2]:
            if not isinstance(key, _KEY_TYPES):
                raise UnsafePickleError(f"pickle uses {describe(key)} as a dict key; a batch's keys are strings")

    def _key_start(self, name: str) -> int:
        """Where the key-value pairs of ``name`` begin on the stack."""
        if name == "SETITEM":
            return len(self.stack) - 2
        if not self.metastack:
            raise pickle.UnpicklingError(f"{name} without a MARK")
        return 0  # DICT and SETITEMS take everything since the mark: self.stack holds just that

    def _count_filling(self, name: str) -> None:
        if name == "APPEND":
            self.budget.charge_items(1)
        elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
            self.budget.charge_items(int(name[-1]))
        else:  # LIST, TUPLE, APPENDS: everything since the mark
            self.budget.charge_items(len(self.stack))


def _restricted_dispatch() -> Dict[int, Callable[[Any], None]]:
    base = pickle._Unpickler.dispatch  # noqa: SLF001
    table = _Dispatch({_code(name): base[_code(name)] for name in _READ_AS_IS})
    table[_code("BUILD")] = RestrictedUnpickler._load_build

    def integer(load: Callable[[Any], None]) -> Callable[[Any], None]:
        def run(self: RestrictedUnpickler) -> None:
            load(self)
            self._check_integer()
        return run

    def keyed(name: str, load: Callable[[Any], None]) -> Callable[[Any], None]:
        def run(self: RestrictedUnpickler) -> None:
            self._check_keys(self._key_start(name))
            load(self)
        return run

    def filling(name: str, load: Callable[[Any], None]) -> Callable[[Any], None]:
        def run(self: RestrictedUnpickler) -> None:
            self._count_filling(name)
            load(self)
        return run

    def counted(load: Callable[[Any], None]) -> Callable[[Any], None]:
        def run(self: RestrictedUnpickler) -> None:
            self.opcodes += 1
            if self.opcodes > MAX_OPCODES:
                raise UnsafePickleError(f"pickle runs more than {MAX_OPCODES:,} opcodes; a batch runs about "
                                        "35,000; refused")
            load(self)
        return run

    for name in _INTEGERS:
        table[_code(name)] = integer(base[_code(name)])
    for name in _KEYED:
        table[_code(name)] = keyed(name, base[_code(name)])
    for name in _FILLING:
        table[_code(name)] = filling(name, base[_code(name)])
    return _Dispatch({code: counted(load) for code, load in table.items()})


RestrictedUnpickler.dispatch = _restricted_dispatch()


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
        # The memo holds the unpickler's own bound methods (find_class's answers), a reference cycle that
        # would keep every string it read alive until a collection: freed here, not at the next gc pass.
        unpickler.memo.clear()
        unpickler.__dict__.pop("stack", None)
        unpickler.__dict__.pop("metastack", None)


def _first_line(err: BaseException) -> str:
    text = str(err)
    return (text.splitlines()[0][:200] if text else type(err).__name__)
