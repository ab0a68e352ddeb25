"""The command line: JSON output, exit codes, one-line errors, and no TensorFlow import."""

import json
import subprocess
import sys

import pytest

from cifar_tfx.cli import main

# Runs the CLI in a fresh interpreter and fails if TensorFlow (or TFX) got imported.
_NO_TF = (
    "import sys, runpy\n"
    "sys.argv = ['cifar-tfx'] + sys.argv[1:]\n"
    "from cifar_tfx.cli import main\n"
    "try:\n"
    "    code = main(sys.argv[1:])\n"
    "except SystemExit as exit_:\n"
    "    code = exit_.code\n"
    "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'tfx', 'apache_beam'))\n"
    "assert not heavy, heavy[:5]\n"
    "sys.exit(code)\n"
)


def _run_without_tf(*args):
    return subprocess.run([sys.executable, "-c", _NO_TF, *args], capture_output=True, text=True, timeout=120)


def test_help_does_not_import_tensorflow():
    result = _run_without_tf("--help")
    assert result.returncode == 0, result.stderr
    assert "data" in result.stdout and "run" in result.stdout


def test_verify_sample_without_tensorflow(sample_archives):
    result = _run_without_tf("data", "verify", sample_archives["binary"])
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["format"] == "binary"
    assert summary["train"]["count"] == 500 and summary["test"]["classes"] == [20] * 10


def test_download_offline_without_tensorflow(tmp_path):
    result = _run_without_tf("data", "download", "--dest", str(tmp_path), "--url",
                             "http://127.0.0.1:9/cifar-10-python.tar.gz", "--timeout", "3")
    assert result.returncode == 2
    assert result.stderr.startswith("error: cannot reach")


def test_bad_input_is_one_line_and_nonzero(capsys, tmp_path):
    assert main(["data", "verify", str(tmp_path / "missing.tar.gz")]) == 2
    err = capsys.readouterr().err
    assert err.strip().count("\n") == 0 and err.startswith("error: no such file or directory")


def test_synth_then_verify_round_trip(capsys, tmp_path):
    assert main(["data", "synth", "--out", str(tmp_path), "--train", "50", "--test", "20"]) == 0
    capsys.readouterr()
    assert main(["data", "verify", str(tmp_path)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["train"]["count"] == 50 and summary["test"]["count"] == 20
    assert summary["train"]["classes"] == [5] * 10 and summary["test"]["classes"] == [2] * 10


def test_unknown_dataset_is_rejected():
    with pytest.raises(SystemExit):
        main(["data", "verify", "x", "--dataset", "imagenet"])


def _hparams_for(*args):
    from cifar_tfx.cli import build_parser, hparams_from_args

    return hparams_from_args(build_parser().parse_args(["run", "--data", "d", *args]))


def test_a_budget_without_a_profile_runs_the_budget_profile_and_depth_wins():
    from cifar_tfx.trainer.hparams import BUDGET, DEMO, FULL

    chosen = _hparams_for("--time-budget-minutes", "10")
    assert chosen.depth is None and chosen.time_budget_minutes == 10.0 and chosen.lr_schedule == BUDGET.lr_schedule
    assert _hparams_for("--time-budget-minutes", "10", "--depth", "20").depth == 20
    # the seed's rule stays one flag away: the full profile counted in time, steps at 1/2 and 3/4
    seed = _hparams_for("--profile", "full", "--time-budget-minutes", "10")
    assert (seed.depth, seed.lr_schedule, seed.label_smoothing) == (FULL.depth, "step", 0.0)
    assert _hparams_for() == DEMO
    levers = _hparams_for("--time-budget-minutes", "5", "--lr-schedule", "step", "--label-smoothing", "0",
                          "--test-time-flip", "off")
    assert (levers.lr_schedule, levers.label_smoothing, levers.test_time_flip) == ("step", 0.0, False)


def test_resnet9_is_one_flag_away_in_any_profile_and_has_no_depth():
    for profile in ("demo", "full"):
        chosen = _hparams_for("--profile", profile, "--time-budget-minutes", "10", "--architecture", "resnet9")
        assert (chosen.architecture, chosen.depth, chosen.network_name) == ("resnet9", None, "ResNet-9")
    # the budget profile leaves the width to the run, as it leaves a resnet's depth
    budget = _hparams_for("--profile", "budget", "--time-budget-minutes", "10", "--architecture", "resnet9")
    assert (budget.depth, budget.width, budget.network_name) == (None, None, "ResNet-9 (width left to the budget)")
    assert _hparams_for("--architecture", "resnet9", "--width", "2").network_name == "ResNet-9 x2"
    # a budget trains the dataset's budget architecture: ResNet-9 on CIFAR-10, a CIFAR ResNet on Fashion-MNIST
    assert _hparams_for("--time-budget-minutes", "10").architecture == "resnet9"
    assert _hparams_for("--dataset", "fashion_mnist", "--time-budget-minutes", "10").architecture == "resnet"
    depth20 = _hparams_for("--time-budget-minutes", "10", "--depth", "20")
    assert (depth20.architecture, depth20.network_name) == ("resnet", "ResNet-20")

def test_a_budget_takes_the_datasets_weight_decay_unless_one_is_given():
    from cifar_tfx.data.datasets import CIFAR10, FASHION_MNIST
    from cifar_tfx.trainer.hparams import FULL

    fashion = ("--time-budget-minutes", "10", "--dataset", "fashion_mnist")
    assert _hparams_for(*fashion).weight_decay == FASHION_MNIST.budget_weight_decay
    assert _hparams_for("--time-budget-minutes", "10").weight_decay == CIFAR10.budget_weight_decay
    assert CIFAR10.budget_weight_decay != FULL.weight_decay   # the budget's own value, not the recipe's
    assert _hparams_for("--time-budget-minutes", "10", "--weight-decay", "2e-4").weight_decay == 2e-4
    # the seed's rule keeps the recipe's weight decay
    assert _hparams_for("--profile", "full", "--time-budget-minutes", "10").weight_decay == FULL.weight_decay


def test_a_budget_takes_the_datasets_batch_rate_and_test_time_shift_unless_given():
    from cifar_tfx.data.datasets import CIFAR10, FASHION_MNIST
    from cifar_tfx.trainer.hparams import FULL

    cifar = _hparams_for("--time-budget-minutes", "30")
    assert (cifar.batch_size, cifar.learning_rate, cifar.test_time_shift) == (
        CIFAR10.budget_batch_size, CIFAR10.budget_learning_rate, CIFAR10.budget_test_time_shift) == (256, 0.2, 2)
    fashion = _hparams_for("--time-budget-minutes", "10", "--dataset", "fashion_mnist")
    assert (fashion.batch_size, fashion.learning_rate, fashion.test_time_shift) == (
        FASHION_MNIST.budget_batch_size, FASHION_MNIST.budget_learning_rate, 0)
    given = _hparams_for("--time-budget-minutes", "30", "--batch-size", "64", "--learning-rate", "0.05",
                         "--test-time-shift", "0")
    assert (given.batch_size, given.learning_rate, given.test_time_shift) == (64, 0.05, 0)
    seed = _hparams_for("--profile", "full", "--time-budget-minutes", "30")
    assert (seed.batch_size, seed.learning_rate, seed.test_time_shift) == (FULL.batch_size, FULL.learning_rate, 0)


def test_a_cifar10_budget_trains_a_whitened_stem_unless_told_not_to():
    from cifar_tfx.data.datasets import CIFAR10, FASHION_MNIST

    cifar = _hparams_for("--time-budget-minutes", "30")
    assert cifar.whitened_stem is CIFAR10.budget_whitened_stem is True and cifar.width is None  # width still probed
    assert _hparams_for("--time-budget-minutes", "30", "--whitened-stem", "off").whitened_stem is False
    assert _hparams_for("--time-budget-minutes", "10", "--dataset", "fashion_mnist").whitened_stem is \
        FASHION_MNIST.budget_whitened_stem is False
    # the seed's rule and the demo keep the recipe's learned stem
    assert not _hparams_for("--profile", "full", "--time-budget-minutes", "30").whitened_stem
    assert not _hparams_for("--profile", "demo").whitened_stem


def test_a_budget_takes_the_datasets_cutout_unless_one_is_given():
    from cifar_tfx.data.datasets import CIFAR10, FASHION_MNIST
    from cifar_tfx.trainer.hparams import FULL

    fashion = ("--time-budget-minutes", "10", "--dataset", "fashion_mnist")
    assert _hparams_for(*fashion).cutout_size == FASHION_MNIST.budget_cutout_size != FULL.cutout_size
    assert _hparams_for("--time-budget-minutes", "10").cutout_size == CIFAR10.budget_cutout_size != FULL.cutout_size
    assert _hparams_for(*fashion, "--cutout-size", "0").cutout_size == 0
    # the seed's rule is the recipe's cutout whatever the dataset
    assert _hparams_for(*fashion, "--profile", "full").cutout_size == FULL.cutout_size


def test_a_budget_profile_counted_in_epochs_is_refused_with_the_reason(capsys):
    assert main(["run", "--data", "d", "--profile", "budget", "--epochs", "3"]) == 2
    assert "width can be left to the trainer only in a time-budgeted resnet9 or airbench run" in capsys.readouterr().err
