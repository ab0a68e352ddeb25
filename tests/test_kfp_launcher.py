"""The test harness's own rules where they touch buildah (``kfp_launcher.ImageTasks``), with a stand-in buildah."""

from __future__ import annotations

import json
import stat

from kfp_launcher import REEXEC_ATTEMPTS, ImageTasks

# A stand-in for the buildah command line: `inspect` and `from` answer as buildah does; `run` counts its calls
# in the file $1 and fails the first $2 of them the way buildah fails before it starts a command (the seal of
# its re-executed copy refused), then runs the command. A command named `false` fails as a command does.
FAKE_BUILDAH = r"""#!/bin/sh
count_file=$1; seal_failures=$2; shift 2
case $1 in
  inspect) echo '{"OCIv1": {"config": {"User": "1000:1000", "Env": ["HOME=/home/app"]}}}' ;;
  from) echo working-container ;;
  run)
    count=$(( $(cat "$count_file" 2>/dev/null || echo 0) + 1 )); echo $count > "$count_file"
    if [ $count -le $seal_failures ]; then
      echo "Close_Fd sealing memfd copy: Device or resource busy" >&2; exit 1
    fi
    while [ "$1" != "--" ]; do shift; done; shift
    exec "$@" ;;
esac
"""


def _tasks(tmp_path, seal_failures: int) -> ImageTasks:
    script = tmp_path / "buildah"
    script.write_text(FAKE_BUILDAH)
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return ImageTasks("localhost/image", claims={},
                      buildah=[str(script), str(tmp_path / "runs"), str(seal_failures)])


def _runs(tmp_path) -> int:
    return int((tmp_path / "runs").read_text())


def test_a_refused_seal_before_the_command_starts_runs_it_again(tmp_path):
    tasks = _tasks(tmp_path, seal_failures=2)
    assert tasks.user == "1000:1000" and tasks.home == "/home/app" and tasks.container == "working-container"
    answer = tasks.run_command(["echo", "ran"])
    assert (answer.returncode, answer.stdout.strip(), _runs(tmp_path)) == (0, "ran", 3)
    task = tasks.run("Trainer", ["echo", json.dumps({"task": 1})], pvc_mounts=[], binds=[], timeout=60)
    assert task.returncode == 0 and json.loads(task.stdout) == {"task": 1}


def test_the_command_s_own_failure_is_not_run_again(tmp_path):
    answer = _tasks(tmp_path, seal_failures=0).run_command(["false"])
    assert answer.returncode != 0 and _runs(tmp_path) == 1


def test_a_seal_refused_every_time_ends_with_buildah_s_message(tmp_path):
    answer = _tasks(tmp_path, seal_failures=REEXEC_ATTEMPTS).run_command(["echo", "ran"])
    assert answer.returncode == 1 and "sealing memfd copy" in answer.stderr and _runs(tmp_path) == REEXEC_ATTEMPTS
