"""Pusher executor for a TF Serving model directory: whole versions only, ``models.config`` kept current.

TFX's stock filesystem Pusher copies file by file straight into
``<base>/<unix time>/``: TF Serving, which scans the folder at any moment, can
see a half-copied version, and two pushes in one second collide. This executor
numbers versions 1, 2, 3, ... and publishes each so that TF Serving never loads
a partial one:

* on a local or mounted filesystem it copies into a hidden staging folder beside
  the versions and renames it into place (one atomic rename);
* on an object store (``gs://`` ...), which has no rename, it copies straight into
  the version folder with ``saved_model.pb`` last. TF Serving may list the folder
  early, but a SavedModel cannot load without ``saved_model.pb``, and once that
  object exists every variable and asset file is already complete. (A load tried in
  between fails and TF Serving retries it: ``max_num_load_retries``.)

It then edits ``<serving_dir>/models.config`` (TF Serving's ``--model_config_file``)
through TF Serving's own ``ModelServerConfig`` proto: this model's entry is added or its
base path updated, everything else (other models, version policies, labels) is kept.
"""

from __future__ import annotations

import os
import re
import tempfile
from typing import Any, Dict, List, Tuple

from tfx import types
from tfx.components.pusher import executor as tfx_pusher_executor
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import proto_utils

from cifar_tfx import storage

MODELS_CONFIG = "models.config"
SAVED_MODEL_FILE = "saved_model.pb"  # the file whose presence makes a SavedModel loadable
MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


def existing_versions(model_dir: str) -> List[int]:
    """Numeric version folders under ``model_dir`` (what TF Serving would load)."""
    if not storage.isdir(model_dir):
        return []
    return sorted(int(name) for name in storage.listdir(model_dir)
                  if name.isdigit() and storage.isdir(storage.join(model_dir, name)))


def check_model_name(name: str) -> str:
    """``name`` if TF Serving can serve it under that name (and a URL and a folder can hold it)."""
    if not MODEL_NAME.fullmatch(name or ""):
        raise ValueError(f"model name {name!r} is not usable: letters, digits, '_', '.' and '-' only, "
                         "starting with a letter or digit")
    return name


def read_models_config(path: str):
    """The ``ModelServerConfig`` in ``path`` (empty if there is no file); a file TF Serving
    could not parse raises ``ValueError`` naming it."""
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    config = model_server_config_pb2.ModelServerConfig()
    if storage.exists(path):
        try:
            text_format.Parse(storage.read_bytes(path).decode("utf-8"), config)
        except (text_format.ParseError, UnicodeDecodeError) as err:
            raise ValueError(f"{path} is not a ModelServerConfig TF Serving can read ({err}); "
                             "fix or remove it, nothing was published") from err
    if config.WhichOneof("config") == "custom_model_config":
        raise ValueError(f"{path} holds a custom_model_config; only a model_config_list can be edited")
    return config


def with_model(config, model_name: str, base_path: str):
    """A copy of ``config`` listing ``model_name`` at ``base_path``; every other entry and this
    entry's other settings (version policy, labels, ...) are kept."""
    from tensorflow_serving.config import model_server_config_pb2

    updated = model_server_config_pb2.ModelServerConfig()
    updated.CopyFrom(config)
    entries = updated.model_config_list.config
    entry = next((e for e in entries if e.name == model_name), None) or entries.add(name=model_name)
    entry.base_path = base_path
    entry.model_platform = entry.model_platform or "tensorflow"
    return updated


def publish_version(saved_model_dir: str, serving_dir: str, model_name: str) -> Tuple[int, str]:
    """Copy ``saved_model_dir`` to the next version of ``model_name``; return ``(version, path)``.

    ``<serving_dir>/models.config`` is read first (an unreadable one stops the push before
    anything is written) and rewritten with this model's entry added or updated.
    """
    from google.protobuf import text_format

    check_model_name(model_name)
    config_path = storage.join(serving_dir, MODELS_CONFIG)
    config = read_models_config(config_path)
    model_dir = storage.join(serving_dir, model_name)
    storage.makedirs(model_dir)
    version = (existing_versions(model_dir) or [0])[-1] + 1
    target = storage.join(model_dir, str(version))
    if storage.is_remote(model_dir):
        storage.copy_tree(saved_model_dir, target, last=(SAVED_MODEL_FILE,))
    else:
        _copy_and_rename(saved_model_dir, model_dir, version, target)
    base_path = model_dir if storage.is_remote(model_dir) else os.path.abspath(model_dir)
    storage.write_text_atomically(config_path, text_format.MessageToString(with_model(config, model_name, base_path)))
    return version, target


def _copy_and_rename(saved_model_dir: str, model_dir: str, version: int, target: str) -> None:
    staging = tempfile.mkdtemp(prefix=f".staging-{version}-", dir=model_dir)
    try:
        storage.copy_tree(saved_model_dir, staging)
        os.rename(staging, target)  # atomic: TF Serving sees no version or a whole one
    except BaseException:
        storage.remove_tree(staging)
        raise


class ServingDirPusherExecutor(tfx_pusher_executor.Executor):
    """Pushes a blessed model with :func:`publish_version`; an unblessed one touches nothing."""

    def Do(self, input_dict: Dict[str, List[types.Artifact]], output_dict: Dict[str, List[types.Artifact]],
           exec_properties: Dict[str, Any]) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        model_push = artifact_utils.get_single_instance(output_dict[standard_component_specs.PUSHED_MODEL_KEY])
        if not self.CheckBlessing(input_dict):
            self._MarkNotPushed(model_push)
            return
        destination = pusher_pb2.PushDestination()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.PUSH_DESTINATION_KEY], destination)
        base = destination.filesystem.base_directory  # <serving_dir>/<model_name>
        serving_dir, model_name = base.rstrip("/").rsplit("/", 1)
        model_path = self.GetModelPath(input_dict)
        version, path = publish_version(model_path, serving_dir, model_name)
        storage.copy_tree(model_path, model_push.uri)
        self._MarkPushed(model_push, pushed_destination=path, pushed_version=str(version))
