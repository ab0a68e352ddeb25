"""`cifar-tfx serving config|label|rollback|policy`: results parsed with TF Serving's own ModelServerConfig proto."""

import os

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
    assert main(["serving", "label", str(serving), "--model", "cifar10", "newest=4"]) == 0  # `latest` loads 4
    assert main(["serving", "policy", str(serving), "--model", "cifar10", "specific", "3", "4"]) == 0
    assert "cifar10: policy specific 3 4, serving version(s) 3, 4" in capsys.readouterr().out
    assert main(["serving", "label", str(serving), "--model", "cifar10", "stable=3", "canary=4", "newest="]) == 0
    entries = _entries(serving)
    assert dict(entries["cifar10"].version_labels) == {"stable": 3, "canary": 4}
    assert dict(entries["other"].version_labels) == {"stable": 7}
    assert "cifar10: labels canary=4, stable=3" in capsys.readouterr().out


def test_a_label_on_a_version_the_policy_does_not_load_is_refused(serving, capsys):
    """server_core.cc (UpdateModelVersionLabelMap) fails the whole config for a label on a version that is
    not available: the server does not start, or a reload keeps the old config and every later edit fails.
    Under the default policy (latest: version 4 here) `stable=3` is that case."""
    before = (serving / "models.config").read_text()
    assert main(["serving", "label", str(serving), "--model", "cifar10", "stable=3", "canary=4"]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "policy latest loads version(s) 4, not 3" in err and "server_core.cc" in err
    assert "serving policy SERVING_DIR --model cifar10 specific 3 4" in err
    assert (serving / "models.config").read_text() == before


@pytest.mark.parametrize("args, message", [
    (["stable=9"], "has no version 9 on disk"),
    (["stable"], "must be NAME=VERSION"),
    (["9lives=2"], "must be NAME=VERSION"),
    (["gone="], "has no label gone"),
])
def test_label_refuses_what_tf_serving_would(serving, capsys, args, message):
    before = (serving / "models.config").read_text()
    assert main(["serving", "label", str(serving), "--model", "cifar10", *args]) == EXIT_BAD_INPUT
    assert message in capsys.readouterr().err
    assert (serving / "models.config").read_text() == before


def test_rollback_serves_the_previous_version_and_drops_labels_elsewhere(serving, capsys):
    assert main(["serving", "policy", str(serving), "--model", "cifar10", "specific", "3", "4"]) == 0
    assert main(["serving", "label", str(serving), "--model", "cifar10", "stable=3", "canary=4"]) == 0
    assert main(["serving", "rollback", str(serving), "--model", "cifar10"]) == 0
    entry = _entries(serving)["cifar10"]
    assert list(entry.model_version_policy.specific.versions) == [3]
    assert dict(entry.version_labels) == {"stable": 3}
    assert "serving version 3 only (`serving policy … latest` undoes it); removed labels on other versions: " \
           "canary" in capsys.readouterr().out
    assert main(["serving", "rollback", str(serving), "--model", "cifar10"]) == 0  # again: one further back
    assert list(_entries(serving)["cifar10"].model_version_policy.specific.versions) == [2]
    assert main(["serving", "rollback", str(serving), "--model", "cifar10", "--to", "4"]) == 0
    assert list(_entries(serving)["cifar10"].model_version_policy.specific.versions) == [4]


def test_policy_returns_to_latest_unless_a_label_would_be_stranded(serving, capsys):
    assert main(["serving", "rollback", str(serving), "--model", "cifar10", "--to", "2"]) == 0
    assert main(["serving", "label", str(serving), "--model", "cifar10", "stable=2"]) == 0
    assert main(["serving", "policy", str(serving), "--model", "cifar10", "latest"]) == EXIT_BAD_INPUT
    assert "would not load the version of label(s) stable=2" in capsys.readouterr().err
    assert main(["serving", "label", str(serving), "--model", "cifar10", "stable="]) == 0
    assert main(["serving", "policy", str(serving), "--model", "cifar10", "latest"]) == 0
    assert _entries(serving)["cifar10"].model_version_policy.WhichOneof("policy_choice") == "latest"
    assert "serving version(s) 4" in capsys.readouterr().out
    assert main(["serving", "policy", str(serving), "--model", "cifar10", "all"]) == 0
    assert main(["serving", "policy", str(serving), "--model", "cifar10", "specific", "7"]) == EXIT_BAD_INPUT
    assert main(["serving", "policy", str(serving), "--model", "cifar10", "latest", "3"]) == EXIT_BAD_INPUT


def test_a_push_while_pinned_says_what_tf_serving_serves_and_keeps_labels_loadable(serving, tmp_path):
    from cifar_tfx.components.serving_pusher import publish_version

    model = tmp_path / "model"
    (model / "variables").mkdir(parents=True)
    (model / "saved_model.pb").write_bytes(b"")
    assert main(["serving", "label", str(serving), "--model", "cifar10", "stable=4"]) == 0
    published = publish_version(str(model), str(serving), "cifar10")  # latest moves from 4 to 5
    assert published.version == 5 and "label(s) stable=4 removed: policy latest no longer loads them" in published.note
    assert dict(_entries(serving)["cifar10"].version_labels) == {}
    assert main(["serving", "rollback", str(serving), "--model", "cifar10", "--to", "3"]) == 0
    published = publish_version(str(model), str(serving), "cifar10")
    assert published.version == 6
    assert "TF Serving keeps serving version(s) 3 (policy specific 3)" in published.note
    assert "serving policy SERVING_DIR --model cifar10 latest` serves version 6" in published.note


def test_a_read_only_or_wrong_folder_is_one_line(serving, capsys, monkeypatch):
    import errno

    from cifar_tfx import storage

    def read_only(path, text):  # what a read-only mount answers (root included)
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), path)

    monkeypatch.setattr(storage, "write_text_atomically", read_only)
    assert main(["serving", "rollback", str(serving), "--model", "cifar10"]) == EXIT_BAD_INPUT
    assert main(["serving", "config", str(serving), "--base-path", "/models", "--out", "/x"]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "error: cannot change" in err and "error: cannot write /x: Read-only file system" in err
    assert err.count("Read-only file system") == 2 and err.count("\n") == 2
    assert main(["serving", "label", str(serving / "models.config"), "stable=4"]) == EXIT_BAD_INPUT
    assert "models.config is a file: give the serving folder" in capsys.readouterr().err


def test_unknown_model_or_missing_config(serving, tmp_path, capsys):
    assert main(["serving", "rollback", str(serving), "--model", "nope"]) == EXIT_BAD_INPUT
    assert "has no model 'nope' (it has: cifar10, other)" in capsys.readouterr().err
    assert main(["serving", "config", str(tmp_path / "empty"), "--base-path", "/m"]) == EXIT_BAD_INPUT


def test_the_served_version_follows_the_policy_as_tf_serving_does(serving):
    """file_system_storage_path_source.proto: `latest` (default) and `all` serve the newest version on
    disk, `specific` the listed ones; a folder without saved_model.pb is not a loadable version."""
    from cifar_tfx.serving.model_config import served_version

    for version in (1, 2, 3):
        (serving / "cifar10" / str(version) / "saved_model.pb").write_bytes(b"")
    assert served_version(str(serving), "cifar10") == (3, str(serving / "cifar10" / "3"))  # 4 is incomplete
    assert main(["serving", "rollback", str(serving), "--model", "cifar10", "--to", "2"]) == 0
    assert served_version(str(serving), "cifar10")[0] == 2, "pinned by the rollback"
    assert served_version(str(serving), "unlisted") is None
    assert served_version(str(serving / "empty"), "cifar10") is None


def test_the_pusher_writes_the_path_the_server_sees_and_a_container_would_find_the_version(tmp_path, capsys):
    """server_core.cc reads base_path as the server sees it and refuses a relative one. The README's
    container mounts the serving folder at /models: every base_path must resolve there to a version
    holding saved_model.pb."""
    from cifar_tfx.components.serving_pusher import publish_version

    model, serving = tmp_path / "model", tmp_path / "serving"
    (model / "variables").mkdir(parents=True)
    (model / "saved_model.pb").write_bytes(b"")
    publish_version(str(model), str(serving), "cifar10", server_base_path="/models/")
    (entry,) = _entries(serving).values()
    assert entry.base_path == "/models/cifar10"
    seen_by_container = serving / os.path.relpath(entry.base_path, "/models")  # -v "$PWD/serving:/models"
    assert (seen_by_container / "1" / "saved_model.pb").exists()
    with pytest.raises(ValueError, match="must be absolute"):
        publish_version(str(model), str(serving), "cifar10", server_base_path="models")
    assert main(["serving", "config", str(serving), "--base-path", "relative/models"]) == EXIT_BAD_INPUT
    assert "TF Serving refuses a relative base_path" in capsys.readouterr().err
    # label and rollback find the versions under the serving folder, whatever base_path says
    assert main(["serving", "label", str(serving), "--model", "cifar10", "stable=1"]) == 0
    assert main(["serving", "label", str(serving), "--model", "nope", "stable=1"]) == EXIT_BAD_INPUT
    assert "has no model 'nope' (it has: cifar10)" in capsys.readouterr().err
