"""TFX's BeamDagRunner with a console line when each node starts and one when it ends.

The runner's hook ``_PIPELINE_NODE_DO_FN_CLS`` names the DoFn that runs each node;
:class:`AnnouncingNode` wraps TFX's ``_run_node`` and changes nothing else. The end
line says what the node produced (:mod:`cifar_tfx.reporting.component_lines`) and
how long it took.
"""

from __future__ import annotations

import time

from tfx.orchestration.beam.beam_dag_runner import BeamDagRunner, PipelineNodeAsDoFn

from cifar_tfx import console
from cifar_tfx.cli_common import Terminated, interruption_in
from cifar_tfx.reporting.component_lines import describe
from cifar_tfx.reporting.run_record import executions_after, last_execution_id, open_store, outputs_of
from cifar_tfx.progress import format_duration


class AnnouncingNode(PipelineNodeAsDoFn):
    """Runs one pipeline node as TFX does, between a start line and an end line."""

    def _run_node(self) -> None:
        before = last_execution_id(open_store(self._mlmd_connection_config))
        console.say(f"{self._node_id}: started")
        console.set_stage(self._node_id)
        started = time.monotonic()
        try:
            super()._run_node()
        except (KeyboardInterrupt, Terminated):
            raise  # the command line says where the run stopped
        except BaseException as err:
            if interruption_in(err) is None:
                console.say(f"{self._node_id}: failed after {format_duration(time.monotonic() - started)}")
            raise
        produced = outputs_of(executions_after(open_store(self._mlmd_connection_config), before, node=self._node_id))
        console.say(f"{self._node_id}: {describe(produced)}  [{format_duration(time.monotonic() - started)}]")


class AnnouncingBeamDagRunner(BeamDagRunner):
    """BeamDagRunner running every node through :class:`AnnouncingNode`."""

    _PIPELINE_NODE_DO_FN_CLS = AnnouncingNode
