"""``models.config``, TF Serving's ``ModelServerConfig``, edited through its own proto.

Every change (a push, a rebased copy for a container, version labels, a rollback)
parses the existing file with TF Serving's proto, changes one thing, and writes it
back whole, so entries and settings this project does not manage are kept. No
TensorFlow or TFX import: these run from the command line in a blink.
"""

from __future__ import annotations

import posixpath
import re
from typing import Dict, List, Optional, Sequence, Tuple

from cifar_tfx import storage

MODELS_CONFIG = "models.config"
MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
LABEL = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")


def existing_versions(model_dir: str) -> List[int]:
    """Numeric version folders under ``model_dir`` (what TF Serving would load), sorted."""
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
                             "fix or remove it, nothing was changed") from err
    if config.WhichOneof("config") == "custom_model_config":
        raise ValueError(f"{path} holds a custom_model_config; only a model_config_list can be edited")
    return config


def write_models_config(path: str, config) -> None:
    """Replace ``path`` with ``config`` in TF Serving's text format, in one write."""
    from google.protobuf import text_format

    storage.write_text_atomically(path, text_format.MessageToString(config))


def _copy(config):
    from tensorflow_serving.config import model_server_config_pb2

    copied = model_server_config_pb2.ModelServerConfig()
    copied.CopyFrom(config)
    return copied


def entry_of(config, model_name: str):
    """The entry of ``model_name``; ``ValueError`` listing the known names if there is none."""
    for entry in config.model_config_list.config:
        if entry.name == model_name:
            return entry
    known = ", ".join(e.name for e in config.model_config_list.config) or "none"
    raise ValueError(f"models.config has no model {model_name!r} (it has: {known})")


def with_model(config, model_name: str, base_path: str):
    """A copy of ``config`` listing ``model_name`` at ``base_path``; every other entry and this
    entry's other settings (version policy, labels, ...) are kept."""
    updated = _copy(config)
    entries = updated.model_config_list.config
    entry = next((e for e in entries if e.name == model_name), None) or entries.add(name=model_name)
    entry.base_path = base_path
    entry.model_platform = entry.model_platform or "tensorflow"
    return updated


def rebased(config, base_path: str):
    """A copy whose every ``base_path`` is ``<base_path>/<model name>`` (a container's mount point)."""
    updated = _copy(config)
    for entry in updated.model_config_list.config:
        entry.base_path = posixpath.join(base_path, entry.name)
    return updated


def parse_labels(pairs: Sequence[str]) -> Dict[str, int]:
    """``["stable=3", ...]`` as ``{"stable": 3}``; names as TF Serving's REST paths allow."""
    labels = {}
    for pair in pairs:
        name, sep, version = pair.partition("=")
        if not sep or not LABEL.fullmatch(name) or not version.isdigit() or int(version) < 1:
            raise ValueError(f"label {pair!r} must be NAME=VERSION (a name of letters, digits, '_' or '-', "
                             "a version number >= 1)")
        labels[name] = int(version)
    return labels


def with_labels(config, model_name: str, labels: Dict[str, int], versions_on_disk: Sequence[int]):
    """A copy where ``model_name``'s labels include ``labels`` (each version must exist on disk)."""
    missing = sorted({v for v in labels.values() if v not in versions_on_disk})
    if missing:
        raise ValueError(f"{model_name} has no version {', '.join(map(str, missing))} on disk "
                         f"(it has {', '.join(map(str, versions_on_disk)) or 'none'})")
    updated = _copy(config)
    entry = entry_of(updated, model_name)
    policy = entry.model_version_policy
    served = set(policy.specific.versions) if policy.WhichOneof("policy_choice") == "specific" else None
    unserved = sorted(v for v in labels.values() if served is not None and v not in served)
    if unserved:
        raise ValueError(f"{model_name} serves only versions {sorted(served)}; a label on version "
                         f"{unserved} would point at a version TF Serving has not loaded")
    for name, version in labels.items():
        entry.version_labels[name] = version
    return updated


def rolled_back(config, model_name: str, versions_on_disk: Sequence[int],
                to: Optional[int] = None) -> Tuple[object, int, List[str]]:
    """A copy serving only version ``to`` (default: the one before the newest served).

    Returns ``(config, version, removed labels)``: labels on other versions are removed,
    since TF Serving refuses labels on versions it does not serve.
    """
    versions = sorted(versions_on_disk)
    updated = _copy(config)
    entry = entry_of(updated, model_name)
    policy = entry.model_version_policy
    if policy.WhichOneof("policy_choice") == "specific" and policy.specific.versions:
        current = max(policy.specific.versions)
    else:
        current = versions[-1] if versions else None
    if to is None:
        older = [v for v in versions if current is not None and v < current]
        if not older:
            raise ValueError(f"{model_name} has no version older than {current} to roll back to")
        to = older[-1]
    if to not in versions:
        raise ValueError(f"{model_name} has no version {to} on disk (it has {', '.join(map(str, versions))})")
    entry.model_version_policy.Clear()
    entry.model_version_policy.specific.versions.append(to)
    removed = sorted(name for name, version in entry.version_labels.items() if version != to)
    for name in removed:
        del entry.version_labels[name]
    return updated, to, removed
