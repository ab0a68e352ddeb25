"""Pickled batches that describe far more than they hold: the loader bounds memory and time while it builds.

Each bomb is loaded in a child process with its address space capped and a deadline, so that a loader
that lets it through fails the test (killed or out of memory) instead of taking the machine with it.
"""

import pickle
import resource
import subprocess
import sys

import numpy as np
import pytest
from archive_fixtures import python_batch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cifar_tfx.cli import EXIT_BAD_INPUT, main
from cifar_tfx.data.errors import UnsafePickleError
from cifar_tfx.data.safe_pickle import safe_loads
from cifar_tfx.data.synth import write_dataset

_CHILD = ("import sys\nfrom cifar_tfx.data.safe_pickle import safe_loads\n"
          "try:\n    safe_loads(open(sys.argv[1], 'rb').read()); print('loaded')\n"
          "except Exception as err:\n    print(type(err).__name__, str(err).splitlines()[0][:300])\n"
          "print([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0])")


def _load_in_child(tmp_path, data, seconds=20, address_space=1 << 30):
    """``(first line the loader said, peak RSS in MB)`` of ``safe_loads(data)`` in a capped child."""
    path = tmp_path / "bomb.pickle"
    path.write_bytes(data)

    def cap():
        resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))

    try:
        out = subprocess.run([sys.executable, "-c", _CHILD, str(path)], capture_output=True, text=True,
                             timeout=seconds, preexec_fn=cap)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the loader was still working after {seconds} s")
    lines = out.stdout.strip().splitlines()
    assert out.returncode == 0 and len(lines) == 2, (out.returncode, out.stdout[-500:], out.stderr[-500:])
    return lines[0], int(lines[1]) // 1024


class _SharedState:
    """Pickles as numpy's own array pickling does, with ``raw`` as its data (shared through the memo)."""

    def __init__(self, raw):
        self.raw = raw

    def __reduce__(self):
        from numpy.core.multiarray import _reconstruct

        return _reconstruct, (np.ndarray, (0,), b"b"), (1, (len(self.raw),), np.dtype("u1"), False, self.raw)


def _shared_data_bomb(references=2000, size=1 << 20):
    raw = bytes(size)
    return pickle.dumps({b"data": [_SharedState(raw) for _ in range(references)]}, protocol=3)


def _shared_tuple(levels=60):
    """Opcodes of a tuple of ``levels`` levels, each holding the level below twice (memo 0 is the last)."""
    ops = b"C\x01x" + b"\x85" + b"q\x00"                   # SHORT_BINBYTES 'x', TUPLE1, BINPUT 0
    ops += (b"h\x00h\x00\x86q\x00") * levels                 # BINGET 0, BINGET 0, TUPLE2, BINPUT 0
    return ops


def _dict_keyed_by_shared_tuple():
    return b"\x80\x02}" + _shared_tuple() + b"K\x01s."       # EMPTY_DICT, key, BININT1 1, SETITEM, STOP


def _frozenset_of_shared_tuple():
    return b"\x80\x04(" + _shared_tuple() + b"\x91."         # MARK, item, FROZENSET, STOP


class _ReconstructAs:
    def __init__(self, subtype):
        self.subtype = subtype

    def __reduce__(self):
        from numpy.core.multiarray import _reconstruct

        return _reconstruct, (self.subtype, (0,), b"b")


def _reconstruct_with_shared_list(levels=40):
    node = [b"x"]
    for _ in range(levels):
        node = [node, node]
    return pickle.dumps({b"data": _ReconstructAs(node)}, protocol=2)


def test_one_megabyte_referenced_by_2000_arrays_is_refused_before_copying(tmp_path):
    data = _shared_data_bomb()
    assert len(data) < 1_200_000
    said, peak_mb = _load_in_child(tmp_path, data)
    assert said.startswith("UnsafePickleError") and "references the same data many times" in said, said
    assert peak_mb < 150, f"peak RSS {peak_mb} MB"


def test_a_string_encoded_again_and_again_is_refused_before_encoding():
    text = "x" * (1 << 20)
    from _codecs import encode

    class Encoded:
        def __reduce__(self):
            return encode, (text, "latin1")

    data = pickle.dumps([Encoded() for _ in range(50)], protocol=2)  # the str is memoised, encoded 50 times
    with pytest.raises(UnsafePickleError, match="references the same data many times"):
        safe_loads(data)


@pytest.mark.parametrize("make", [_dict_keyed_by_shared_tuple, _frozenset_of_shared_tuple],
                         ids=["dict-key", "frozenset"])
def test_keys_that_would_take_forever_to_hash_are_refused_at_once(tmp_path, make):
    data = make()
    assert len(data) < 520
    said, _ = _load_in_child(tmp_path, data, seconds=10)
    assert said.startswith("UnsafePickleError") and ("as a dict key" in said or "FROZENSET opcode" in said), said


def test_reconstruct_of_a_shared_list_is_refused_with_a_short_message(tmp_path):
    said, _ = _load_in_child(tmp_path, _reconstruct_with_shared_list(), seconds=10)
    assert said == "UnsafePickleError pickle asks to reconstruct a list of 2 items; only numpy.ndarray is allowed"


def test_a_label_beyond_64_bits_is_one_line_and_exit_2(tmp_path, capsys):
    write_dataset(str(tmp_path), train=50, test=10, seed=3)
    batch = python_batch(n=2, labels=[2**70, 1])
    (tmp_path / "cifar-10-batches-py" / "data_batch_2").write_bytes(pickle.dumps(batch, protocol=2))
    assert main(["data", "verify", str(tmp_path)]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "data_batch_2" in err and "an integer of 71 bits" in err, err


def test_a_file_of_millions_of_one_byte_opcodes_is_refused_after_a_million():
    with pytest.raises(UnsafePickleError, match="more than 1,000,000 opcodes"):
        safe_loads(b"\x80\x02" + b"N" * 3_000_000 + b".")  # 3 million Nones pushed: 24 MB of references


def test_opcodes_a_batch_never_uses_are_refused_by_name():
    with pytest.raises(UnsafePickleError, match="the EMPTY_SET opcode"):
        safe_loads(b"\x80\x04\x8f.")


def test_a_real_batch_still_loads_whole(tmp_path):
    batch = python_batch(n=300, seed=5)
    for protocol in (2, 4):
        loaded = safe_loads(pickle.dumps(batch, protocol=protocol))
        assert np.array_equal(loaded["data"], batch["data"]) and loaded["labels"] == batch["labels"]


# --- property-based: whatever bytes the file holds, the loader answers within bounds -------------------

_OPCODE_BYTES = [bytes([code]) for code in b"\x80(.)]}KJMCBXUhjqrsue\x85\x86\x87tRbcN\x88\x89\x8a\x8c\x93\x94\x95"]


def _pickle_like():
    """Byte strings made of real opcodes and small arguments: most reach deep into the loader."""
    piece = st.one_of(st.sampled_from(_OPCODE_BYTES), st.binary(min_size=1, max_size=4),
                      st.just(b"cnumpy.core.multiarray\n_reconstruct\n"), st.just(b"cnumpy\nndarray\n"),
                      st.just(b"c_codecs\nencode\n"), st.just(b"cnumpy\ndtype\n"))
    return st.lists(piece, max_size=60).map(lambda parts: b"\x80\x02" + b"".join(parts))


@settings(max_examples=400, deadline=500, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.one_of(_pickle_like(), st.binary(max_size=200)))
def test_any_bytes_load_or_are_refused_in_one_line(data):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        safe_loads(data)
    except UnsafePickleError as err:
        assert "\n" not in str(err) and len(str(err)) < 400
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # KB: no hidden allocation


@settings(max_examples=100, deadline=1000, database=None)
@given(labels=st.lists(st.integers(), min_size=1, max_size=5), keys=st.lists(st.binary(max_size=8), max_size=3))
def test_any_batch_of_plain_values_loads_as_it_was(labels, keys):
    batch = {b"labels": labels, **{key: key for key in keys}}
    try:
        assert safe_loads(pickle.dumps(batch, protocol=2)) == batch
    except UnsafePickleError as err:
        assert any(value.bit_length() > 63 for value in labels) and "bits" in str(err)



def test_what_the_loader_read_is_freed_when_it_returns_not_at_the_next_collection():
    import gc
    import tracemalloc

    batch = python_batch(n=2000, seed=6)  # 6 MB of pixels, written by Python 3 at protocol 2 as a latin-1 str
    data = pickle.dumps(batch, protocol=2)
    gc.disable()
    tracemalloc.start()
    try:
        loaded = safe_loads(data)
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        gc.enable()
    assert loaded["data"].nbytes == 2000 * 3072
    assert held < 1.3 * loaded["data"].nbytes, f"{held:,} bytes still held for a {loaded['data'].nbytes:,}-byte array"
