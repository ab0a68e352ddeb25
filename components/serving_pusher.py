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

import json
import logging
import os
import posixpath
import tempfile
from typing import Any, Dict, List, NamedTuple

from tfx import types
from tfx.components.pusher import executor as tfx_pusher_executor
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import proto_utils

from cifar_tfx import storage
from cifar_tfx.serving.check import run_check
from cifar_tfx.serving.model_config import (
    MODELS_CONFIG, after_push, check_base_path, check_model_name, config_lock, existing_versions, read_models_config, with_model,
    write_models_config)

SAVED_MODEL_FILE = "saved_model.pb"  # the file whose presence makes a SavedModel loadable


class Published(NamedTuple):
    version: int
    path: str
    note: str = ""  # what TF Serving will serve, when not this version, and labels the push removed


def publish_version(saved_model_dir: str, serving_dir: str, model_name: str, server_base_path: str = "") -> Published:
    """Copy ``saved_model_dir`` to the next version of ``model_name``.

    ``models.config`` gets ``<server_base_path>/<model_name>`` as the model's ``base_path`` when given
    (the folder as TF Serving sees it, e.g. ``/models`` in its container), else this folder's own path.

    ``<serving_dir>/models.config`` is read first (an unreadable one stops the push before
    anything is written) and rewritten with this model's entry added or updated, without labels
    on versions its policy stops loading (:func:`model_config.after_push`).
    """
    check_model_name(model_name)
    server_base_path = check_base_path(server_base_path) if server_base_path else ""
    config_path = storage.join(serving_dir, MODELS_CONFIG)
    model_dir = storage.join(serving_dir, model_name)
    storage.makedirs(serving_dir)
    with config_lock(serving_dir):  # one version number per push, no lost models.config edit
        config = read_models_config(config_path)
        storage.makedirs(model_dir)
        remove_stale_staging(model_dir)
        version = (existing_versions(model_dir) or [0])[-1] + 1
        target = storage.join(model_dir, str(version))
        if storage.is_remote(model_dir):
            storage.copy_tree(saved_model_dir, target, last=(SAVED_MODEL_FILE,))
        else:
            _copy_and_rename(saved_model_dir, model_dir, version, target)
        if server_base_path:
            base_path = posixpath.join(server_base_path, model_name)
        else:
            base_path = model_dir if storage.is_remote(model_dir) else os.path.abspath(model_dir)
        config, note = after_push(with_model(config, model_name, base_path), model_name,
                                  existing_versions(model_dir), version)
        write_models_config(config_path, config)
    return Published(version, target, note)


STAGING_PREFIX = ".staging-"


def remove_stale_staging(model_dir: str) -> List[str]:
    """Remove staging folders a killed push left behind; return their names. Called under the lock, which
    every live push holds while it stages, so any staging folder found is stale."""
    if storage.is_remote(model_dir):
        return []
    stale = sorted(name for name in os.listdir(model_dir) if name.startswith(STAGING_PREFIX))
    for name in stale:
        logging.warning("removing %s, left by a push that did not finish", os.path.join(model_dir, name))
        storage.remove_tree(os.path.join(model_dir, name))
    return stale


def _copy_and_rename(saved_model_dir: str, model_dir: str, version: int, target: str) -> None:
    staging = tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{version}-", dir=model_dir)
    # mkdtemp makes 0700; TF Serving may run as another user (runAsUser, a service account, NFS root_squash).
    os.chmod(staging, 0o777 & ~storage.current_umask())
    try:
        storage.copy_tree(saved_model_dir, staging)
        os.rename(staging, target)  # atomic: TF Serving sees no version or a whole one
    except BaseException:
        storage.remove_tree(staging)
        raise


CLASS_NAMES_KEY = "class_names"          # custom_config: the dataset's class names
MAX_LATENCY_KEY = "max_latency_ms"        # custom_config: the serving check's latency bound
SERVER_BASE_PATH_KEY = "server_base_path"  # custom_config: the serving folder as TF Serving sees it
SERVING_CHECK_PROPERTY = "serving_check"  # on the PushedModel: "passed" or why the check refused
SERVING_NOTE_PROPERTY = "serving_note"    # on the PushedModel: Published.note, when there is one


class ServingDirPusherExecutor(tfx_pusher_executor.Executor):
    """Pushes a blessed model with :func:`publish_version` if it passes the serving check
    (:mod:`cifar_tfx.serving.check`, when ``custom_config`` names the class names); an
    unblessed or refused model touches nothing."""

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
        config = json.loads(exec_properties.get(standard_component_specs.CUSTOM_CONFIG_KEY) or "{}")
        if CLASS_NAMES_KEY in config:  # the serving check: load, replay warm-up requests, time them
            verdict = run_check(model_path, config[CLASS_NAMES_KEY], float(config[MAX_LATENCY_KEY]))
            model_push.set_string_custom_property(SERVING_CHECK_PROPERTY, verdict["reason"] or "passed")
            if not verdict["ok"]:
                logging.warning("serving check failed, nothing published: %s", verdict["reason"])
                self._MarkNotPushed(model_push)
                return
        published = publish_version(model_path, serving_dir, model_name, config.get(SERVER_BASE_PATH_KEY, ""))
        storage.copy_tree(model_path, model_push.uri)
        if published.note:
            logging.warning("pushed version %d: %s", published.version, published.note)
            model_push.set_string_custom_property(SERVING_NOTE_PROPERTY, published.note)
        self._MarkPushed(model_push, pushed_destination=published.path, pushed_version=str(published.version))
