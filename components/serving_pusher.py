"""Pusher executor for a TF Serving model directory: atomic versions, ``models.config`` kept current.

TFX's stock filesystem Pusher copies file by file straight into
``<base>/<unix time>/``: TF Serving, which scans the folder at any moment, can
see a half-copied version, and two pushes in one second collide. This executor
copies into a hidden staging folder beside the versions and renames it into
place (one atomic rename on the same filesystem), numbers versions 1, 2, 3, ...
and rewrites ``<serving_dir>/models.config`` (TF Serving's ``--model_config_file``)
atomically to list every model under ``serving_dir``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any, Dict, List

from tfx import types
from tfx.components.pusher import executor as tfx_pusher_executor
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import proto_utils

MODELS_CONFIG = "models.config"


def existing_versions(model_dir: str) -> List[int]:
    """Numeric version folders under ``model_dir`` (what TF Serving would load)."""
    if not os.path.isdir(model_dir):
        return []
    return sorted(int(name) for name in os.listdir(model_dir)
                  if name.isdigit() and os.path.isdir(os.path.join(model_dir, name)))


def models_config_text(serving_dir: str) -> str:
    """TF Serving ``ModelServerConfig`` text proto listing each model folder under ``serving_dir``."""
    entries = []
    for name in sorted(os.listdir(serving_dir)):
        path = os.path.join(serving_dir, name)
        if os.path.isdir(path) and not name.startswith(".") and existing_versions(path):
            entries.append(
                "  config {\n"
                f'    name: "{name}"\n'
                f'    base_path: "{os.path.abspath(path)}"\n'
                '    model_platform: "tensorflow"\n'
                "  }\n")
    return "model_config_list {\n" + "".join(entries) + "}\n"


def write_atomically(path: str, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    folder = os.path.dirname(os.path.abspath(path))
    handle, temp = tempfile.mkstemp(prefix=".tmp-", dir=folder)
    try:
        with os.fdopen(handle, "w") as out:
            out.write(text)
        os.replace(temp, path)
    except BaseException:
        if os.path.exists(temp):
            os.remove(temp)
        raise


def publish_version(saved_model_dir: str, serving_dir: str, model_name: str) -> tuple:
    """Copy ``saved_model_dir`` to the next version of ``model_name``; return ``(version, path)``."""
    model_dir = os.path.join(serving_dir, model_name)
    os.makedirs(model_dir, exist_ok=True)
    version = (existing_versions(model_dir) or [0])[-1] + 1
    staging = tempfile.mkdtemp(prefix=f".staging-{version}-", dir=model_dir)
    target = os.path.join(model_dir, str(version))
    try:
        shutil.copytree(saved_model_dir, staging, dirs_exist_ok=True)
        os.rename(staging, target)  # atomic: TF Serving sees no version or a whole one
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    write_atomically(os.path.join(serving_dir, MODELS_CONFIG), models_config_text(serving_dir))
    return version, target


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
        serving_dir, model_name = os.path.dirname(base.rstrip("/")), os.path.basename(base.rstrip("/"))
        model_path = self.GetModelPath(input_dict)
        version, path = publish_version(model_path, serving_dir, model_name)
        shutil.copytree(model_path, model_push.uri, dirs_exist_ok=True)
        self._MarkPushed(model_push, pushed_destination=path, pushed_version=str(version))
