"""`cifar-tfx serving config|label|rollback`: results parsed with TF Serving's own ModelServerConfig proto."""

import pytest

pytest.importorskip("tensorflow_serving")

from google.protobuf import text_format  # noqa: E402
from tensorflow_serving.config import model_server_config_pb2  # noqa: E402

from cifar_tfx.cli import EXIT_BAD_INPUT, main  # noqa: E402

CONFIG = """
model_config_list {
  config { name: "cifar10" base_path: "/home/me/serving/cifar10" model_platform: "tensorflow" }
  config { name: "other" base_path: "/srv/other" model_platform: "tensorflow"
           version_labels { key: "stable" value: 7 } }
}
"""


@pytest.fixture
def serving(tmp_path):
    for version in (1, 2, 3, 4):
        (tmp_path / "cifar10" / str(version)).mkdir(parents=True)
    (tmp_path / "models.config").write_text(CONFIG)
    return tmp_path


def _parse(text):
    return text_format.Parse(text, model_server_config_pb2.ModelServerConfig())


def _entries(serving):
    config = _parse((serving / "models.config").read_text())
    return {entry.name: entry for entry in config.model_config_list.config}


def test_config_rebases_every_model_for_a_container(serving, capsys):
    assert main(["serving", "config", str(serving), "--base-path", "/models"]) == 0
    config = _parse(capsys.readouterr().out)
    assert {e.name: e.base_path for e in config.model_config_list.config} == {
        "cifar10": "/models/cifar10", "other": "/models/other"}
    assert dict(config.model_config_list.config[1].version_labels) == {"stable": 7}
    assert _entries(serving)["cifar10"].base_path == "/home/me/serving/cifar10", "the file itself is unchanged"


def test_label_sets_labels_and_keeps_the_rest(serving, capsys):
    assert main(["serving", "label", str(serving), "--model", "cifar10", "stable=3", "canary=4"]) == 0
    entries = _entries(serving)
    assert dict(entries["cifar10"].version_labels) == {"stable": 3, "canary": 4}
    assert dict(entries["other"].version_labels) == {"stable": 7}
    assert "cifar10: labels canary=4, stable=3" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["stable=9"], "has no version 9 on disk"),
    (["stable"], "must be NAME=VERSION"),
    (["9lives=2"], "must be NAME=VERSION"),
])
def test_label_refuses_what_tf_serving_would(serving, capsys, args, message):
    before = (serving / "models.config").read_text()
    assert main(["serving", "label", str(serving), "--model", "cifar10", *args]) == EXIT_BAD_INPUT
    assert message in capsys.readouterr().err
    assert (serving / "models.config").read_text() == before


def test_rollback_serves_the_previous_version_and_drops_labels_elsewhere(serving, capsys):
    assert main(["serving", "label", str(serving), "--model", "cifar10", "stable=3", "canary=4"]) == 0
    assert main(["serving", "rollback", str(serving), "--model", "cifar10"]) == 0
    entry = _entries(serving)["cifar10"]
    assert list(entry.model_version_policy.specific.versions) == [3]
    assert dict(entry.version_labels) == {"stable": 3}
    assert "serving version 3 only; removed labels on other versions: canary" in capsys.readouterr().out
    assert main(["serving", "rollback", str(serving), "--model", "cifar10"]) == 0  # again: one further back
    assert list(_entries(serving)["cifar10"].model_version_policy.specific.versions) == [2]
    assert main(["serving", "rollback", str(serving), "--model", "cifar10", "--to", "4"]) == 0
    assert list(_entries(serving)["cifar10"].model_version_policy.specific.versions) == [4]


def test_unknown_model_or_missing_config(serving, tmp_path, capsys):
    assert main(["serving", "rollback", str(serving), "--model", "nope"]) == EXIT_BAD_INPUT
    assert "has no model 'nope' (it has: cifar10, other)" in capsys.readouterr().err
    assert main(["serving", "config", str(tmp_path / "empty"), "--base-path", "/m"]) == EXIT_BAD_INPUT
