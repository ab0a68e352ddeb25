"""cifar_tfx.bounded_input: the one way a file or an answer is read, bounded or refused in one line."""

import os

import pytest

from cifar_tfx.bounded_input import InputRefused, nesting_depth, parse_json, read_regular_file


def test_a_regular_file_is_read_and_its_bound_holds(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"x" * 10)
    assert read_regular_file(str(path), max_bytes=10) == b"x" * 10
    with pytest.raises(InputRefused, match="has 10 bytes, more than the 9"):
        read_regular_file(str(path), max_bytes=9)


@pytest.mark.parametrize("kind", ["fifo", "folder", "device", "missing"])
def test_what_is_not_a_regular_file_is_refused_without_blocking(tmp_path, kind):
    path = tmp_path / "input"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "folder":
        path.mkdir()
    elif kind == "device":
        path = "/dev/zero"
    with pytest.raises(InputRefused) as refused:
        read_regular_file(str(path), max_bytes=1 << 20, what="models.config")
    message = str(refused.value)
    assert "models.config" in message and "\n" not in message
    assert {"fifo": "not a regular file", "folder": "is a folder", "device": "not a regular file",
            "missing": "does not exist"}[kind] in message


def test_json_within_bounds_parses():
    assert parse_json('{"a": [1, 2.5, "x]"], "b": {"c": null}}', what="answer") == {
        "a": [1, 2.5, "x]"], "b": {"c": None}}


@pytest.mark.parametrize("text, says", [
    ("[" * 100_000 + "]" * 100_000, "nests 100000 levels"),
    ('{"v": Infinity}', "Infinity is not a number"),
    ('{"v": NaN}', "NaN is not a number"),
    ('{"v": 1e999}', "1e999 is not a finite number"),
    ('{"v": ' + "9" * 5000 + "}", "5,000 digits"),
    ("200 not json", "is not JSON"),
    (b"\xff\xfe", "is not UTF-8"),
])
def test_hostile_json_is_one_line(text, says):
    with pytest.raises(InputRefused, match=says) as refused:
        parse_json(text, what="the server's answer")
    assert str(refused.value).startswith("the server's answer") and "\n" not in str(refused.value)


def test_size_bound_comes_before_parsing():
    with pytest.raises(InputRefused, match="more than the 10 expected"):
        parse_json("[" + "1," * 20 + "1]", what="answer", max_bytes=10)


def test_brackets_inside_strings_do_not_count():
    assert nesting_depth('{"a": "[[[[\\"[[["}') == 1
