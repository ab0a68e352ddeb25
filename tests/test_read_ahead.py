"""ReadAhead: the bytes, in order, and the source's errors where the stream broke."""

import io
import threading

import pytest

from cifar_tfx.data.read_ahead import ReadAhead


class _BreaksAfter(io.RawIOBase):
    """A source that yields ``good`` bytes, then raises ``error``."""

    def __init__(self, good: bytes, error: Exception) -> None:
        self._good = io.BytesIO(good)
        self._error = error

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self._good.read(size)
        if not data:
            raise self._error
        return data


def test_reads_every_byte_in_order_whatever_the_read_sizes():
    payload = bytes(range(256)) * 4099
    reader = ReadAhead(io.BytesIO(payload), chunk_bytes=1000, chunks_ahead=2)
    pieces = [reader.read(size) for size in (0, 1, 999, 1001, 12345)]
    pieces.append(reader.read())
    assert b"".join(pieces) == payload
    assert reader.read(10) == b"" and reader.read() == b""
    reader.close()


def test_source_errors_arrive_after_the_good_bytes():
    reader = ReadAhead(_BreaksAfter(b"x" * 5000, EOFError("truncated")), chunk_bytes=1024)
    assert reader.read(5000) == b"x" * 5000
    with pytest.raises(EOFError, match="truncated"):
        reader.read(1)
    reader.close()


def test_close_stops_a_thread_that_is_blocked_on_a_full_queue():
    reader = ReadAhead(io.BytesIO(b"y" * 100_000), chunk_bytes=10, chunks_ahead=1)
    assert reader.read(5) == b"yyyyy"
    reader.close()
    assert not any(thread.name == "read-ahead" and thread.is_alive() for thread in threading.enumerate())
    assert reader.closed
