"""The container image as users build it, and the compiled ``kfp`` spec run inside it.

The image is built here with the scripts users run (``kubeflow/build_image.sh``: buildah when no
Docker engine answers), CPU-only (``WITH_CUDA=0``), on a base made from Debian's packages by
``kubeflow/debian_base.sh`` (no registry is reachable here; it stands in for python:3.11-slim,
the same Debian release). Then, as a Kubeflow cluster would:

* the spec is compiled by the image's own ``cifar-tfx`` (the code that will run the tasks);
* every task runs in the image (``kfp_launcher.ImageTasks``): its own command and arguments, an
  ``ExecutorInput`` as the KFP launcher builds it, the PVCs of the platform spec bound where the
  spec mounts them, as the image's non-root user, with the pipeline root in MinIO
  (``minio://mlpipeline/v2/artifacts``, the default install's) and artifacts moved between the
  store and ``/minio`` as the launcher moves them;
* the pushed version is loaded and queried inside the image.

Needs root, buildah and mmdebstrap (``.ci/run`` installs them); skips saying so otherwise.
Slow: about 5 minutes to build, 7 to run the spec.
"""

import json
import os
import re
import shutil
import subprocess
import uuid

import pytest

from kfp_launcher import ImageTasks, load_documents, run_pipeline_spec
from packaging_helpers import REPO

pytestmark = pytest.mark.slow

BUILD_ENV = {"STORAGE_DRIVER": "vfs", "BUILDAH_ISOLATION": "chroot"}
DATA_CLAIM, SERVING_CLAIM = "cifar-data", "tf-serving"
PIPELINE_ROOT = "minio://mlpipeline/v2/artifacts"  # the open-source install's default (root_dag.go)


def _missing_tools() -> str:
    if os.geteuid() != 0:
        return "building images without a daemon needs root here"
    missing = [tool for tool in ("buildah", "mmdebstrap") if not shutil.which(tool)]
    return f"not installed: {', '.join(missing)} (apt-get install {' '.join(missing)})" if missing else ""


def _script(*command, timeout=1800, **env):
    result = subprocess.run(list(command), env={**os.environ, **BUILD_ENV, **env}, capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, f"{command} exited {result.returncode}:\n{result.stderr[-4000:]}"
    return result


@pytest.fixture(scope="session")
def cpu_image():
    """Name of the CPU image built from kubeflow/Dockerfile on a Debian-packages base; removed afterwards."""
    reason = _missing_tools()
    if reason:
        pytest.skip(reason)
    tag = uuid.uuid4().hex[:8]
    base, image = f"localhost/cifar-tfx-test-base:{tag}", f"localhost/cifar-tfx-test:{tag}"
    try:
        _script(str(REPO / "kubeflow" / "debian_base.sh"), base)
        _script(str(REPO / "kubeflow" / "build_image.sh"), image, BASE_IMAGE=base, WITH_CUDA="0",
                BUILDAH_LAYERS="false")
        yield image
    finally:
        for name in (image, base):
            subprocess.run(["buildah", "rmi", name], env={**os.environ, **BUILD_ENV}, capture_output=True)


@pytest.fixture
def image_tasks(cpu_image, tmp_path):
    """An :class:`ImageTasks` for ``cpu_image`` with the two claims of the spec as folders here."""
    volumes = {DATA_CLAIM: tmp_path / "pvc-data", SERVING_CLAIM: tmp_path / "pvc-models"}
    for folder in volumes.values():
        folder.mkdir()
    os.environ.update(BUILD_ENV)
    tasks = ImageTasks(cpu_image, {claim: str(folder) for claim, folder in volumes.items()})
    yield tasks, volumes
    tasks.close()


def _as_image_user(tasks: ImageTasks, *paths):
    """Give folders to the image's user, as a cluster's fsGroup or a provisioner would."""
    uid, _, gid = tasks.user.partition(":")
    for path in paths:
        for root, folders, files in os.walk(path):
            for name in [root] + [os.path.join(root, f) for f in folders + files]:
                os.chown(name, int(uid), int(gid or 0))


def test_the_image_runs_as_a_user_and_imports_only_its_installed_package(image_tasks):
    tasks, _ = image_tasks
    assert tasks.user and not tasks.user.startswith(("0:", "root")), f"the image runs as {tasks.user!r}"
    check = tasks.run_command(["python", "-c", "import os, cifar_tfx, cifar_tfx.kubeflow.compiler; "
                               "print(os.getuid(), os.getcwd(), cifar_tfx.__file__)"])
    assert check.returncode == 0, check.stderr[-3000:]
    uid, cwd, package = check.stdout.split()
    assert uid != "0" and package.startswith("/opt/venv/") and not os.path.exists(os.path.join(cwd, "cifar_tfx"))
    # KFP 2.0-2.2 mount no emptyDir at the launcher's folders (kfp_releases.KFP_2_0_TO_2_2): the launcher,
    # as this user, makes the artifacts' parents (MkdirAll) and writes there, in the image itself.
    launcher = tasks.run_command(["sh", "-c", "for d in /minio/mlpipeline/v2/artifacts/Trainer/1 /s3/b/r/T/1 "
                                  "/gcs/b/r/T/1; do mkdir -p $d && touch $d/model || exit 1; done"])
    assert launcher.returncode == 0, launcher.stderr[-2000:]


def test_the_compiled_kfp_spec_runs_every_task_inside_the_image(image_tasks, tmp_path):
    tasks, volumes = image_tasks
    data_mount, models_mount = "/mnt/data", "/mnt/models"
    spec_folder = tmp_path / "spec"
    spec_folder.mkdir()
    _as_image_user(tasks, spec_folder)
    compiled = tasks.run_command(
        ["cifar-tfx", "kubeflow", "compile", "--image", "localhost/cifar-tfx:test", "--pipeline-root",
         PIPELINE_ROOT, "--data", f"{data_mount}/synth", "--data-pvc", f"{DATA_CLAIM}:{data_mount}",
         "--serving-dir", models_mount, "--serving-pvc", f"{SERVING_CLAIM}:{models_mount}", "--profile", "budget",
         "--small-crop-fraction", "0.75", "--gpus", "1", "--allow-cpu-fallback", "--output", "/spec/pipeline.yaml"],
        binds=[f"{spec_folder}:/spec"])
    assert compiled.returncode == 0, compiled.stderr[-3000:]
    spec_path = str(spec_folder / "pipeline.yaml")
    spec, platform = load_documents(spec_path)
    mounts = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert {m["mountPath"] for config in mounts.values() for m in config.get("pvcMount", [])} == {
        data_mount, models_mount}
    assert mounts["Trainer_executor"]["tolerations"][0]["key"] == "nvidia.com/gpu", "the GPU node pool's taint"

    from cifar_tfx.data.synth import write_dataset

    write_dataset(str(volumes[DATA_CLAIM] / "synth"), train=500, test=100, seed=11)
    _as_image_user(tasks, volumes[SERVING_CLAIM], volumes[DATA_CLAIM])
    store = tmp_path / "minio"  # the default install's MinIO; each task sees only what the launcher moves
    # The budget profile with a run's own budget: the width probe, the budget and the two-phase fit all run in the
    # image. The probe takes about 45 s of the 2 minutes, so windows until 75 % leave the first phase 45 s.
    outputs = run_pipeline_spec(spec_path, PIPELINE_ROOT, {"time_budget_minutes": 2.0, "min_accuracy": 0.0},
                                log_dir=str(tmp_path), tasks_run_by=tasks, object_store=str(store))
    assert set(outputs) == set(spec["root"]["dag"]["tasks"])
    model_uri = outputs["Trainer"]["model"]["artifacts"][0]["uri"]
    assert model_uri.startswith(PIPELINE_ROOT + "/Trainer/"), "recorded under the bucket, not a pod's path"
    assert (store / model_uri[len("minio://"):] / "Format-Serving" / "saved_model.pb").exists(), "uploaded"
    pushed = outputs["Pusher"]["pushed_model"]["artifacts"][0]["metadata"]
    assert pushed["pushed"] == 1 and pushed["pushed_destination"] == f"{models_mount}/cifar10/1"
    trainer_log = (tmp_path / "Trainer.log").read_text()
    assert "devices: TensorFlow sees 0 GPU(s)" in trainer_log
    probed = re.search(r"budget: training (ResNet-9(?: x\d)?) \(\d+ s probe, counted in the budget", trainer_log)
    assert probed, trainer_log[-3000:]
    assert re.search(rf"training {re.escape(probed[1])} on 500 images, batch \d+, budget 2.0 min", trainer_log), \
        "the probed width, on the run's budget (not the compiled one)"
    assert "training on 24x24 crops until 75% of the run" in trainer_log, "the two-phase fit, in the image"
    version = volumes[SERVING_CLAIM] / "cifar10" / "1"
    assert (version / "saved_model.pb").exists()
    assert os.stat(version).st_uid == int(tasks.user.partition(":")[0]), "the Pusher ran as the image's user"

    from cifar_tfx.data.synth import make_examples
    from cifar_tfx.example_format import encode_png

    images_folder = tmp_path / "images"
    images_folder.mkdir()
    images, _ = make_examples(3, seed=5)
    for index, image in enumerate(images):
        (images_folder / f"{index}.png").write_bytes(encode_png(image))
    answer = tasks.run_command(["cifar-tfx", "predict", "--json", "--saved-model", f"{models_mount}/cifar10/1",
                                "/images/0.png", "/images/1.png", "/images/2.png"],
                               binds=[f"{volumes[SERVING_CLAIM]}:{models_mount}", f"{images_folder}:/images"])
    assert answer.returncode == 0, answer.stderr[-3000:]
    predictions = json.loads(answer.stdout)
    assert len(predictions) == 3 and all(len(p["top"]) == 3 for p in predictions)
