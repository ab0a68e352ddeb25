"""Run the pipeline on this machine with TFX's Beam DAG runner and a SQLite ML Metadata store."""

from __future__ import annotations

import dataclasses
import os
from typing import Dict, List

from cifar_tfx import storage
from cifar_tfx.data.datasets import DatasetSpec
from cifar_tfx.trainer.hparams import HParams

METADATA_FILE = "metadata.sqlite"


@dataclasses.dataclass(frozen=True)
class LocalRun:
    """Paths of one local run."""

    pipeline_name: str
    pipeline_root: str
    data_path: str
    dataset: DatasetSpec
    hparams: HParams
    serving_dir: str
    model_name: str = "cifar10"
    enable_cache: bool = True

    @property
    def metadata_path(self) -> str:
        return os.path.join(self.pipeline_root, METADATA_FILE)


@dataclasses.dataclass(frozen=True)
class ProducedArtifact:
    component: str
    output: str
    type_name: str
    uri: str
    properties: Dict[str, object] = dataclasses.field(default_factory=dict)  # MLMD custom properties


def run_local(run: LocalRun) -> List[ProducedArtifact]:
    """Build and run the pipeline; return the artifacts this run produced.

    Raises whatever the failing component raised (for example
    :class:`~cifar_tfx.components.data_validation.DataAnomalyError`).
    """
    from tfx.orchestration import metadata
    from tfx.orchestration.beam.beam_dag_runner import BeamDagRunner

    from cifar_tfx.data.reader import source_fingerprint
    from cifar_tfx.pipeline.pipeline import create_pipeline

    os.makedirs(run.pipeline_root, exist_ok=True)
    connection = metadata.sqlite_metadata_connection_config(run.metadata_path)
    before = _max_artifact_id(connection)
    pipeline = create_pipeline(
        pipeline_name=run.pipeline_name,
        pipeline_root=os.path.abspath(run.pipeline_root),
        data_path=storage.absolute(run.data_path),
        dataset=run.dataset,
        hparams=run.hparams,
        serving_dir=storage.absolute(run.serving_dir),
        model_name=run.model_name,
        data_fingerprint=source_fingerprint(run.data_path),
        enable_cache=run.enable_cache,
        metadata_connection_config=connection,
        beam_pipeline_args=["--direct_num_workers=1"],
    )
    BeamDagRunner().run(pipeline)
    return _artifacts_since(connection, before)


def _store(connection):
    from ml_metadata.metadata_store import metadata_store

    return metadata_store.MetadataStore(connection)


def _max_artifact_id(connection) -> int:
    artifacts = _store(connection).get_artifacts()
    return max((a.id for a in artifacts), default=0)


def _artifacts_since(connection, after_id: int) -> List[ProducedArtifact]:
    store = _store(connection)
    types: Dict[int, str] = {t.id: t.name for t in store.get_artifact_types()}
    produced = []
    for artifact in sorted(store.get_artifacts(), key=lambda a: a.id):
        if artifact.id <= after_id:
            continue
        # TFX lays outputs out as <pipeline_root>/<component>/<output>/<execution id>.
        parts = artifact.uri.rstrip("/").split("/")
        component, output = (parts[-3], parts[-2]) if len(parts) >= 3 else ("?", "?")
        properties = {key: getattr(value, value.WhichOneof("value")) for key, value in artifact.custom_properties.items()
                      if value.WhichOneof("value") in ("int_value", "double_value", "string_value")}
        produced.append(ProducedArtifact(component, output, types.get(artifact.type_id, "?"), artifact.uri, properties))
    return produced
