"""``models.config``, TF Serving's ``ModelServerConfig``, edited through its own proto.

Every change (a push, a rebased copy for a container, version labels, a rollback)
parses the existing file with TF Serving's proto, changes one thing, and writes it
back whole, so entries and settings this project does not manage are kept. No
TensorFlow or TFX import: these run from the command line in a blink.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import re
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from cifar_tfx import storage
from cifar_tfx.bounded_input import read_regular_file

MODELS_CONFIG = "models.config"
MAX_CONFIG_BYTES = 1 << 20  # a models.config entry takes ~150 bytes: thousands of models fit
MAX_VERSION = (1 << 63) - 1  # versions are int64 (file_system_storage_path_source.cc reads folder names
#                              with safe_strto64; a name that is not one is no version)
MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
LABEL = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")


LOCK_FILE = ".models.config.lock"  # beside models.config; TF Serving reads neither dot-files nor this folder


class ConfigBusy(ValueError):
    """Another push or edit held the serving folder's lock for longer than the wait allowed."""


@contextlib.contextmanager
def config_lock(serving_dir: str, wait_seconds: float = 600.0, poll_seconds: float = 0.2) -> Iterator[None]:
    """Serialise every read-change-write of ``serving_dir``'s ``models.config`` and the choice of a new
    version number: a push and a label edit, or two pushes, cannot lose each other's change.

    An exclusive ``flock`` on ``LOCK_FILE`` (held by the open file, so a killed process releases it; NFS
    v4 honours it). Object stores have no lock: there the caller's writes are not serialised.
    """
    if storage.is_remote(serving_dir):
        yield
        return
    import fcntl
    import time

    with open(os.path.join(serving_dir, LOCK_FILE), "a") as handle:
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise ConfigBusy(f"{serving_dir} is locked by another push or edit for over "
                                     f"{wait_seconds:g} s ({LOCK_FILE}); nothing was changed") from None
                time.sleep(poll_seconds)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def existing_versions(model_dir: str) -> List[int]:
    """Numeric version folders under ``model_dir`` (what TF Serving would load), sorted."""
    if not storage.isdir(model_dir):
        return []
    return sorted(version_number(name) for name in storage.listdir(model_dir)
                  if is_version_name(name) and storage.isdir(storage.join(model_dir, name)))


def is_version_name(name: str) -> bool:
    """True if ``name`` is a version number (ASCII digits, 1 to ``MAX_VERSION``); ``²`` or a 5,000-digit
    name is not one, and is ignored as TF Serving ignores a folder whose name is no int64."""
    digits = name.lstrip("0")
    return name.isascii() and name.isdigit() and len(digits) <= 19 and 1 <= int(digits or "0") <= MAX_VERSION


def shown(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters for a message, saying how long it was."""
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text):,} characters)"


def version_number(text: str) -> int:
    """``text`` as a version number, or ``ValueError`` quoting at most 24 characters of it."""
    if not is_version_name(text):
        raise ValueError(f"{shown(text, 24)!r} is not a version number (1 to {MAX_VERSION}, ASCII digits)")
    return int(text.lstrip("0"))


def served_version(serving_dir: str, model_name: str) -> Optional[Tuple[int, str]]:
    """``(version, folder)`` of the version TF Serving serves for ``model_name`` from ``serving_dir``
    (the newest one its ``models.config`` policy loads), or ``None`` when it serves none yet.

    TF Serving's policies (file_system_storage_path_source.proto): ``latest`` (the default, one
    version) and ``all`` serve the newest version on disk; ``specific`` serves the versions listed.
    """
    config = read_models_config(storage.join(serving_dir, MODELS_CONFIG))
    entry = next((e for e in config.model_config_list.config if e.name == model_name), None)
    if entry is None:
        return None
    model_dir = storage.join(serving_dir, model_name)
    loadable = [v for v in existing_versions(model_dir)
                if storage.exists(storage.join(model_dir, str(v), "saved_model.pb"))]
    loaded = loaded_versions(entry, loadable)
    return (loaded[-1], storage.join(model_dir, str(loaded[-1]))) if loaded else None


def versions_of(config, serving_dir: str, model_name: str) -> List[int]:
    """The versions on disk of ``model_name`` (which ``config`` must list): under ``serving_dir/<name>``,
    where the Pusher writes, else under the entry's ``base_path`` when that is readable here."""
    entry = entry_of(config, model_name)
    for folder in (storage.join(serving_dir, model_name), entry.base_path):
        if folder and storage.isdir(folder):
            return existing_versions(folder)
    raise ValueError(f"no folder of {model_name} here: neither {storage.join(serving_dir, model_name)} nor its "
                     f"base_path {shown(entry.base_path, 200)} exists")


def check_base_path(base_path: str) -> str:
    """``base_path`` if TF Serving can take it: absolute, or a URI (server_core.cc refuses a relative one)."""
    if not (base_path.startswith("/") or storage.is_remote(base_path)):
        raise ValueError(f"base path {base_path!r} must be absolute (as the server sees it, e.g. /models) or a "
                         "URI: TF Serving refuses a relative base_path")
    return base_path.rstrip("/") or "/"


def check_model_name(name: str) -> str:
    """``name`` if TF Serving can serve it under that name (and a URL and a folder can hold it)."""
    if not MODEL_NAME.fullmatch(name or ""):
        raise ValueError(f"model name {name!r} is not usable: letters, digits, '_', '.' and '-' only, "
                         "starting with a letter or digit")
    return name


def read_models_config(path: str):
    """The ``ModelServerConfig`` in ``path`` (empty if there is no file). A file that is not a regular file,
    is over ``MAX_CONFIG_BYTES`` or that TF Serving could not parse raises ``ValueError`` in one short line
    naming it."""
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    config = model_server_config_pb2.ModelServerConfig()
    data = _config_bytes(path)
    if data is not None:
        try:
            text_format.Parse(data.decode("utf-8"), config)
        except (text_format.ParseError, UnicodeDecodeError, RecursionError) as err:
            raise ValueError(f"{path} is not a ModelServerConfig TF Serving can read ({_short(err)}); "
                             "fix or remove it, nothing was changed") from None
    if config.WhichOneof("config") == "custom_model_config":
        raise ValueError(f"{path} holds a custom_model_config; only a model_config_list can be edited")
    return config


def _config_bytes(path: str) -> Optional[bytes]:
    """The bytes of ``path`` (``None`` if there is none), read through one bounded reader."""
    if storage.is_remote(path):
        if not storage.exists(path):
            return None
        with storage.open_binary(path) as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1)
        if len(data) > MAX_CONFIG_BYTES:
            raise ValueError(f"{path} holds more than the {MAX_CONFIG_BYTES:,} bytes a models.config may have")
        return data
    local = path[len("file://"):] if path.startswith("file://") else path
    if not os.path.lexists(local):
        return None
    return read_regular_file(local, max_bytes=MAX_CONFIG_BYTES, what="model config")


def _short(err: BaseException) -> str:
    text = (str(err).splitlines() or [type(err).__name__])[0]
    return text if len(text) <= 160 else text[:160] + "…"


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
    names = [shown(e.name, 24) for e in config.model_config_list.config]
    known = ", ".join(names[:6]) + (f" and {len(names) - 6:,} more" if len(names) > 6 else "") or "none"
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
    check_base_path(base_path)
    updated = _copy(config)
    for entry in updated.model_config_list.config:
        entry.base_path = posixpath.join(base_path, entry.name)
    return updated


def parse_labels(pairs: Sequence[str]) -> Dict[str, int]:
    """``["stable=3", ...]`` as ``{"stable": 3}``; names as TF Serving's REST paths allow."""
    labels = {}
    for pair in pairs:
        name, sep, version = pair.partition("=")
        if not sep or not LABEL.fullmatch(name) or not is_version_name(version):
            raise ValueError(f"label {shown(pair, 40)!r} must be NAME=VERSION (a name of letters, digits, '_' or '-', "
                             f"a version number from 1 to {MAX_VERSION} in ASCII digits)")
        labels[name] = version_number(version)
    return labels


# TF Serving refuses a label on a version it has not loaded (server_core.cc, UpdateModelVersionLabelMap:
# "Request to assign label to version N of model M, which is not currently available for inference"); at
# start-up the server does not start, on a reload the whole new config is refused. Every edit below keeps
# labels on versions the model's policy loads.
LABEL_RULE = "TF Serving refuses a label on a version it has not loaded (server_core.cc)"


# The flags a tensorflow_model_server needs for a folder these commands edit (tensorflow/serving
# model_servers/main.cc and server_core.cc, the same from 2.15.1 to 2.20.0):
# * the first ReloadConfig checks labels before any version is loaded (UpdateModelVersionLabelMap), so a
#   server started on a labelled models.config exits ("Failed to start server") unless new labels may name
#   versions not yet available: --allow_version_labels_for_unavailable_models. Labels may be written at any
#   time by `serving label`, so every folder needs it;
# * edits reach a running server only if it polls the file: --model_config_file_poll_wait_seconds (0, the
#   default, reads it once at start).
LABEL_FLAG = "--allow_version_labels_for_unavailable_models=true"
POLL_FLAG = "--model_config_file_poll_wait_seconds"


def server_flags(config_file: str, poll_seconds: int) -> List[str]:
    """The ``tensorflow_model_server`` flags that serve ``config_file`` (the path as the server sees it)
    and follow its edits every ``poll_seconds``."""
    if poll_seconds < 1:
        raise ValueError(f"the server must poll models.config (every 1 s or more, not {poll_seconds}) "
                         "to see policy, label and push edits")
    return [f"--model_config_file={config_file}", f"{POLL_FLAG}={poll_seconds}", LABEL_FLAG]


def loaded_versions(entry, versions_on_disk: Sequence[int]) -> List[int]:
    """The versions on disk that ``entry``'s policy loads (file_system_storage_path_source.proto):
    ``latest`` (the default: the newest ``num_versions``, 1 unless set), ``all``, or ``specific``."""
    on_disk = sorted(versions_on_disk)
    policy = entry.model_version_policy
    choice = policy.WhichOneof("policy_choice")
    if choice == "specific":
        return [v for v in on_disk if v in set(policy.specific.versions)]
    if choice == "all":
        return on_disk
    return on_disk[-_latest_count(policy):]


def _latest_count(policy) -> int:
    """How many versions a ``latest`` policy loads (also the default, when no policy is set): 1 unless set."""
    return policy.latest.num_versions if policy.WhichOneof("policy_choice") == "latest" and \
        policy.latest.num_versions else 1


def describe_policy(entry) -> str:
    """The policy as `serving policy` takes it: ``latest``, ``latest N``, ``all`` or ``specific V…``."""
    policy = entry.model_version_policy
    choice = policy.WhichOneof("policy_choice")
    if choice == "specific":
        return "specific " + " ".join(map(str, policy.specific.versions))
    if choice == "all":
        return "all"
    count = _latest_count(policy)
    return "latest" if count == 1 else f"latest {count}"


def with_labels(config, model_name: str, labels: Dict[str, int], versions_on_disk: Sequence[int],
                remove: Sequence[str] = ()):
    """A copy where ``model_name``'s labels include ``labels`` and lack ``remove``; each labelled
    version must exist on disk and be one the policy loads (``LABEL_RULE``)."""
    missing = sorted({v for v in labels.values() if v not in versions_on_disk})
    if missing:
        raise ValueError(f"{model_name} has no version {', '.join(map(str, missing))} on disk "
                         f"(it has {', '.join(map(str, versions_on_disk)) or 'none'})")
    updated = _copy(config)
    entry = entry_of(updated, model_name)
    loaded = loaded_versions(entry, versions_on_disk)
    unloaded = sorted({v for v in labels.values() if v not in loaded})
    if unloaded:
        wanted = " ".join(map(str, sorted(set(loaded) | set(unloaded))))
        raise ValueError(f"{model_name}: policy {describe_policy(entry)} loads version(s) "
                         f"{', '.join(map(str, loaded)) or 'none'}, not {', '.join(map(str, unloaded))}; "
                         f"{LABEL_RULE}: first `cifar-tfx serving policy SERVING_DIR --model {model_name} "
                         f"specific {wanted}`")
    unknown = sorted(set(remove) - set(entry.version_labels))
    if unknown:
        raise ValueError(f"{model_name} has no label {', '.join(unknown)}")
    for name in remove:
        del entry.version_labels[name]
    for name, version in labels.items():
        entry.version_labels[name] = version
    return updated


def with_policy(config, model_name: str, choice: str, versions: Sequence[int], versions_on_disk: Sequence[int]):
    """A copy whose ``model_name`` policy is ``latest``, ``all`` or ``specific versions``; refused when a
    label would point at a version the new policy does not load, or a specific version is not on disk."""
    updated = _copy(config)
    entry = entry_of(updated, model_name)
    policy = entry.model_version_policy
    policy.Clear()
    if choice == "specific":
        absent = sorted(set(versions) - set(versions_on_disk))
        if not versions or absent:
            raise ValueError(f"specific needs versions on disk ({', '.join(map(str, versions_on_disk)) or 'none'})"
                             + (f"; not there: {', '.join(map(str, absent))}" if absent else ""))
        policy.specific.versions.extend(sorted(set(versions)))
    elif versions:
        raise ValueError(f"{choice} takes no version numbers")
    elif choice == "all":
        policy.all.SetInParent()
    elif choice == "latest":
        policy.latest.SetInParent()
    else:
        raise ValueError(f"policy {choice!r}: latest, all or specific VERSION...")
    loaded = loaded_versions(entry, versions_on_disk)
    stranded = sorted(f"{name}={v}" for name, v in entry.version_labels.items() if v not in loaded)
    if stranded:
        raise ValueError(f"{model_name}: policy {describe_policy(entry)} would not load the version of label(s) "
                         f"{', '.join(stranded)}; {LABEL_RULE}: move or remove them first "
                         "(`cifar-tfx serving label … NAME=` removes one)")
    return updated, loaded


def after_push(config, model_name: str, versions_on_disk: Sequence[int], pushed: int) -> Tuple[object, str]:
    """The config once ``pushed`` is on disk: labels on versions the policy stops loading are removed
    (``LABEL_RULE``: they would make TF Serving refuse the config), and a note says what it will serve
    when that is not the pushed version or labels were removed ("" otherwise)."""
    updated = _copy(config)
    entry = entry_of(updated, model_name)
    loaded = loaded_versions(entry, versions_on_disk)
    notes = []
    stranded = sorted(name for name, version in entry.version_labels.items() if version not in loaded)
    if stranded:
        notes.append(f"label(s) {', '.join(f'{n}={entry.version_labels[n]}' for n in stranded)} removed: "
                     f"policy {describe_policy(entry)} no longer loads them")
        for name in stranded:
            del entry.version_labels[name]
    if pushed not in loaded:
        notes.append(f"TF Serving keeps serving version(s) {', '.join(map(str, loaded)) or 'none'} "
                     f"(policy {describe_policy(entry)}); `cifar-tfx serving policy SERVING_DIR --model "
                     f"{model_name} latest` serves version {pushed}")
    return updated, "; ".join(notes)


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
