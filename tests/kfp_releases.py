"""The open-source KFP 2 backend releases whose behaviour differs in what the compiled spec meets.

Each line is read from kubeflow/pipelines' backend source at the tags it names; the spec-execution
harness (``kfp_launcher.run_pipeline_spec``) gives each task what that release's driver and launcher
give it. The project supports every line below (README, "Supported releases").

* ``scratch_emptydirs``: the Argo compiler mounts an ``emptyDir`` at ``/minio``, ``/s3`` and ``/gcs``
  (backend/src/v2/compiler/argocompiler/container.go: absent at 2.2.0, present from 2.3.0). Without
  them the launcher creates its folders in the image itself, as the image's user.
* ``executor_logs``: the driver adds an output ``executor-logs`` (``system.Artifact``) to every
  container task when logs are published, which the default manifests turn on (``PUBLISH_LOGS=true`` in
  manifests/kustomize/base/pipeline/ml-pipeline-apiserver-deployment.yaml; ``provisionOutputs`` in
  backend/src/v2/driver/driver.go: absent at 2.4.1, present from 2.5.0 to 2.17.0).
* ``output_file_in_task_root``: the ``ExecutorOutput`` file is ``output_metadata.json`` under the task
  root's local path (driver.go ``provisionOutputs`` from 2.15.0); before, the fixed
  ``/tmp/kfp_outputs/output_metadata.json`` (``OutputMetadataFilepath``, launcher_v2.go).
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class KfpRelease:
    name: str                         # the release tags this line covers
    scratch_emptydirs: bool
    executor_logs: bool
    output_file_in_task_root: bool


KFP_2_0_TO_2_2 = KfpRelease("2.0.0-2.2.0", scratch_emptydirs=False, executor_logs=False,
                            output_file_in_task_root=False)
KFP_2_3_TO_2_4 = KfpRelease("2.3.0-2.4.1", scratch_emptydirs=True, executor_logs=False,
                            output_file_in_task_root=False)
KFP_2_5_TO_2_14 = KfpRelease("2.5.0-2.14.x", scratch_emptydirs=True, executor_logs=True,
                             output_file_in_task_root=False)
KFP_2_15_AND_LATER = KfpRelease("2.15.0-2.17.0", scratch_emptydirs=True, executor_logs=True,
                                output_file_in_task_root=True)
RELEASES = (KFP_2_0_TO_2_2, KFP_2_3_TO_2_4, KFP_2_5_TO_2_14, KFP_2_15_AND_LATER)
NEWEST = RELEASES[-1]

EXECUTOR_LOGS = "executor-logs"
EXECUTOR_LOGS_TYPE = {"schemaTitle": "system.Artifact"}
LEGACY_OUTPUT_FILE = "/tmp/kfp_outputs/output_metadata.json"
