"""End to end on the embedded synthetic data: the demo run, its report, the gate, a second push (in this order).

Slow (several minutes): marked ``slow``; CI runs it.
"""

import glob
import hashlib
import json
import math
import os
import re
import shutil
import subprocess

import numpy as np
import pytest

pytestmark = pytest.mark.slow

tf = pytest.importorskip("tensorflow")

from cifar_tfx.cli import EXIT_NOT_PUSHED, main  # noqa: E402
from cifar_tfx.example_format import encode_png, serialize_batch  # noqa: E402
from cifar_tfx.data.synth import make_examples, write_dataset  # noqa: E402


def _tree(folder):
    """Every file under ``folder`` with the sha256 of its bytes."""
    listing = {}
    for path in sorted(glob.glob(os.path.join(folder, "**"), recursive=True)):
        if os.path.isfile(path):
            listing[os.path.relpath(path, folder)] = hashlib.sha256(open(path, "rb").read()).hexdigest()
    return listing


def _learning_rates(run_dir):
    rates = {}
    for path in glob.glob(os.path.join(run_dir, "train", "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.tag == "learning_rate":
                    rates[event.step] = float(tf.make_ndarray(value.tensor))
    return [rates[step] for step in sorted(rates)], sorted(rates)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    write_dataset(str(root / "data"))  # the `make demo` data: 5,000 / 1,000
    args = ["run", "--data", str(root / "data"), "--profile", "demo", "--pipeline-root", str(root / "pipeline"),
            "--serving-dir", str(root / "serving")]
    return root, args


def test_demo_run_trains_gates_and_pushes(demo_run, capsys):
    root, args = demo_run
    assert main(args) == 0
    out, err = capsys.readouterr()
    assert "pushed: cifar10 version 1 -> " in out
    assert "trained ResNet-8: 469 steps in " in out
    accuracy = float(out.rsplit("test accuracy ", 1)[1].split(")")[0])
    assert accuracy >= 0.80, "the synthetic data promises >= 80 % for the demo profile"

    version = root / "serving" / "cifar10" / "1"
    loaded = tf.saved_model.load(str(version))
    images, labels = make_examples(6, seed=2024)
    by_example = loaded.signatures["serving_default"](examples=tf.constant(list(serialize_batch(images, labels))))
    by_image = loaded.signatures["serving_images"](images=tf.constant([encode_png(i) for i in images]))
    np.testing.assert_array_equal(by_example["class_id"].numpy(), by_image["class_id"].numpy())
    assert by_image["probabilities"].shape == (6, 10)

    run_dirs = glob.glob(str(root / "pipeline" / "Trainer" / "model_run" / "*"))
    assert len(run_dirs) == 1
    rates, steps = _learning_rates(run_dirs[0])
    assert steps == list(range(len(steps))), "learning_rate is logged at every step"
    first_drop, second_drop = rates.index(pytest.approx(0.01)), rates.index(pytest.approx(0.001))
    assert rates[0] == pytest.approx(0.1)
    # 12 epochs of 5,000 images at batch 128 = 469 steps: drops at the first step >= 1/2 and >= 3/4.
    assert len(rates) == 469
    assert first_drop == math.ceil(469 / 2) and second_drop == math.ceil(469 * 3 / 4)
    assert os.path.getsize(os.path.join(run_dirs[0], "report", "training.png")) > 10_000
    # The Evaluator is the one reader of the test split: its confusion matrix is what the report draws.
    evaluation = glob.glob(str(root / "pipeline" / "Evaluator" / "evaluation" / "*"))[0]
    confusion = json.load(open(os.path.join(evaluation, "confusion.json")))
    counts = np.array(confusion["counts"])
    assert counts.shape == (10, 10) and counts.sum() == 1000, "every test image counted once"
    assert np.trace(counts) / counts.sum() == pytest.approx(accuracy, abs=1e-4)
    assert "trained 469 steps in " in err and "eval accuracy" not in err, "the Trainer does not read the test split"
    # StatisticsGen describes the data; Transform makes its graph only (no second statistics pass, no cache).
    outputs = sorted(name for name in os.listdir(root / "pipeline" / "Transform") if not name.startswith("."))
    assert outputs == ["transform_graph"], "TFX's own .system folder aside"


REPORT_SECTIONS = ("Gate decision", "Training", "confusion matrix", "Per-class accuracy (Evaluator)",
                   "Misclassified test images", "Data", "Components", "Hyperparameters", "Lineage")


def test_the_run_wrote_a_self_contained_report_that_a_browser_renders(demo_run, capsys):
    root, _ = demo_run
    reports = glob.glob(str(root / "pipeline" / "reports" / "*.html"))
    assert len(reports) == 1, "the demo run writes its report"
    page = open(reports[0], encoding="utf-8").read()
    for section in REPORT_SECTIONS:
        assert section in page, section
    # curves, confusion matrix, per-class accuracy, class counts, and the misclassified grid if anything was
    pictures = page.count('src="data:image/png;base64,')
    assert pictures == 5 or (pictures == 4 and "<p>None.</p>" in page)
    assert not re.search(r"(src|href)=\"(https?:|file:|/)", page), "nothing outside the file is referenced"
    assert "Test accuracy " in page and "blessed" in page and "minimum accuracy" in page
    assert re.search(r"<td>Trainer</td><td>COMPLETE</td><td>\d+\.\d s</td>", page)
    # `cifar-tfx report` writes the same page again, to a chosen file
    out = root / "again.html"
    assert main(["report", str(root / "pipeline"), "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out) and all(s in out.read_text() for s in REPORT_SECTIONS)
    assert main(["report", str(root / "pipeline"), "--run", "no-such-run"]) == 2

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("no headless Chromium (Debian package chromium) to render the report with")
    common = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000"]
    dom = subprocess.run(common + ["--dump-dom", f"file://{reports[0]}"], capture_output=True, text=True,
                         timeout=120).stdout
    loaded = re.search(r'data-images-loaded="(\d+)"', dom)
    assert loaded and int(loaded.group(1)) == pictures and 'data-images-broken="0"' in dom
    shot = root / "report.png"
    subprocess.run(common + ["--window-size=1200,2400", f"--screenshot={shot}", f"file://{reports[0]}"],
                   capture_output=True, timeout=120)
    assert shot.stat().st_size > 50_000  # a page of pictures, not a blank one


def test_impossible_bound_refuses_and_leaves_serving_dir_untouched(demo_run, capsys):
    root, args = demo_run
    before = _tree(root / "serving")
    # Two training steps cannot classify all 1,000 test images right: a bound of 1.0 must refuse.
    assert main(args + ["--train-steps", "2", "--min-accuracy", "1.0"]) == EXIT_NOT_PUSHED
    out = capsys.readouterr().out
    assert "not pushed: min-accuracy failed: accuracy " in out and "< 1.0000" in out
    # The demo run's model was blessed: it is this run's baseline, and two steps fall far below it.
    assert "max-regression failed: accuracy " in out and "below the last blessed model's" in out
    assert _tree(root / "serving") == before


def test_second_good_run_pushes_a_new_version_beside_the_first(demo_run, capsys):
    root, args = demo_run
    assert main(args + ["--min-accuracy", "0.5"]) == 0
    assert "pushed: cifar10 version 2 -> " in capsys.readouterr().out
    assert sorted(os.listdir(root / "serving" / "cifar10")) == ["1", "2"]
    config = (root / "serving" / "models.config").read_text()
    assert 'name: "cifar10"' in config
    assert f'base_path: "{root / "serving" / "cifar10"}"' in config
