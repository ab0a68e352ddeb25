"""TFX's BeamDagRunner with a console line when each node starts and one when it ends.

The runner's hook ``_PIPELINE_NODE_DO_FN_CLS`` names the DoFn that runs each node;
:class:`AnnouncingNode` wraps TFX's ``_run_node`` and changes nothing else. The end
line says what the node produced (:mod:`cifar_tfx.pipeline.component_lines`) and
how long it took.
"""

from __future__ import annotations

import time

from tfx.orchestration.beam.beam_dag_runner import BeamDagRunner, PipelineNodeAsDoFn

from cifar_tfx import console
from cifar_tfx.pipeline.component_lines import describe
from cifar_tfx.pipeline.local_runner import artifacts_since, max_artifact_id
from cifar_tfx.progress import format_duration


class AnnouncingNode(PipelineNodeAsDoFn):
    """Runs one pipeline node as TFX does, between a start line and an end line."""

    def _run_node(self) -> None:
        before = max_artifact_id(self._mlmd_connection_config)
        console.say(f"{self._node_id}: started")
        started = time.monotonic()
        try:
            super()._run_node()
        except BaseException:
            console.say(f"{self._node_id}: failed after {format_duration(time.monotonic() - started)}")
            raise
        produced = [a for a in artifacts_since(self._mlmd_connection_config, before)
                    if a.component == self._node_id]
        console.say(f"{self._node_id}: {describe(produced)}  [{format_duration(time.monotonic() - started)}]")


class AnnouncingBeamDagRunner(BeamDagRunner):
    """BeamDagRunner running every node through :class:`AnnouncingNode`."""

    _PIPELINE_NODE_DO_FN_CLS = AnnouncingNode
