"""models.config and the version folders as a hostile user hands them over: one bounded reader, one line each.

`serving label|policy|rollback|config`, the Pusher and `served_version` all read models.config through
`model_config.read_models_config`, which reads through `bounded_input.read_regular_file`.
"""

import os
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("tensorflow_serving")

from cifar_tfx.cli import EXIT_BAD_INPUT, main  # noqa: E402
from cifar_tfx.serving import model_config  # noqa: E402

CONFIG = 'model_config_list { config { name: "cifar10" base_path: "/srv/serving/cifar10" model_platform: "tensorflow" } }\n'


@pytest.fixture
def serving(tmp_path):
    for version in (2, 3):
        (tmp_path / "cifar10" / str(version)).mkdir(parents=True)
    (tmp_path / "models.config").write_text(CONFIG)
    return tmp_path


def _one_line(capsys, *needles, limit=400):
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and len(captured.err) < limit, captured.err[:2000]
    for needle in needles:
        assert needle in captured.err, captured.err
    return captured.err


def _in_thread(call, seconds=20):
    """``call()`` with a bound on its time: a read that blocks (a FIFO) fails the test instead of hanging it."""
    result = {}
    worker = threading.Thread(target=lambda: result.setdefault("value", call()), daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), "the command blocked"
    return result["value"]


@pytest.mark.parametrize("kind", ["fifo", "dev_zero"])
def test_a_models_config_that_never_ends_is_refused_without_reading(serving, capsys, kind):
    config = serving / "models.config"
    config.unlink()
    if kind == "fifo":
        os.mkfifo(config)
    else:
        config.symlink_to("/dev/zero")
    assert _in_thread(lambda: main(["serving", "label", str(serving), "--model", "cifar10", "a=3"])) == EXIT_BAD_INPUT
    _one_line(capsys, str(config), "not a regular file")


def test_a_50_mb_models_config_is_one_short_line(serving, capsys):
    entry = 'config { name: "m%d" base_path: "/srv/m" }\n'
    with open(serving / "models.config", "w") as out:
        out.write("model_config_list {\n")
        for index in range(600_000):
            out.write(entry % index)
        out.write("}\n")
    assert os.path.getsize(serving / "models.config") > 20_000_000
    assert main(["serving", "rollback", str(serving), "--model", "cifar10"]) == EXIT_BAD_INPUT
    _one_line(capsys, "models.config", "more than the 1,048,576")


def test_a_config_with_many_models_lists_a_few_in_the_error(serving, capsys):
    names = "".join(f'config {{ name: "{"m" * 300}{i}" base_path: "/srv/m" }}\n' for i in range(2000))
    (serving / "models.config").write_text("model_config_list {\n" + names + "}\n")
    assert main(["serving", "rollback", str(serving), "--model", "cifar10"]) == EXIT_BAD_INPUT
    _one_line(capsys, "has no model 'cifar10'", "and 1,994 more")


@pytest.mark.parametrize("text", [CONFIG[:-20], CONFIG.replace("{", "[", 1), "\xff\xfe garbage",
                                  "custom_model_config { " + "[type.googleapis.com/google.protobuf.Any] { " * 3000])
def test_a_truncated_or_unparseable_config_is_refused_naming_the_file(serving, capsys, text):
    (serving / "models.config").write_bytes(text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text)
    before = (serving / "models.config").read_bytes()
    assert main(["serving", "label", str(serving), "--model", "cifar10", "a=3"]) == EXIT_BAD_INPUT
    _one_line(capsys, str(serving / "models.config"), "is not a ModelServerConfig TF Serving can read")
    assert (serving / "models.config").read_bytes() == before


@pytest.mark.parametrize("pair", ["stable=²", "stable=" + "9" * 5000, "stable=٣", "stable=9223372036854775808",
                                  "stable=" + "0" * 5000])
def test_a_label_whose_version_is_no_int64_is_one_short_line(serving, capsys, pair):
    assert main(["serving", "label", str(serving), "--model", "cifar10", pair]) == EXIT_BAD_INPUT
    _one_line(capsys, "must be NAME=VERSION")


def test_a_version_with_leading_zeros_is_the_version_safe_strto64_reads(serving, capsys):
    assert main(["serving", "label", str(serving), "--model", "cifar10", "stable=" + "0" * 5000 + "3"]) == 0
    assert "cifar10: labels stable=3" in capsys.readouterr().out



@pytest.mark.parametrize("argv", [["policy", "specific", "9" * 5000], ["policy", "specific", "²"],
                                  ["rollback", "--to", "9" * 5000]])
def test_a_version_argument_that_is_no_int64_is_refused_by_the_parser(serving, capsys, argv):
    command, *rest = argv
    with pytest.raises(SystemExit) as stopped:
        main(["serving", command, str(serving), "--model", "cifar10", *rest])
    assert stopped.value.code == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "is not a version number" in err and len(err) < 1000


@pytest.mark.parametrize("stray", ["²", "9" * 200, "٣", "-1", "02x"])
def test_a_stray_folder_beside_the_versions_is_ignored_as_tf_serving_ignores_it(serving, capsys, stray):
    """file_system_storage_path_source.cc (2.16.1) takes a folder as a version only if safe_strto64 reads its name."""
    (serving / "cifar10" / stray).mkdir()
    assert model_config.existing_versions(str(serving / "cifar10")) == [2, 3]
    assert main(["serving", "policy", str(serving), "--model", "cifar10", "specific", "2", "3"]) == 0
    assert main(["serving", "label", str(serving), "--model", "cifar10", "stable=2"]) == 0
    assert "cifar10: labels stable=2" in capsys.readouterr().out


# --- property: whatever the file holds, the reader returns a config or one short ValueError --------------

_FRAGMENTS = st.sampled_from(['model_config_list {', 'config {', '}', 'name: "m"', 'base_path: "/m"',
                              'version_labels { key: "a" value: 3 }', 'model_version_policy { specific { versions: 2 } }',
                              'value: 99999999999999999999999', '[type.googleapis.com/google.protobuf.Any] {',
                              'custom_model_config {', '"\\xff', '#', '\n', '{' * 50, '\x00'])


@settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.one_of(st.lists(_FRAGMENTS, max_size=40).map(" ".join), st.text(max_size=300),
                      st.binary(max_size=300)))
def test_the_models_config_reader_returns_a_config_or_one_short_line(tmp_path, text):
    path = tmp_path / "models.config"
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass"))
    try:
        config = model_config.read_models_config(str(path))
    except ValueError as err:
        message = str(err)
        assert "\n" not in message and len(message) < 600 and str(path) in message
    else:
        assert config.WhichOneof("config") in (None, "model_config_list")


# --- the flags the server needs ---------------------------------------------------------------------------


def test_serving_command_names_the_flags_a_labelled_polled_folder_needs(serving, capsys):
    """main.cc/server_core.cc (2.15.1 to 2.20.0): without --allow_version_labels_for_unavailable_models a server
    does not start on a models.config with labels; without --model_config_file_poll_wait_seconds it never
    reads an edit."""
    assert main(["serving", "command", str(serving), "--base-path", "/srv/serving", "--poll-seconds", "15"]) == 0
    out = capsys.readouterr().out.split()
    assert out[:2] == ["docker", "run"] and f"{serving}:/srv/serving:ro" in out and "tensorflow/serving:2.16.1" in out
    assert out[-3:] == ["--model_config_file=/srv/serving/models.config", "--model_config_file_poll_wait_seconds=15",
                        "--allow_version_labels_for_unavailable_models=true"]
    assert main(["serving", "command", str(serving)]) == 0
    captured = capsys.readouterr()
    assert captured.out.split()[0] == "tensorflow_model_server"
    assert f"--model_config_file={serving}/models.config" in captured.out.split()
    assert "base_path of cifar10 is not under" in captured.err  # /srv/serving/cifar10 is not this folder
    for seconds in ("0", "1e300", "9" * 5000):
        with pytest.raises(SystemExit):
            main(["serving", "command", str(serving), "--poll-seconds", seconds])
        assert "must be a whole number of seconds from 1 to 86400" in capsys.readouterr().err


def test_serving_config_says_which_flags_serve_the_file(serving, capsys):
    assert main(["serving", "config", str(serving), "--base-path", "/models"]) == 0
    err = capsys.readouterr().err
    assert "--allow_version_labels_for_unavailable_models=true" in err and "--model_config_file_poll_wait_seconds" in err


@settings(max_examples=300, deadline=500)
@given(text=st.text(max_size=30) | st.from_regex(r"0{0,3000}[0-9]{1,25}", fullmatch=True))
def test_a_version_is_an_int64_from_ascii_digits_or_one_short_refusal(text):
    """What safe_strto64 accepts of the names the Pusher writes: ASCII digits, 1 to 2**63 - 1."""
    try:
        version = model_config.version_number(text)
    except ValueError as err:
        assert "\n" not in str(err) and len(str(err)) < 200
        assert not (text.isascii() and text.isdigit() and 1 <= int(text.lstrip("0") or "0") < 2 ** 63)
    else:
        assert str(version) == text.lstrip("0") and 1 <= version < 2 ** 63
    assert model_config.is_version_name(text) == (text.isascii() and text.isdigit()
                                                  and 1 <= int(text.lstrip("0") or "0") < 2 ** 63)
