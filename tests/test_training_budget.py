"""The time budget on small real TFRecords: its clock, the probe, the recheck, resumed attempts."""

import dataclasses
import json
import re

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

import tf_keras as keras  # noqa: E402

from cifar_tfx.trainer.hparams import with_overrides  # noqa: E402
from training_runs import TINY, InputSizes, train_tiny  # noqa: E402

pytestmark = pytest.mark.usefixtures("float32_policy")


def test_budget_mode_switches_by_time_and_stops(splits, tmp_path, monkeypatch):
    ticks = [0.0]
    saved_steps = []
    manager_save = tf.train.CheckpointManager.save

    def counting_save(manager, checkpoint_number=None, **kwargs):
        saved_steps.append(checkpoint_number)
        return manager_save(manager, checkpoint_number=checkpoint_number, **kwargs)

    monkeypatch.setattr(tf.train.CheckpointManager, "save", counting_save)

    def clock():  # every call advances 1 "second": the schedule sees time pass per step
        ticks[0] += 1.0
        return ticks[0]

    hparams = with_overrides(TINY, time_budget_minutes=40 / 60)  # 40 fake seconds
    _, result, log = train_tiny(splits, tmp_path, hparams, clock=clock)
    rates = result.learning_rates
    assert 0 < len(rates) < 40 and result.elapsed_seconds >= 40
    spent, later = map(float, re.search(  # the end of a budget run, timed on the same clock
        r"budget spent ([\d.]+) s in; the fit and its last checkpoint were done ([\d.]+) s later", log).groups())
    assert 40 <= spent < 45 and later > 0 and spent + later <= result.elapsed_seconds
    assert saved_steps and len(saved_steps) == len(set(saved_steps))  # the stop's step is saved once, not twice
    assert rates[0] == 0.1 and rates[-1] == pytest.approx(0.001)
    assert sorted(set(rates), reverse=True) == pytest.approx([0.1, 0.01, 0.001])
    assert rates == sorted(rates, reverse=True)


def test_budget_resume_counts_time_already_spent(splits, tmp_path):
    ticks = [0.0]

    def clock():
        ticks[0] += 1.0
        return ticks[0]

    # First attempt: stopped after 20 fake seconds with its checkpoint (like a crash after a save).
    _, first, _ = train_tiny(splits, tmp_path, with_overrides(TINY, time_budget_minutes=20 / 60), clock=clock)
    assert first.elapsed_seconds >= 20
    # Same checkpoint folder, a budget of which the first attempt spent about 60 %: past the first drop (at half),
    # short of the second (at three quarters). Sized from what the first attempt read off the clock, whose fake
    # seconds are clock reads, so the test does not depend on how many reads a step makes.
    second_budget = first.elapsed_seconds / 0.6
    _, second, log = train_tiny(splits, tmp_path, with_overrides(TINY, time_budget_minutes=second_budget / 60),
                            clock=clock)
    assert second.resumed_from_step == first.steps_done > 0
    assert "s already trained" in log
    assert second.learning_rates[0] == pytest.approx(0.01)
    assert second.elapsed_seconds >= second_budget


def test_budget_run_probes_chooses_a_depth_and_a_resumed_attempt_keeps_it(splits, tmp_path):
    ticks = [0.0]

    def clock():
        ticks[0] += 1.0
        return ticks[0]

    hparams = dataclasses.replace(with_overrides(TINY, time_budget_minutes=90 / 60, budget_min_images=1500,
                                                 lr_schedule="linear", label_smoothing=0.1), depth=None)
    _, first, log = train_tiny(splits, tmp_path, hparams, clock=clock)
    choice = first.network_choice
    assert first.hparams.depth == choice["value"] and set(choice["measured_images_per_second"]) == {8, 32}
    assert choice["knob"] == "depth" and choice["network"] == f"ResNet-{choice['value']}"
    assert "budget: training ResNet-" in log and "counted in the budget" in log
    assert f"training ResNet-{choice['value']} on 256 images" in log
    assert choice["probe_seconds"] > 0 and first.elapsed_seconds >= 90  # the probe's time is part of the budget
    saved = tmp_path / "ckpt" / "network_choice.json"
    assert saved.exists()
    # a retried attempt on the same checkpoints trains the same network without probing again
    _, second, log = train_tiny(splits, tmp_path, with_overrides(hparams, time_budget_minutes=200 / 60), clock=clock)
    assert second.hparams.depth == choice["value"] and "chosen by the first attempt" in log
    assert second.resumed_from_step == first.steps_done > 0


def test_a_resnet9_budget_run_trains_both_phases_without_a_probe_and_says_what_it_trained(splits, tmp_path):
    ticks = [0.0]

    def clock():
        ticks[0] += 1.0
        return ticks[0]

    sizes = InputSizes()
    hparams = with_overrides(TINY, architecture="resnet9", time_budget_minutes=40 / 60, lr_schedule="linear",
                             small_crop_fraction=0.5, small_crop_size=24)
    model, result, log = train_tiny(splits, tmp_path, hparams, clock=clock, callbacks=[sizes])
    assert model.name == "resnet9" and result.hparams.depth is None and result.network_choice is None
    assert "probe" not in log and "training ResNet-9 on 256 images" in log
    assert sizes.sizes[0] == 24 and sizes.sizes[-1] == 32 and result.steps_done == len(sizes.sizes)
    assert np.isfinite(result.eval_loss) and result.elapsed_seconds >= 40


@pytest.mark.parametrize("whitened_stem", [False, True], ids=["learned-stem", "whitened-stem"])
def test_a_resnet9_budget_run_probes_two_widths_and_trains_the_one_chosen(splits, tmp_path, monkeypatch,
                                                                          whitened_stem):
    import cifar_tfx.trainer.train as train_module

    ticks = [0.0]

    def clock():
        ticks[0] += 3.0  # three fake seconds a read: a 600 s budget is about 60 steps
        return ticks[0]

    probed, probed_stems = [], []

    def probe(network, dataset, runtime, strategy, probe_ds, clock=None, crop_size=None, stem_whitening=None):
        probed.append((network.architecture, network.width, network.depth))
        if network.whitened_stem:  # the probe builds each width with the stem that width would train with
            probed_stems.append(train_module.build_and_compile(network, dataset, runtime, crop_size,
                                                               stem_whitening=stem_whitening))
        return {1: 1000.0, 2: 500.0}[network.width]

    from cifar_tfx.trainer.budget import RESNET9_WIDTHS, predict_throughput, recheck_network

    rechecked = []

    def steady_as_probed(measured, chosen, observed, *args, ladder, **kwargs):
        """The real recheck, on the ladder it is given, with training as fast as the probe said (the fake
        clock's own rate is not a machine's)."""
        rechecked.append((ladder, chosen))
        steady = predict_throughput({int(k): v for k, v in measured.items()}, ladder)[chosen] * kwargs["speedup"]
        return recheck_network(measured, chosen, steady, *args, ladder=ladder, **kwargs)

    monkeypatch.setattr(train_module, "measure_throughput", probe)
    monkeypatch.setattr(train_module, "recheck_network", steady_as_probed)
    # 600 s at the probed rates: width 2 sees ~0.3M images (needs 0.15M), width 4 ~0.1M (needs 0.3M)
    hparams = with_overrides(TINY, architecture="resnet9", time_budget_minutes=600 / 60, budget_min_images=150_000,
                             lr_schedule="linear", train_steps=None, whitened_stem=whitened_stem)
    hparams = dataclasses.replace(hparams, width=None)
    assert hparams.network_left_to_probe
    model, result, log = train_tiny(splits, tmp_path, hparams, clock=clock)
    assert probed == [("resnet9", 1, None), ("resnet9", 2, None)]
    assert result.hparams.width == 2 and model.get_layer("stem_conv").filters == 32
    stem = model.get_layer("stem_conv")
    assert stem.trainable is not whitened_stem
    if whitened_stem:  # each width its own fixed stem, cut from the same patch directions
        kernel = train_module.stem_whitening_for(hparams, splits["train"], splits["tft"]).kernel(32)
        np.testing.assert_array_equal(stem.get_weights()[0], kernel)
        assert [m.get_layer("stem_conv").filters for m in probed_stems] == [16, 32]
        np.testing.assert_array_equal(probed_stems[0].get_layer("stem_conv").get_weights()[0][..., :8], kernel[..., :8])
        assert "fixed patch-whitening stem" in log
    assert "budget: training ResNet-9 x2 (" in log and "-> ResNet-9 x2 (the largest that sees what it needs" in log
    saved = json.loads((tmp_path / "ckpt" / "network_choice.json").read_text())
    assert (saved["knob"], saved["value"], saved["network"]) == ("width", 2, "ResNet-9 x2")
    assert rechecked == [(RESNET9_WIDTHS, 2)] and "keeps ResNet-9 x2" in log  # the recheck reads the same ladder


def test_a_recheck_that_disagrees_with_the_probe_restarts_with_its_network(splits, tmp_path, monkeypatch):
    import cifar_tfx.trainer.train as train_module
    from cifar_tfx.trainer.budget import Recheck, choose_network

    ticks = [0.0]

    def clock():
        ticks[0] += 1.0
        return ticks[0]

    seen = []

    def busy_probe_said_8(measured, chosen, observed, train_examples, seconds_left, min_images, images_seen,
                          ladder, speedup, image_gain):
        assert speedup == 1.0 and image_gain == 1.0, "timed on whole images, and no small crops to count"
        seen.append((chosen, observed, seconds_left, images_seen))
        return Recheck(ladder=ladder, chosen=chosen, observed=observed, predicted=observed / 2,
                       choice=dataclasses.replace(choose_network(measured, train_examples, seconds_left, min_images),
                                                  value=14))

    monkeypatch.setattr(train_module, "recheck_network", busy_probe_said_8)
    hparams = dataclasses.replace(with_overrides(TINY, time_budget_minutes=600 / 60, budget_min_images=10**9,
                                                 lr_schedule="linear"), depth=None)
    model, result, log = train_tiny(splits, tmp_path, hparams, clock=clock)
    (chosen, observed, seconds_left, images_seen), = seen  # rechecked once, after the first epoch
    assert chosen == 8 and observed > 0 and 0 < seconds_left < 600 and images_seen >= 256
    assert "budget: recheck: ResNet-8 trains at" in log and "restarting with ResNet-14" in log
    assert result.hparams.depth == 14 and model.name == "resnet14" and result.elapsed_seconds >= 600
    saved = json.loads((tmp_path / "ckpt" / "network_choice.json").read_text())
    assert (saved["value"], saved["network"], saved["recheck"]["switched_to"]) == (14, "ResNet-14", 14)
    assert result.network_choice["recheck"] == saved["recheck"]
    # the abandoned network's checkpoints are gone: a retried attempt resumes ResNet-14 from its own
    _, again, log = train_tiny(splits, tmp_path, with_overrides(hparams, time_budget_minutes=700 / 60), clock=clock)
    assert again.hparams.depth == 14 and again.resumed_from_step == result.steps_done > 0
    assert "chosen by the first attempt" in log and len(seen) == 1
    # the run's outcome line names both the probe's choice and the recheck that replaced it
    from cifar_tfx.reporting.outcome import training_summary

    (tmp_path / "run" / "report").mkdir(parents=True)
    (tmp_path / "run" / "report" / "training.json").write_text(json.dumps(
        {"steps": result.steps_done, "elapsed_seconds": 600, "images_per_second": 10.0,
         "hparams": {"depth": 14}, "network_choice": saved}))
    summary = training_summary(str(tmp_path / "run"))
    assert summary.startswith("trained ResNet-14") and "-> ResNet-8 (" in summary
    assert "then recheck: ResNet-8 trains at" in summary


class _NetworkAndSize(keras.callbacks.Callback):
    """Which network (its name) trained each step, and at what image side."""

    def __init__(self):
        super().__init__()
        self.steps = []

    def on_train_batch_end(self, batch, logs=None):
        self.steps.append((self.model.name, self.model.input_shape[1]))


def test_a_recheck_in_the_small_crop_phase_restarts_before_the_old_network_moves_to_whole_images(
        splits, tmp_path, monkeypatch):
    """The loaded run at 942a5b6 (2026-12-01): the recheck fired on windows, the abandoned network went on to the
    whole-image phase and spent the budget, and the new one trained 0 steps (test accuracy 0.10)."""
    import cifar_tfx.trainer.train as train_module
    from cifar_tfx.trainer.budget import Recheck, choose_network

    ticks = [0.0]

    def clock():
        ticks[0] += 1.0
        return ticks[0]

    def busy_probe_said_8(measured, chosen, observed, train_examples, seconds_left, *args, ladder, **kwargs):
        return Recheck(ladder=ladder, chosen=chosen, observed=observed, predicted=observed / 2,
                       choice=dataclasses.replace(choose_network(measured, train_examples, seconds_left, 1), value=14))

    def probe(network, dataset, runtime, strategy, probe_ds, clock=None, crop_size=None, stem_whitening=None):
        return {(8, None): 1000.0, (32, None): 250.0, (8, 24): 1600.0}[network.depth, crop_size]

    monkeypatch.setattr(train_module, "measure_throughput", probe)
    monkeypatch.setattr(train_module, "recheck_network", busy_probe_said_8)
    trained = _NetworkAndSize()
    # the clock ticks once per call: the recheck comes before a quarter of the budget, inside the window phase
    hparams = dataclasses.replace(with_overrides(TINY, time_budget_minutes=300 / 60, budget_min_images=10**9,
                                                 lr_schedule="linear", small_crop_fraction=0.5), depth=None)
    model, result, log = train_tiny(splits, tmp_path, hparams, clock=clock, callbacks=[trained])
    assert "restarting with ResNet-14" in log and log.count("training on 24x24 crops until 50%") == 2
    abandoned = {size for name, size in trained.steps if name == "resnet8"}
    assert abandoned == {24}, "the abandoned network stopped on windows"
    restarted = [size for name, size in trained.steps if name == "resnet14"]
    assert restarted[0] == 24 and restarted[-1] == 32 and len(restarted) == result.steps_done > 0
    assert model.name == "resnet14" and model.optimizer.iterations.numpy() == result.steps_done
    assert result.elapsed_seconds >= 300


def test_a_run_over_before_its_first_step_is_an_error_not_an_untrained_model(splits, tmp_path):
    ticks = [0.0]

    def clock():
        ticks[0] += 1.0
        return ticks[0]

    with pytest.raises(RuntimeError, match=r"ResNet-8 trained no step: the run was over before its first step"):
        train_tiny(splits, tmp_path, with_overrides(TINY, time_budget_minutes=0.01, train_steps=None), clock=clock)


def test_recheck_converts_a_rate_timed_on_small_crops_with_the_probes_speedup(splits, tmp_path, monkeypatch):
    import cifar_tfx.trainer.train as train_module
    from cifar_tfx.trainer.budget import recheck_network, small_crop_gain

    ticks = [0.0]

    def clock():
        ticks[0] += 1.0
        return ticks[0]

    def probe(network, dataset, runtime, strategy, probe_ds, clock=None, crop_size=None, stem_whitening=None):
        return {(8, None): 1000.0, (32, None): 250.0, (8, 24): 1600.0}[network.depth, crop_size]

    checks, seen = [], []

    class RecordedCheck(train_module.ThroughputCheck):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            checks.append(self)

    def recorded_recheck(measured, chosen, observed, train_examples, seconds_left, *args, **kwargs):
        seen.append((observed, kwargs["speedup"]))
        # what is left of the window phase (the first 300 of the 600 s) counts its images at the probe's x1.6
        assert kwargs["image_gain"] == pytest.approx(small_crop_gain(1.6, 0.5, 600, seconds_left))
        assert kwargs["image_gain"] == pytest.approx(1 + 0.6 * max(seconds_left - 300, 0) / seconds_left)
        assert kwargs["image_gain"] > 1.0
        return recheck_network(measured, chosen, observed, train_examples, seconds_left, *args, **kwargs)

    monkeypatch.setattr(train_module, "measure_throughput", probe)
    monkeypatch.setattr(train_module, "ThroughputCheck", RecordedCheck)
    monkeypatch.setattr(train_module, "recheck_network", recorded_recheck)
    hparams = dataclasses.replace(with_overrides(TINY, time_budget_minutes=600 / 60, budget_min_images=10**9,
                                                 lr_schedule="linear", small_crop_fraction=0.5), depth=None)
    _, result, log = train_tiny(splits, tmp_path, hparams, clock=clock)
    assert result.network_choice["small_crop_speedup"] == pytest.approx(1.6)
    assert "small crops train x1.60 faster" in log
    # the choice counts the images the window phase adds to the whole-image rate
    probe_seconds = result.network_choice["probe_seconds"]
    gain = small_crop_gain(1.6, 0.5, 600, 600 - probe_seconds)
    assert gain == pytest.approx(1 + 0.6 * (300 - probe_seconds) / (600 - probe_seconds))
    assert result.network_choice["image_gain"] == pytest.approx(gain) and 1.25 < gain < 1.3
    assert f"small crops counted, x{gain:.2f})" in log
    # the rate timed on windows is compared as windows: the probe's whole-image prediction times its speedup
    assert seen == [(pytest.approx(checks[0].images_per_second), pytest.approx(1.6))]
    assert result.network_choice["recheck"]["observed_speedup"] == pytest.approx(1.6)
    assert "on small crops" in log and "(the probe's x1.60)" in log
