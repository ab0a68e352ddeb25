"""The compiled ``kfp`` spec under each older KFP release line (tests/kfp_releases.py).

Slow (about 2 minutes a line). The newest line runs the whole spec: test_kubeflow_e2e.py.
"""

import pytest

pytestmark = pytest.mark.slow

pytest.importorskip("tensorflow")

from compiled_specs import compile_on_volumes  # noqa: E402
from kfp_launcher import run_pipeline_spec  # noqa: E402
from kfp_releases import EXECUTOR_LOGS, NEWEST, RELEASES  # noqa: E402


@pytest.fixture(scope="module")
def compiled_on_volumes(tmp_path_factory):
    return compile_on_volumes(tmp_path_factory.mktemp("compiled"))


def older_task_shapes():
    """One release line for each shape of what a task sees (its ExecutorInput's outputs, where its
    ExecutorOutput file goes) other than the newest line's; the launcher's emptyDirs differ only inside
    the image (test_image_build)."""
    seen, lines = {(NEWEST.executor_logs, NEWEST.output_file_in_task_root)}, []
    for release in RELEASES:
        shape = (release.executor_logs, release.output_file_in_task_root)
        if shape not in seen:
            seen.add(shape)
            lines.append(release)
    return lines


@pytest.mark.parametrize("release", older_task_shapes(), ids=lambda release: release.name)
def test_ingestion_runs_as_older_releases_hand_it_its_task(compiled_on_volumes, tmp_path, release):
    """An older line runs the spec's first task, whose ExecutorInput and ExecutorOutput file take that
    line's shape (kfp_releases); the newest runs the whole spec (test_kubeflow_e2e.py)."""
    spec_path, _ = compiled_on_volumes
    outputs = run_pipeline_spec(spec_path, str(tmp_path / "root"), {"epochs": 2.0}, release=release,
                                only_tasks=("CifarExampleGen",))
    examples = outputs["CifarExampleGen"]["examples"]["artifacts"][0]
    assert examples["metadata"]["data_fingerprint"].startswith("cifar-10-batches-py/")
    assert (EXECUTOR_LOGS in outputs["CifarExampleGen"]) == release.executor_logs
