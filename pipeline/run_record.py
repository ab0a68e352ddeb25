"""One pipeline run as ML Metadata recorded it: its components, their wall time and output artifacts.

TFX registers every node execution of a run in the run's ``pipeline_run`` context and
in the node's ``node`` context, with OUTPUT events naming each output key. A cached
node has an execution too (state ``CACHED``) whose outputs are the earlier artifacts.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Dict, List, Optional

from cifar_tfx.pipeline.local_runner import METADATA_FILE, ProducedArtifact


class RunNotFoundError(LookupError):
    """No such run in the pipeline root's ML Metadata (the message lists the known ones)."""


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


def list_runs(pipeline_root: str) -> List[str]:
    """Run ids in the pipeline root's ML Metadata, oldest first."""
    store = _open(pipeline_root)
    contexts = sorted(store.get_contexts_by_type("pipeline_run"), key=lambda c: (c.create_time_since_epoch, c.id))
    return [context.name for context in contexts]


def _open(pipeline_root: str):
    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    path = os.path.join(pipeline_root, METADATA_FILE)
    if not os.path.isfile(path):
        raise RunNotFoundError(f"{pipeline_root} holds no {METADATA_FILE}: is it a --pipeline-root of a run?")
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = path
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    return metadata_store.MetadataStore(config)


def load_run(pipeline_root: str, run: str = "latest") -> RunRecord:
    """The run ``run`` (an id from :func:`list_runs`, or ``latest``) of the pipeline root."""
    from ml_metadata.proto import metadata_store_pb2

    store = _open(pipeline_root)
    runs = sorted(store.get_contexts_by_type("pipeline_run"), key=lambda c: (c.create_time_since_epoch, c.id))
    if not runs:
        raise RunNotFoundError(f"{pipeline_root} has no runs recorded")
    chosen = runs[-1] if run == "latest" else next((c for c in runs if c.name == run), None)
    if chosen is None:
        raise RunNotFoundError(f"no run {run!r} in {pipeline_root}; known: {', '.join(c.name for c in runs[-5:])}"
                               + (" (the last five)" if len(runs) > 5 else ""))
    context_types = {t.id: t.name for t in store.get_context_types()}
    executions = sorted(store.get_executions_by_context(chosen.id), key=lambda e: (e.create_time_since_epoch, e.id))
    events = store.get_events_by_execution_ids([e.id for e in executions])
    artifact_ids = sorted({event.artifact_id for event in events})
    artifacts = {a.id: a for a in store.get_artifacts_by_id(artifact_ids)} if artifact_ids else {}
    types = {t.id: t.name for t in store.get_artifact_types()}
    components, pipeline_name = [], "?"
    for execution in executions:
        contexts = {context_types.get(c.type_id): c.name for c in store.get_contexts_by_execution(execution.id)}
        pipeline_name = contexts.get("pipeline", pipeline_name)
        node = contexts.get("node", "?").split(".", 1)[-1]
        outputs: Dict[str, List[ProducedArtifact]] = {}
        for event in events:
            if event.execution_id != execution.id or event.type != metadata_store_pb2.Event.OUTPUT:
                continue
            artifact = artifacts[event.artifact_id]
            key = next((step.key for step in event.path.steps if step.HasField("key")), "?")
            outputs.setdefault(key, []).append(ProducedArtifact(node, key, types.get(artifact.type_id, "?"),
                                                                artifact.uri, _properties(artifact)))
        state = metadata_store_pb2.Execution.State.Name(execution.last_known_state)
        components.append(ComponentRecord(
            node=node, state=state, started=execution.create_time_since_epoch / 1000.0,
            seconds=max(0.0, (execution.last_update_time_since_epoch - execution.create_time_since_epoch) / 1000.0),
            outputs=outputs))
    return RunRecord(pipeline_name=pipeline_name, run_id=chosen.name, components=components)
