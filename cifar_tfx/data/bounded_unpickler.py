"""An unpickler that bounds what a file can make it build, checked opcode by opcode, before each is run.

A small pickle can describe far more than it holds: a 1 MB byte string referenced by 2,000 array states
asks for 2 GB of copies; a dict key that is a tuple of 60 levels, each holding the level below twice,
costs 2**60 steps to hash. C's ``_pickle`` hashes keys, grows its memo table to whatever index a file
names and calls ``__setstate__`` before any Python hook runs, so :class:`BoundedUnpickler` is built on
Python's own pure-Python unpickler (``pickle._Unpickler``), whose opcodes it sees one by one, with a
dispatch table of its own in which every opcode that builds goes through one :class:`Budget`:

* bytes made by a call (an array's copy of its data, a string encoded to bytes) are charged by the
  callee (:meth:`Budget.charge_bytes`) before they are made, up to twice the file's size plus 1 MiB;
* container items are counted as they are added, up to :data:`MAX_ITEMS`;
* dict keys must be strings, bytes or numbers, whose hashing is linear in their size; sets and frozensets,
  whose items are hashed too, are not read;
* integers must fit in 64 bits (a ``2**70`` is refused where it is read);
* only the opcodes listed here are read, any other refused by name, and at most :data:`MAX_OPCODES`
  of them (each costs a Python call: a file of 40 million one-byte opcodes is refused after a million).

What it may call (``find_class``) and what ``BUILD`` may set (``load_build_state``) are the subclass's.
Messages describe what they refuse with :func:`describe`, never with ``repr`` of what the file built.
"""

from __future__ import annotations

import io
import pickle
import pickletools
from typing import Any, Callable, Dict

from cifar_tfx.data.errors import UnsafePickleError

MAX_ITEMS = 1_000_000        # a CIFAR batch holds 10,000 labels, 10,000 file names and four keys
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
    if isinstance(value, (bool, float)) or value is None:
        return repr(value)
    if isinstance(value, int):
        return str(value) if value.bit_length() <= 64 else f"an integer of {value.bit_length():,} bits"
    if isinstance(value, tuple) and len(value) <= 8 and all(isinstance(v, int) and v.bit_length() <= 64
                                                            for v in value):
        return repr(value)
    if isinstance(value, (tuple, list, dict)):
        return f"a {type(value).__name__} of {len(value):,} items"
    return f"a {type(value).__name__}"


class Budget:
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


class _Dispatch(dict):
    """Opcode byte -> loader; an opcode not listed is refused by name, before it does anything."""

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


class BoundedUnpickler(pickle._Unpickler):  # noqa: SLF001 - the pure-Python unpickler: its opcodes can be seen
    """Reads ``data`` within the bounds above; Python-2 byte strings stay ``bytes``."""

    def __init__(self, data: bytes) -> None:
        super().__init__(io.BytesIO(data), encoding="bytes")
        self.budget = Budget(len(data))
        self.opcodes = 0

    def load_build_state(self, target: Any, state: Any) -> None:
        """``BUILD``: give ``state`` to ``target``; refused here, allowed by a subclass for what it builds."""
        raise UnsafePickleError(f"pickle sets the state of {describe(target)}; refused")

    def release(self) -> None:
        """Drop what the load read. The memo holds what ``find_class`` answered, often this unpickler's own
        bound methods: a reference cycle that would keep every string it read until a collection."""
        self.memo.clear()
        self.__dict__.pop("stack", None)
        self.__dict__.pop("metastack", None)

    def _load_build(self) -> None:
        state = self.stack.pop()
        self.load_build_state(self.stack[-1], state)

    def _check_integer(self) -> None:
        value = self.stack[-1]
        if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
            raise UnsafePickleError(f"pickle holds {describe(value)}; a batch's labels and sizes fit in 64 bits")

    def _check_keys(self, name: str) -> None:
        """The keys ``name`` is about to hash: stack[-2] for SETITEM, all since the mark otherwise (after a
        MARK, ``self.stack`` holds just what came after it: key, value, key, value ...)."""
        if name != "SETITEM" and not self.metastack:
            raise pickle.UnpicklingError(f"{name} without a MARK")
        items = self.stack[-2:] if name == "SETITEM" else self.stack
        self.budget.charge_items(len(items) // 2)
        for key in items[::2]:
            if not isinstance(key, _KEY_TYPES):
                raise UnsafePickleError(f"pickle uses {describe(key)} as a dict key; a batch's keys are strings")

    def _count_filling(self, name: str) -> None:
        if name == "APPEND":
            self.budget.charge_items(1)
        elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
            self.budget.charge_items(int(name[-1]))
        else:  # LIST, TUPLE, APPENDS: everything since the mark
            self.budget.charge_items(len(self.stack))

    def _count_opcode(self) -> None:
        self.opcodes += 1
        if self.opcodes > MAX_OPCODES:
            raise UnsafePickleError(f"pickle runs more than {MAX_OPCODES:,} opcodes; a batch runs about 35,000; "
                                    "refused")


def _code(name: str) -> int:
    return getattr(pickle, name)[0]


def _bounded_dispatch() -> Dict[int, Callable[[Any], None]]:
    base = pickle._Unpickler.dispatch  # noqa: SLF001
    table: Dict[int, Callable[[Any], None]] = {_code(name): base[_code(name)] for name in _READ_AS_IS}
    table[_code("BUILD")] = BoundedUnpickler._load_build

    def integer(load: Callable[[Any], None]) -> Callable[[Any], None]:
        def run(self: BoundedUnpickler) -> None:
            load(self)
            self._check_integer()
        return run

    def keyed(name: str, load: Callable[[Any], None]) -> Callable[[Any], None]:
        def run(self: BoundedUnpickler) -> None:
            self._check_keys(name)
            load(self)
        return run

    def filling(name: str, load: Callable[[Any], None]) -> Callable[[Any], None]:
        def run(self: BoundedUnpickler) -> None:
            self._count_filling(name)
            load(self)
        return run

    def counted(load: Callable[[Any], None]) -> Callable[[Any], None]:
        def run(self: BoundedUnpickler) -> None:
            self._count_opcode()
            load(self)
        return run

    for name in _INTEGERS:
        table[_code(name)] = integer(base[_code(name)])
    for name in _KEYED:
        table[_code(name)] = keyed(name, base[_code(name)])
    for name in _FILLING:
        table[_code(name)] = filling(name, base[_code(name)])
    return _Dispatch({code: counted(load) for code, load in table.items()})


BoundedUnpickler.dispatch = _bounded_dispatch()
