"""A pipeline run as ML Metadata recorded it: its components, their wall time and output artifacts.

The one reader of ML Metadata in the project. TFX registers every node execution of a
run in the run's ``pipeline_run`` context and in the node's ``node`` context, with OUTPUT
events naming each output key; a cached node has an execution too (state ``CACHED``)
whose outputs are the earlier artifacts. Components and outputs are read from those
contexts and events, never inferred from artifact URIs.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Dict, List, Optional, Sequence

METADATA_FILE = "metadata.sqlite"  # in the pipeline root of a local run


class RunNotFoundError(LookupError):
    """No such run in the pipeline root's ML Metadata (the message lists the known ones)."""


class DamagedStoreError(ValueError):
    """The pipeline root's ``metadata.sqlite`` is no SQLite database SQLite can read; the message names it."""


def check_store_file(pipeline_root: str) -> None:
    """Refuse, in one line naming the file, a ``metadata.sqlite`` that SQLite cannot read, before ML Metadata
    opens it (whose own error quotes its SQL) and before a run or a report does anything. A missing store is
    fine (a first run creates it); a pipe or a folder in its place, random bytes, or a database that fails
    SQLite's ``quick_check`` are refused, with what to do."""
    import sqlite3
    import stat
    import urllib.parse

    path = os.path.join(pipeline_root, METADATA_FILE)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as err:
        raise DamagedStoreError(f"{path} cannot be read: {err.strerror}") from None
    advice = "move it aside to start a new store (its runs are then forgotten), or give another --pipeline-root"
    if not stat.S_ISREG(mode):
        raise DamagedStoreError(f"{path} is not a file (a folder, pipe or device); {advice}")
    try:
        connection = sqlite3.connect(f"file:{urllib.parse.quote(os.path.abspath(path))}?mode=ro", uri=True)
        try:
            verdict = connection.execute("PRAGMA quick_check").fetchone()
        finally:
            connection.close()
    except sqlite3.Error as err:
        raise DamagedStoreError(f"{path} is no ML Metadata store SQLite can read ({err}); {advice}") from None
    if verdict is None or verdict[0] != "ok":
        found = str(verdict[0] if verdict else "no answer").splitlines()[0][:200]
        raise DamagedStoreError(f"{path} is damaged (SQLite's quick_check: {found}); {advice}")


@dataclasses.dataclass(frozen=True)
class ProducedArtifact:
    component: str                  # the node id (pipeline/component_ids.py)
    output: str                     # the output key, e.g. "examples", "pushed_model"
    type_name: str
    uri: str
    properties: Dict[str, object] = dataclasses.field(default_factory=dict)  # MLMD custom properties
    cached: bool = False            # the node was taken from the cache: an earlier run made this artifact


@dataclasses.dataclass(frozen=True)
class ComponentRecord:
    node: str
    state: str                      # COMPLETE, CACHED, FAILED, RUNNING, ...
    started: float                  # seconds since the epoch
    seconds: float                  # wall time as ML Metadata saw it
    outputs: Dict[str, List[ProducedArtifact]]

    def output(self, key: str) -> Optional[ProducedArtifact]:
        found = self.outputs.get(key) or []
        return found[0] if found else None


@dataclasses.dataclass(frozen=True)
class RunRecord:
    pipeline_name: str
    run_id: str
    components: List[ComponentRecord]   # in start order

    def component(self, node: str) -> Optional[ComponentRecord]:
        return next((c for c in self.components if c.node == node), None)

    def artifact(self, node: str, key: str) -> Optional[ProducedArtifact]:
        component = self.component(node)
        return component.output(key) if component else None

def _properties(artifact) -> Dict[str, object]:
    values = {}
    for key, value in artifact.custom_properties.items():
        kind = value.WhichOneof("value")
        if kind in ("int_value", "double_value", "string_value"):
            values[key] = getattr(value, kind)
    return values


def open_store(connection_config):
    """An ML Metadata store for a connection config (the runner's, or :func:`_read_only` of a root)."""
    from ml_metadata.metadata_store import metadata_store

    return metadata_store.MetadataStore(connection_config)


def _read_only(pipeline_root: str):
    from ml_metadata.proto import metadata_store_pb2

    path = os.path.join(pipeline_root, METADATA_FILE)
    if not os.path.isfile(path):
        raise RunNotFoundError(f"{pipeline_root} holds no {METADATA_FILE}: is it a --pipeline-root of a run?")
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = path
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    return open_store(config)


def components_of(store, executions: Sequence) -> List[ComponentRecord]:
    """One :class:`ComponentRecord` per execution (in the given order), outputs from its OUTPUT events."""
    from ml_metadata.proto import metadata_store_pb2

    if not executions:
        return []
    context_types = {t.id: t.name for t in store.get_context_types()}
    events = store.get_events_by_execution_ids([e.id for e in executions])
    artifact_ids = sorted({event.artifact_id for event in events})
    artifacts = {a.id: a for a in store.get_artifacts_by_id(artifact_ids)} if artifact_ids else {}
    types = {t.id: t.name for t in store.get_artifact_types()}
    components = []
    for execution in executions:
        contexts = {context_types.get(c.type_id): c.name for c in store.get_contexts_by_execution(execution.id)}
        node = contexts.get("node", "?").split(".", 1)[-1]
        state = metadata_store_pb2.Execution.State.Name(execution.last_known_state)
        outputs: Dict[str, List[ProducedArtifact]] = {}
        for event in events:
            if event.execution_id != execution.id or event.type != metadata_store_pb2.Event.OUTPUT:
                continue
            artifact = artifacts[event.artifact_id]
            key = next((step.key for step in event.path.steps if step.HasField("key")), "?")
            outputs.setdefault(key, []).append(ProducedArtifact(
                node, key, types.get(artifact.type_id, "?"), artifact.uri, _properties(artifact),
                cached=state == "CACHED"))
        components.append(ComponentRecord(
            node=node, state=state, started=execution.create_time_since_epoch / 1000.0,
            seconds=max(0.0, (execution.last_update_time_since_epoch - execution.create_time_since_epoch) / 1000.0),
            outputs=outputs))
    return components


def outputs_of(components: Sequence[ComponentRecord]) -> List[ProducedArtifact]:
    """Every output artifact of ``components``, in their order."""
    return [artifact for component in components for found in component.outputs.values() for artifact in found]


def last_execution_id(store) -> int:
    """The highest execution id in ``store`` (0 when empty): mark it before running, read what came after."""
    return max((e.id for e in store.get_executions()), default=0)


def executions_after(store, after_id: int, node: Optional[str] = None) -> List[ComponentRecord]:
    """Components of the executions registered after ``after_id`` (of ``node`` only, if given), oldest first."""
    executions = sorted((e for e in store.get_executions() if e.id > after_id), key=lambda e: e.id)
    return [c for c in components_of(store, executions) if node is None or c.node == node]


def load_run(pipeline_root: str, run: str = "latest") -> RunRecord:
    """The run ``run`` (a ``pipeline_run`` id, or ``latest``) of the pipeline root."""
    store = _read_only(pipeline_root)
    runs = sorted(store.get_contexts_by_type("pipeline_run"), key=lambda c: (c.create_time_since_epoch, c.id))
    if not runs:
        raise RunNotFoundError(f"{pipeline_root} has no runs recorded")
    chosen = runs[-1] if run == "latest" else next((c for c in runs if c.name == run), None)
    if chosen is None:
        shown = run if len(run) <= 80 else run[:80] + "..."
        raise RunNotFoundError(f"no run {shown!r} in {pipeline_root}; known: {', '.join(c.name for c in runs[-5:])}"
                               + (" (the last five)" if len(runs) > 5 else ""))
    executions = sorted(store.get_executions_by_context(chosen.id), key=lambda e: (e.create_time_since_epoch, e.id))
    pipelines = store.get_contexts_by_type("pipeline")
    name = next((p.name for p in pipelines if executions and any(
        c.id == p.id for c in store.get_contexts_by_execution(executions[0].id))), "?")
    return RunRecord(pipeline_name=name, run_id=chosen.name, components=components_of(store, executions))
