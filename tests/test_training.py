"""Training and export on small real TFRecords with a real tf.Transform graph."""

import dataclasses
import glob
import io
import json
import os
import re

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

import tensorflow_transform as tft  # noqa: E402
import tf_keras as keras  # noqa: E402

from cifar_tfx.example_format import encode_png, serialize_batch  # noqa: E402
from cifar_tfx.data.datasets import CIFAR10  # noqa: E402
from cifar_tfx.data.synth import make_examples  # noqa: E402
from cifar_tfx.trainer.export import export_saved_model  # noqa: E402
from cifar_tfx.trainer.hparams import DEMO, with_overrides  # noqa: E402
from cifar_tfx.trainer.preprocessing import IMAGE_XF  # noqa: E402
from cifar_tfx.trainer.model import predict_probabilities  # noqa: E402
from cifar_tfx.trainer.train import training_loss, train_model  # noqa: E402
from benchmarks.transform_fixtures import build_transform_output, write_split  # noqa: E402

TINY = with_overrides(DEMO, depth=8, batch_size=32, train_steps=6, shuffle_buffer=64, log_every_seconds=0.0)


@pytest.fixture(scope="module")
def splits(tmp_path_factory):
    root = tmp_path_factory.mktemp("splits")
    train = write_split(str(root / "train" / "data.gz"), 256, seed=11)
    test = write_split(str(root / "test" / "data.gz"), 64, seed=12)
    tft_dir = build_transform_output(train, str(root / "transform"))
    return {"train": [train], "test": [test], "tft": tft.TFTransformOutput(tft_dir)}


@pytest.fixture(autouse=True)
def float32_policy():
    yield
    keras.mixed_precision.set_global_policy("float32")


def _train(splits, tmp_path, hparams=TINY, **kwargs):
    stream = io.StringIO()
    model, result = train_model(train_files=splits["train"], eval_files=splits["test"], tft_output=splits["tft"],
                                hparams=hparams, dataset=CIFAR10, checkpoint_dir=str(tmp_path / "ckpt"),
                                log_dir=str(tmp_path / "logs"), stream=stream, **kwargs)
    return model, result, stream.getvalue()


def test_transform_normalises_with_training_statistics(splits):
    images, _ = make_examples(256, seed=11)
    pixels = images.reshape(-1, 3).astype(np.float64)
    layer = splits["tft"].transform_features_layer()
    png = [[encode_png(image)] for image in images[:4]]
    out = layer({"image": tf.constant(png)})[IMAGE_XF].numpy()
    expected = (images[:4].astype(np.float64) - pixels.mean(axis=0)) / pixels.std(axis=0)
    np.testing.assert_allclose(out, expected, atol=1e-3)


def test_steps_schedule_and_progress(splits, tmp_path):
    hparams = with_overrides(TINY, train_steps=8)
    _, result, log = _train(splits, tmp_path, hparams)
    assert result.steps_done == 8
    assert result.learning_rates == pytest.approx([0.1] * 4 + [0.01] * 2 + [0.001] * 2)
    assert "img/s" in log and "ETA" in log and "eval accuracy" in log
    assert glob.glob(str(tmp_path / "logs" / "train" / "events.out.tfevents.*"))


def test_callbacks_given_to_train_model_watch_every_step(splits, tmp_path):
    class StepCounter(keras.callbacks.Callback):
        rates = []

        def on_train_batch_end(self, batch, logs=None):
            self.rates.append(float(self.model.optimizer.learning_rate.numpy()))

    counter = StepCounter()
    _, result, _ = _train(splits, tmp_path, with_overrides(TINY, train_steps=8), callbacks=[counter])
    assert counter.rates == pytest.approx(result.learning_rates) and len(counter.rates) == 8


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
    _, result, log = _train(splits, tmp_path, hparams, clock=clock)
    rates = result.learning_rates
    assert 0 < len(rates) < 40 and result.elapsed_seconds >= 40
    spent, later = map(float, re.search(  # the end of a budget run, timed on the same clock
        r"budget spent ([\d.]+) s in; the fit and its last checkpoint were done ([\d.]+) s later", log).groups())
    assert 40 <= spent < 45 and later > 0 and spent + later <= result.elapsed_seconds
    assert saved_steps and len(saved_steps) == len(set(saved_steps))  # the stop's step is saved once, not twice
    assert rates[0] == 0.1 and rates[-1] == pytest.approx(0.001)
    assert sorted(set(rates), reverse=True) == pytest.approx([0.1, 0.01, 0.001])
    assert rates == sorted(rates, reverse=True)


def test_resume_after_crash_continues_from_checkpoint(splits, tmp_path):
    hparams = with_overrides(TINY, train_steps=16)  # 256 / 32 = 8 steps per epoch
    first_stop = with_overrides(hparams, train_steps=8)
    # A run planned for 8 steps leaves a checkpoint at step 8, like a crash after epoch 1 would.
    _train(splits, tmp_path, first_stop)
    _, result, log = _train(splits, tmp_path, hparams)
    assert result.resumed_from_step == 8 and result.steps_done == 16
    assert "resuming from" in log
    assert len(result.learning_rates) == 8
    assert result.learning_rates == pytest.approx([0.01] * 4 + [0.001] * 4)
    # Once more: the checkpoint is past the last step, nothing trains, and no rate of 0 img/s is claimed.
    _, again, log = _train(splits, tmp_path, hparams)
    assert again.resumed_from_step == again.steps_done == 16 and again.images_per_second is None
    assert "training had finished at step 16 (resumed from its checkpoint)" in log and "0 img/s" not in log


def test_budget_resume_counts_time_already_spent(splits, tmp_path):
    ticks = [0.0]

    def clock():
        ticks[0] += 1.0
        return ticks[0]

    # First attempt: stopped after 20 fake seconds with its checkpoint (like a crash after a save).
    _, first, _ = _train(splits, tmp_path, with_overrides(TINY, time_budget_minutes=20 / 60), clock=clock)
    assert first.elapsed_seconds >= 20
    # Same checkpoint folder, a budget of which the first attempt spent about 60 %: past the first drop (at half),
    # short of the second (at three quarters). Sized from what the first attempt read off the clock, whose fake
    # seconds are clock reads, so the test does not depend on how many reads a step makes.
    second_budget = first.elapsed_seconds / 0.6
    _, second, log = _train(splits, tmp_path, with_overrides(TINY, time_budget_minutes=second_budget / 60),
                            clock=clock)
    assert second.resumed_from_step == first.steps_done > 0
    assert "s already trained" in log
    assert second.learning_rates[0] == pytest.approx(0.01)
    assert second.elapsed_seconds >= second_budget


@pytest.mark.parametrize("override", [
    {"precision": "mixed_float16"}, {"precision": "mixed_bfloat16"}, {"xla": "on"}, {"distribute": "on"},
])
def test_gpu_code_paths_run_on_cpu(splits, tmp_path, override):
    hparams = with_overrides(TINY, train_steps=2, **override)
    model, result, _ = _train(splits, tmp_path, hparams)
    assert result.steps_done == 2 and np.isfinite(result.eval_loss)
    if "precision" in override:
        assert result.runtime.precision == override["precision"]
        assert model.get_layer("stem_conv").compute_dtype != "float32"
        assert model.output.dtype == tf.float32
    if "xla" in override:
        assert result.runtime.xla
    if "distribute" in override:
        assert result.runtime.mirrored


def test_a_whitened_stem_comes_from_the_training_split_and_stays_fixed_through_phases_and_a_resume(splits, tmp_path):
    from cifar_tfx.trainer.data import cached_examples
    from cifar_tfx.trainer.train import stem_kernel_for
    from cifar_tfx.trainer.whitening import whitening_kernel

    hparams = with_overrides(TINY, whitened_stem=True, small_crop_fraction=0.5, small_crop_size=24, train_steps=8)
    kernel = stem_kernel_for(hparams, splits["train"], splits["tft"])
    assert stem_kernel_for(with_overrides(hparams, whitened_stem=False), splits["train"], splits["tft"]) is None
    # the sample is the first records as Transform normalises them (all 256 of them here)
    images = np.concatenate([batch.numpy() for batch, _ in cached_examples(splits["train"], splits["tft"]).batch(64)])
    np.testing.assert_allclose(kernel, whitening_kernel(images, 16), rtol=1e-4, atol=1e-5)
    model, first, log = _train(splits, tmp_path, hparams)
    assert first.steps_done == 8 and "fixed patch-whitening stem" in log and "crops until 50%" in log
    np.testing.assert_array_equal(model.get_layer("stem_conv").get_weights()[0], kernel)
    model, second, _ = _train(splits, tmp_path, with_overrides(hparams, train_steps=16))
    assert second.resumed_from_step == 8 and second.steps_done == 16 and np.isfinite(second.eval_loss)
    np.testing.assert_array_equal(model.get_layer("stem_conv").get_weights()[0], kernel)


def test_budget_run_probes_chooses_a_depth_and_a_resumed_attempt_keeps_it(splits, tmp_path):
    ticks = [0.0]

    def clock():
        ticks[0] += 1.0
        return ticks[0]

    hparams = dataclasses.replace(with_overrides(TINY, time_budget_minutes=90 / 60, budget_min_images=1500,
                                                 lr_schedule="linear", label_smoothing=0.1), depth=None)
    _, first, log = _train(splits, tmp_path, hparams, clock=clock)
    choice = first.network_choice
    assert first.hparams.depth == choice["value"] and set(choice["measured_images_per_second"]) == {8, 32}
    assert choice["knob"] == "depth" and choice["network"] == f"ResNet-{choice['value']}"
    assert "budget: training ResNet-" in log and "counted in the budget" in log
    assert f"training ResNet-{choice['value']} on 256 images" in log
    assert choice["probe_seconds"] > 0 and first.elapsed_seconds >= 90  # the probe's time is part of the budget
    saved = tmp_path / "ckpt" / "network_choice.json"
    assert saved.exists()
    # a retried attempt on the same checkpoints trains the same network without probing again
    _, second, log = _train(splits, tmp_path, with_overrides(hparams, time_budget_minutes=200 / 60), clock=clock)
    assert second.hparams.depth == choice["value"] and "chosen by the first attempt" in log
    assert second.resumed_from_step == first.steps_done > 0


def test_a_resnet9_budget_run_trains_both_phases_without_a_probe_and_says_what_it_trained(splits, tmp_path):
    ticks = [0.0]

    def clock():
        ticks[0] += 1.0
        return ticks[0]

    sizes = _InputSizes()
    hparams = with_overrides(TINY, architecture="resnet9", time_budget_minutes=40 / 60, lr_schedule="linear",
                             small_crop_fraction=0.5, small_crop_size=24)
    model, result, log = _train(splits, tmp_path, hparams, clock=clock, callbacks=[sizes])
    assert model.name == "resnet9" and result.hparams.depth is None and result.network_choice is None
    assert "probe" not in log and "training ResNet-9 on 256 images" in log
    assert sizes.sizes[0] == 24 and sizes.sizes[-1] == 32 and result.steps_done == len(sizes.sizes)
    assert np.isfinite(result.eval_loss) and result.elapsed_seconds >= 40


def test_a_resnet9_budget_run_probes_two_widths_and_trains_the_one_chosen(splits, tmp_path, monkeypatch):
    import cifar_tfx.trainer.train as train_module

    ticks = [0.0]

    def clock():
        ticks[0] += 3.0  # three fake seconds a read: a 600 s budget is about 60 steps
        return ticks[0]

    probed = []

    def probe(network, dataset, runtime, strategy, probe_ds, clock=None, crop_size=None, stem_kernel=None):
        probed.append((network.architecture, network.width, network.depth))
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
                             lr_schedule="linear", train_steps=None)
    hparams = dataclasses.replace(hparams, width=None)
    assert hparams.network_left_to_probe
    model, result, log = _train(splits, tmp_path, hparams, clock=clock)
    assert probed == [("resnet9", 1, None), ("resnet9", 2, None)]
    assert result.hparams.width == 2 and model.get_layer("stem_conv").filters == 32
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
    model, result, log = _train(splits, tmp_path, hparams, clock=clock)
    (chosen, observed, seconds_left, images_seen), = seen  # rechecked once, after the first epoch
    assert chosen == 8 and observed > 0 and 0 < seconds_left < 600 and images_seen >= 256
    assert "budget: recheck: ResNet-8 trains at" in log and "restarting with ResNet-14" in log
    assert result.hparams.depth == 14 and model.name == "resnet14" and result.elapsed_seconds >= 600
    saved = json.loads((tmp_path / "ckpt" / "network_choice.json").read_text())
    assert (saved["value"], saved["network"], saved["recheck"]["switched_to"]) == (14, "ResNet-14", 14)
    assert result.network_choice["recheck"] == saved["recheck"]
    # the abandoned network's checkpoints are gone: a retried attempt resumes ResNet-14 from its own
    _, again, log = _train(splits, tmp_path, with_overrides(hparams, time_budget_minutes=700 / 60), clock=clock)
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

    def probe(network, dataset, runtime, strategy, probe_ds, clock=None, crop_size=None, stem_kernel=None):
        return {(8, None): 1000.0, (32, None): 250.0, (8, 24): 1600.0}[network.depth, crop_size]

    monkeypatch.setattr(train_module, "measure_throughput", probe)
    monkeypatch.setattr(train_module, "recheck_network", busy_probe_said_8)
    trained = _NetworkAndSize()
    # the clock ticks once per call: the recheck comes before a quarter of the budget, inside the window phase
    hparams = dataclasses.replace(with_overrides(TINY, time_budget_minutes=600 / 60, budget_min_images=10**9,
                                                 lr_schedule="linear", small_crop_fraction=0.5), depth=None)
    model, result, log = _train(splits, tmp_path, hparams, clock=clock, callbacks=[trained])
    assert "restarting with ResNet-14" in log and log.count("training on 24x24 crops until 50%") == 2
    abandoned = {size for name, size in trained.steps if name == "resnet8"}
    assert abandoned == {24}, "the abandoned network stopped on windows"
    restarted = [size for name, size in trained.steps if name == "resnet14"]
    assert restarted[0] == 24 and restarted[-1] == 32 and len(restarted) == result.steps_done > 0
    assert model.name == "resnet14" and model.optimizer.iterations.numpy() == result.steps_done
    assert result.elapsed_seconds >= 600


def test_a_run_over_before_its_first_step_is_an_error_not_an_untrained_model(splits, tmp_path):
    ticks = [0.0]

    def clock():
        ticks[0] += 1.0
        return ticks[0]

    with pytest.raises(RuntimeError, match=r"ResNet-8 trained no step: the run was over before its first step"):
        _train(splits, tmp_path, with_overrides(TINY, time_budget_minutes=0.01, train_steps=None), clock=clock)


class _InputSizes(keras.callbacks.Callback):
    """The image side each training step ran at."""

    def __init__(self):
        super().__init__()
        self.sizes = []

    def on_train_batch_end(self, batch, logs=None):
        self.sizes.append(self.model.input_shape[1])


def test_small_crop_phase_trains_the_same_weights_on_windows_then_whole_images(splits, tmp_path):
    sizes = _InputSizes()
    hparams = with_overrides(TINY, train_steps=8, small_crop_fraction=0.5, small_crop_size=24)
    model, result, log = _train(splits, tmp_path, hparams, callbacks=[sizes])
    assert sizes.sizes == [24] * 4 + [32] * 4
    assert result.steps_done == 8 and result.learning_rates == pytest.approx([0.1] * 4 + [0.01] * 2 + [0.001] * 2)
    assert "training on 24x24 crops until 50% of the run" in log and "24x24 crops for the first 50%" in log
    assert model.input_shape[1:] == (32, 32, 3) and model.optimizer.iterations.numpy() == 8
    # a resumed attempt past the small-crop phase trains on whole images only
    again = _InputSizes()
    _, resumed, log = _train(splits, tmp_path, with_overrides(hparams, train_steps=12), callbacks=[again])
    assert resumed.resumed_from_step == 8 and again.sizes == [32] * 4 and "crops until" not in log


def test_recheck_converts_a_rate_timed_on_small_crops_with_the_probes_speedup(splits, tmp_path, monkeypatch):
    import cifar_tfx.trainer.train as train_module
    from cifar_tfx.trainer.budget import recheck_network, small_crop_gain

    ticks = [0.0]

    def clock():
        ticks[0] += 1.0
        return ticks[0]

    def probe(network, dataset, runtime, strategy, probe_ds, clock=None, crop_size=None, stem_kernel=None):
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
    _, result, log = _train(splits, tmp_path, hparams, clock=clock)
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


def test_both_phases_and_every_epoch_read_one_decoded_copy_of_the_training_split(splits, tmp_path):
    from cifar_tfx.trainer.data import cached_examples, make_dataset, training_batches

    records = tmp_path / "train.gz"
    records.write_bytes(open(splits["train"][0], "rb").read())
    hparams = with_overrides(TINY, shuffle_buffer=64)
    labels = sorted(np.concatenate([y.numpy() for _, y in make_dataset([str(records)], splits["tft"], 64, False,
                                                                        hparams)]))
    examples = cached_examples([str(records)], splits["tft"])
    windows = training_batches(examples, 32, hparams, crop_size=24)
    assert [images.shape[1] for images, _ in windows.take(12)] == [24] * 12  # 1.5 passes over 256 records
    records.unlink()  # from here on, only the cache holds the split
    whole = list(training_batches(examples, 32, hparams).take(16))  # two passes, on whole images
    assert {tuple(images.shape[1:]) for images, _ in whole} == {(32, 32, 3)}
    assert sorted(np.concatenate([y.numpy() for _, y in whole[:8]])) == labels  # a pass: every record once
    with pytest.raises(tf.errors.NotFoundError):  # what a second decoding would have met
        next(iter(training_batches(cached_examples([str(records)], splits["tft"]), 32, hparams)))


def test_a_small_crop_run_decodes_the_training_split_once(splits, tmp_path, monkeypatch):
    import cifar_tfx.trainer.train as train_module

    built = []

    def counted(*args, **kwargs):
        built.append(args)
        return cached_examples(*args, **kwargs)

    from cifar_tfx.trainer.data import cached_examples
    monkeypatch.setattr(train_module, "cached_examples", counted)
    sizes = _InputSizes()
    _train(splits, tmp_path, with_overrides(TINY, train_steps=24, small_crop_fraction=0.5), callbacks=[sizes])
    assert sizes.sizes == [24] * 12 + [32] * 12 and len(built) == 1


def test_label_smoothing_loss_matches_its_definition():
    probabilities = tf.constant([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    labels = tf.constant([0, 2])
    smoothed = training_loss(3, 0.3)(labels, probabilities).numpy()
    targets = np.array([[0.8, 0.1, 0.1], [0.1, 0.1, 0.8]])  # 0.7 on the label + 0.3 / 3 everywhere
    expected = -(targets * np.log(probabilities.numpy())).sum(axis=1)
    np.testing.assert_allclose(smoothed, expected, rtol=1e-5)
    plain = training_loss(3, 0.0)(labels, probabilities).numpy()
    assert plain == pytest.approx(-np.log([0.7, 0.8]).mean(), rel=1e-5)


def test_test_time_flip_serves_the_mirror_average(splits, tmp_path):
    model, _, _ = _train(splits, tmp_path, with_overrides(TINY, train_steps=3, precision="float32"))
    export_dir = export_saved_model(model, splits["tft"], CIFAR10.class_names, str(tmp_path / "export"),
                                    test_time_flip=True)
    shifted_dir = export_saved_model(model, splits["tft"], CIFAR10.class_names, str(tmp_path / "shifted"),
                                     test_time_flip=True, test_time_shift=2)
    images, _ = make_examples(4, seed=5)
    served = tf.saved_model.load(export_dir).signatures["serving_images"](
        images=tf.constant([encode_png(i) for i in images]))["probabilities"].numpy()
    normalised = splits["tft"].transform_features_layer()(
        {"image": tf.constant([[encode_png(i)] for i in images])})[IMAGE_XF]
    plain = model(normalised, training=False).numpy()
    mirrored = model(normalised[:, :, ::-1, :], training=False).numpy()
    np.testing.assert_allclose(served, (plain + mirrored) / 2, atol=1e-5)
    assert not np.allclose(served, plain, atol=1e-4)  # the flip changed something to average
    np.testing.assert_allclose(predict_probabilities(model, normalised, True).numpy(), served, atol=1e-5)
    # with a shift: the mean over the image and its mirror, each also moved 2 pixels down-right and up-left
    views = []
    for view in (normalised.numpy(), normalised.numpy()[:, :, ::-1, :]):
        padded = np.pad(view, [(0, 0), (2, 2), (2, 2), (0, 0)])
        views += [view, padded[:, :32, :32], padded[:, 4:, 4:]]
    expected = np.mean([model(v, training=False).numpy() for v in views], axis=0)
    served_shifted = tf.saved_model.load(shifted_dir).signatures["serving_images"](
        images=tf.constant([encode_png(i) for i in images]))["probabilities"].numpy()
    np.testing.assert_allclose(served_shifted, expected, atol=1e-5)
    assert not np.allclose(served_shifted, served, atol=1e-4)


def test_both_signatures_agree(splits, tmp_path):
    model, _, _ = _train(splits, tmp_path, with_overrides(TINY, train_steps=3))
    export_dir = export_saved_model(model, splits["tft"], CIFAR10.class_names, str(tmp_path / "export"))
    loaded = tf.saved_model.load(export_dir)
    images, labels = make_examples(5, seed=99)
    by_example = loaded.signatures["serving_default"](examples=tf.constant(list(serialize_batch(images, labels))))
    by_image = loaded.signatures["serving_images"](images=tf.constant([encode_png(i) for i in images]))
    np.testing.assert_array_equal(by_example["probabilities"].numpy(), by_image["probabilities"].numpy())
    assert by_example["probabilities"].shape == (5, 10)
    np.testing.assert_allclose(by_example["probabilities"].numpy().sum(axis=1), 1.0, atol=1e-5)
    ids = by_image["class_id"].numpy()
    assert [n.decode() for n in by_image["class_name"].numpy()] == [CIFAR10.class_names[i] for i in ids]


def test_serving_images_rejects_wrong_size(splits, tmp_path):
    model, _, _ = _train(splits, tmp_path, with_overrides(TINY, train_steps=1))
    export_dir = export_saved_model(model, splits["tft"], CIFAR10.class_names, str(tmp_path / "export"))
    loaded = tf.saved_model.load(export_dir)
    small = encode_png(np.zeros((28, 28, 3), np.uint8))
    with pytest.raises(tf.errors.InvalidArgumentError, match="28,28,3"):
        loaded.signatures["serving_images"](images=tf.constant([small]))


def test_exported_warmup_requests_parse_as_tf_serving_logs_and_run(splits, tmp_path):
    from tensorflow_serving.apis import prediction_log_pb2

    model, _, _ = _train(splits, tmp_path, with_overrides(TINY, train_steps=2))
    export_dir = export_saved_model(model, splits["tft"], CIFAR10.class_names, str(tmp_path / "export"),
                                    warmup_image_shape=(32, 32, 3))
    path = os.path.join(export_dir, "assets.extra", "tf_serving_warmup_requests")
    logs = [prediction_log_pb2.PredictionLog.FromString(record.numpy())
            for record in tf.data.TFRecordDataset(path)]
    requests = [log.predict_log.request for log in logs]
    assert sorted(r.model_spec.signature_name for r in requests) == sorted(
        ["serving_images", "serving_default"] * 2)
    loaded = tf.saved_model.load(export_dir)
    for request in requests:  # replayed the way TF Serving does: each input by name into its signature
        signature = loaded.signatures[request.model_spec.signature_name]
        inputs = {name: tf.make_ndarray(tensor) for name, tensor in request.inputs.items()}
        outputs = signature(**{name: tf.constant(value) for name, value in inputs.items()})
        batch = len(next(iter(inputs.values())))
        assert outputs["probabilities"].shape == (batch, 10)
