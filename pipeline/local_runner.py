"""Run the pipeline on this machine with TFX's Beam DAG runner and a SQLite ML Metadata store."""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import time
from typing import Iterator, List, Tuple

from cifar_tfx import storage
from cifar_tfx.data.datasets import DEFAULT_DATASET, DatasetSpec
from cifar_tfx.reporting.run_record import (METADATA_FILE, ProducedArtifact, executions_after, last_execution_id,
                                            open_store, outputs_of)
from cifar_tfx.trainer.hparams import HParams

LOCK_FILE = ".run.lock"


class PipelineRootBusyError(RuntimeError):
    """Another run holds the pipeline root; the message says which and what to do."""


@contextlib.contextmanager
def exclusive_root(pipeline_root: str) -> Iterator[None]:
    """Hold ``<pipeline_root>/.run.lock`` for the duration; refuse at once if another run holds it.

    Two runs on one root would share ML Metadata, caches and checkpoints, and the
    Evaluator of each would judge its model without the other's (see issue history):
    one run at a time. The lock is an ``flock``, released by the kernel if the run dies.
    """
    os.makedirs(pipeline_root, exist_ok=True)
    path = os.path.join(pipeline_root, LOCK_FILE)
    handle = open(path, "a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise PipelineRootBusyError(
                f"pipeline root {pipeline_root} is in use by {holder}; wait for that run to end "
                "or give this one another --pipeline-root") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        handle.flush()
        yield
    finally:
        handle.close()


@dataclasses.dataclass(frozen=True)
class LocalRun:
    """Paths of one local run."""

    pipeline_name: str
    pipeline_root: str
    data_path: str
    dataset: DatasetSpec
    hparams: HParams
    serving_dir: str
    model_name: str = DEFAULT_DATASET
    enable_cache: bool = True
    beam_args: Tuple[str, ...] = ()   # extra Beam options for the Beam-based components (--beam-arg)
    workers: int = 1                  # DirectRunner workers: 1 in-process, more in multi-processing mode
    server_base_path: str = ""        # serving_dir as TF Serving sees it ("" = the same path)

    @property
    def beam_pipeline_args(self) -> List[str]:
        """DirectRunner options for ``workers``, then ``beam_args`` (so a given ``--runner`` and its options win)."""
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")
        direct = ["--direct_num_workers=1"] if self.workers == 1 else [
            "--direct_running_mode=multi_processing", f"--direct_num_workers={self.workers}"]
        return direct + list(self.beam_args)

    @property
    def metadata_path(self) -> str:
        return os.path.join(self.pipeline_root, METADATA_FILE)


def run_local(run: LocalRun) -> List[ProducedArtifact]:
    """Build and run the pipeline; return the artifacts this run produced.

    Raises :class:`PipelineRootBusyError` if another run holds the root, else whatever
    the failing component raised (for example
    :class:`~cifar_tfx.components.data_validation.DataAnomalyError`).
    """
    with exclusive_root(run.pipeline_root):
        return run_holding_root(run)


def run_holding_root(run: LocalRun) -> List[ProducedArtifact]:
    """:func:`run_local` for a caller that already holds ``exclusive_root(run.pipeline_root)`` (the command
    line takes it before it opens the run's log, so a refused run writes nothing)."""
    from tfx.orchestration import metadata

    from cifar_tfx.pipeline.announcing_runner import AnnouncingBeamDagRunner

    connection = metadata.sqlite_metadata_connection_config(run.metadata_path)
    before = last_execution_id(open_store(connection))
    AnnouncingBeamDagRunner().run(local_pipeline(run, connection))
    return outputs_of(executions_after(open_store(connection), before))


def local_pipeline(run: LocalRun, connection: object):
    """The pipeline a local ``run`` runs, with ``connection`` as its ML Metadata store (built, not run)."""
    from cifar_tfx.data.reader import source_fingerprint
    from cifar_tfx.pipeline.pipeline import create_pipeline

    return create_pipeline(
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
        beam_pipeline_args=run.beam_pipeline_args,
        server_base_path=run.server_base_path,
    )
