"""What can be checked of kubeflow/Dockerfile by reading it (tests/test_image_build.py builds and runs it)."""

import fnmatch
import importlib.metadata
import pathlib
import re

REPO = pathlib.Path(__file__).resolve().parent.parent
DOCKERFILE = (REPO / "kubeflow" / "Dockerfile").read_text()


def _locked(path):
    return {line.split("==")[0].lower().replace("_", "-"): line.split("==")[1].strip()
            for line in path.read_text().splitlines() if "==" in line and not line.startswith(("#", " "))}


def _run_commands():
    """The Dockerfile's RUN instructions, continuation lines joined, in order."""
    text = DOCKERFILE.replace("\\\n", " ")
    return [line[4:] for line in text.splitlines() if line.startswith("RUN ")]


def test_packages_built_from_source_get_a_compiler_first():
    """A locked package installed here from a locally built wheel (tag linux_x86_64, not manylinux)
    has no binary wheel: the image must install a compiler before installing the lock."""
    locked = _locked(REPO / "requirements" / "lock.txt")
    built_here = []
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"].lower().replace("_", "-")
        tags = [line.split(": ", 1)[1] for line in (dist.read_text("WHEEL") or "").splitlines()
                if line.startswith("Tag: ")]
        if name in locked and any(t.endswith("linux_x86_64") and "manylinux" not in t for t in tags):
            built_here.append(name)
    assert set(built_here) >= {"pyfarmhash", "crcmod"}, built_here  # what the lock holds today
    runs = _run_commands()
    install = next(i for i, run in enumerate(runs) if "requirements/lock.txt" in run)
    before = " ".join(runs[:install + 1])
    compiler_at = min((before.find(word) for word in ("build-essential", " gcc") if word in before), default=-1)
    assert 0 <= compiler_at < before.find("requirements/lock.txt"), "install a compiler before the lock"


def test_image_installs_only_locked_versions():
    runs = _run_commands()
    installs = [run for run in runs if "pip install" in run]
    for run in installs:
        for command in run.split("&&"):
            if "pip install" in command and "uv==" not in command:
                assert "--no-deps" in command, command
    cuda_install = next(run for run in installs if "lock-cuda.txt" in run)
    assert '"$WITH_CUDA" = 1' in cuda_install, "the CUDA lock is installed only when WITH_CUDA=1"
    cuda = _locked(REPO / "requirements" / "lock-cuda.txt")
    base = _locked(REPO / "requirements" / "lock.txt")
    assert any(name.startswith("nvidia-cudnn") for name in cuda)
    clashes = {name: (base[name], cuda[name]) for name in cuda.keys() & base.keys() if base[name] != cuda[name]}
    assert not clashes, f"the CUDA lock must keep the main lock's versions: {clashes}"


def _final_stage():
    return DOCKERFILE[DOCKERFILE.rindex("\nFROM "):]


def test_image_python_matches_the_one_the_wheels_were_chosen_for():
    assert re.search(r"^ARG BASE_IMAGE=python:3\.11-slim$", DOCKERFILE, re.M)
    assert re.findall(r"^FROM (\S+)", DOCKERFILE, re.M) == ["${BASE_IMAGE}", "${BASE_IMAGE}"]
    assert "TF_USE_LEGACY_KERAS=1" in _final_stage()


def test_final_stage_has_no_source_copy_and_runs_as_a_numeric_non_root_user():
    final = _final_stage()
    copies = re.findall(r"^COPY (.+)$", final, re.M)
    assert copies and all(c.startswith("--from=build /opt/venv") for c in copies), copies
    user = re.findall(r"^USER (\S+)$", final, re.M)
    assert len(user) == 1 and re.fullmatch(r"[1-9][0-9]*(:[0-9]+)?", user[0]), \
        "a numeric uid lets Kubernetes' runAsNonRoot verify it"
    assert "build-essential" not in final


def test_build_context_leaves_out_heavy_and_local_folders():
    patterns = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]

    def ignored(path):
        return any(fnmatch.fnmatch(path, p) or fnmatch.fnmatch(path.split("/")[0], p) or
                   (p.startswith("**/") and fnmatch.fnmatch(path.rsplit("/", 1)[-1], p[3:])) for p in patterns)

    for heavy in (".venv", ".tools", "runs", "data", ".git", "trainer/__pycache__"):
        assert ignored(heavy), heavy
    for needed in ("setup.py", "requirements/lock.txt", "cifar_tfx/cli.py", "kubeflow/compiler.py"):
        assert not ignored(needed), needed
    for copied in re.findall(r"^COPY (?!--from)(\S+)", DOCKERFILE, re.M):
        assert (REPO / copied).exists(), copied


def test_the_variables_a_spec_may_not_override_are_the_ones_the_image_sets():
    from cifar_tfx.kubeflow.compiler import IMAGE_ENV

    text = DOCKERFILE.replace("\\\n", " ")
    final_stage = text[text.rindex("\nFROM "):]
    set_by_image = {name for line in final_stage.splitlines() if line.startswith("ENV ")
                    for name in re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=", line)}
    assert set(IMAGE_ENV) <= set_by_image, sorted(set_by_image)
