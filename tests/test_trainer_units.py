"""Model, schedule and augmentation: pure behaviour, no pipeline."""

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from cifar_tfx.trainer.augment import augment_batch, crop_and_flip, cutout_mask  # noqa: E402
from cifar_tfx.trainer.budget import (RECHECK_TOLERANCE, choose_network, predict_throughput, recheck_network,  # noqa: E402
                                      small_crop_gain)
from cifar_tfx.trainer.callbacks import ThroughputCheck  # noqa: E402
from cifar_tfx.trainer.hparams import (BUDGET, DEMO, FULL, HParams, get_profile, profile_for_dataset,  # noqa: E402
                                       with_overrides, with_training_length)
from cifar_tfx.trainer.model import (build_airbench, build_network, build_resnet, build_resnet9,  # noqa: E402
                                     prediction_views, shifted, stem_filters)
from cifar_tfx.trainer.runtime import resolve_runtime  # noqa: E402
from cifar_tfx.trainer.schedule import TrainingClock, learning_rate_at  # noqa: E402

CIFAR_SHAPE = (32, 32, 3)
DROPS = ((0.5, 0.75), (0.1, 0.01))  # the recipe's drops: at 1/2 and 3/4, to x0.1 and x0.01


@pytest.mark.parametrize("depth, paper", [(20, 0.27e6), (56, 0.85e6), (110, 1.7e6)])
def test_parameter_counts_match_the_paper(depth, paper):
    model = build_resnet(depth, CIFAR_SHAPE, 10, FULL.weight_decay)
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert abs(trainable / paper - 1) < 0.02, trainable


def test_resnet56_structure():
    model = build_resnet(56, CIFAR_SHAPE, 10, FULL.weight_decay)
    convs = [layer for layer in model.layers if isinstance(layer, tf.keras.layers.Conv2D.__mro__[0]) or "conv" in layer.name]
    three_by_three = [layer for layer in convs if getattr(layer, "kernel_size", None) == (3, 3)]
    assert len(three_by_three) == 55  # 1 stem + 54 in blocks; + the dense layer = 56 weighted layers
    assert [layer.strides for layer in convs if layer.name.endswith("_proj")] == [(2, 2), (2, 2)]
    assert model.output_shape == (None, 10)
    assert model.get_layer("stage3_block9_out").output_shape == (None, 8, 8, 64)
    assert model.get_layer("stem_conv").kernel_regularizer.l2 == pytest.approx(1e-4)


def test_width_multiplies_every_stages_filters():
    recipe = build_resnet(8, CIFAR_SHAPE, 10, FULL.weight_decay)
    wide = build_resnet(8, CIFAR_SHAPE, 10, FULL.weight_decay, width=2)
    assert [wide.get_layer(f"stage{s}_block1_out").output_shape[-1] for s in (1, 2, 3)] == [32, 64, 128]
    assert wide.get_layer("stem_conv").filters == 32
    weights = [sum(int(np.prod(w.shape)) for w in m.trainable_weights) for m in (recipe, wide)]
    assert 3.8 < weights[1] / weights[0] < 4.0  # conv weights x4; the dense layer's inputs only x2
    with pytest.raises(ValueError, match="width"):
        HParams(width=0)


def test_input_shape_follows_the_data():
    model = build_resnet(20, (28, 28, 1), 10, FULL.weight_decay)
    assert model.input_shape == (None, 28, 28, 1)
    assert model.get_layer("stage3_block3_out").output_shape == (None, 7, 7, 64)


def test_depth_must_be_6n_plus_2():
    with pytest.raises(ValueError, match="6n\\+2"):
        build_resnet(21, CIFAR_SHAPE, 10, FULL.weight_decay)
    with pytest.raises(ValueError, match="6n\\+2"):
        HParams(depth=18)


def test_step_schedule_switches_exactly_at_half_and_three_quarters():
    clock = TrainingClock(planned_steps=200)
    rates = [learning_rate_at(clock.fraction_done(step), 0.1, *DROPS) for step in range(200)]
    assert rates[:100] == [0.1] * 100
    assert rates[100:150] == [pytest.approx(0.01)] * 50
    assert rates[150:] == [pytest.approx(0.001)] * 50
    assert not clock.finished(199) and clock.finished(200)


def test_budget_schedule_switches_at_elapsed_time_with_injected_clock():
    now = [1000.0]
    clock = TrainingClock(budget_seconds=600.0, clock=lambda: now[0])
    seen = {}
    for second in range(0, 601, 1):
        now[0] = 1000.0 + second
        seen[second] = learning_rate_at(clock.fraction_done(step=0), 0.1, *DROPS)
    assert seen[299] == 0.1 and seen[300] == pytest.approx(0.01)
    assert seen[449] == pytest.approx(0.01) and seen[450] == pytest.approx(0.001)
    now[0] = 1599.0
    assert not clock.finished(0)
    now[0] = 1600.0
    assert clock.finished(0)


def test_linear_schedule_reaches_zero_at_the_end_after_its_warm_up():
    clock = TrainingClock(planned_steps=100)
    rates = [learning_rate_at(clock.fraction_done(step), 0.1, *DROPS, schedule="linear", warmup_fraction=0.1)
             for step in range(100)]
    assert rates[0] == pytest.approx(0.1 * 0.1)                       # warm-up starts at 10 %
    assert rates[5] == pytest.approx(0.1 * 0.95 * (0.1 + 0.9 * 0.5))  # half-way through the warm-up
    assert rates[10] == pytest.approx(0.09)                           # warm-up over: plain linear decay
    assert rates[50] == pytest.approx(0.05) and rates[99] == pytest.approx(0.001)
    assert rates[10:] == sorted(rates[10:], reverse=True)
    assert learning_rate_at(1.2, 0.1, *DROPS, schedule="linear") == 0.0  # a budget overrun never goes negative
    with pytest.raises(ValueError, match="schedule"):
        learning_rate_at(0.5, 0.1, *DROPS, schedule="cosine")


def test_throughput_fit_is_a_line_in_blocks_per_stage():
    # seconds/image = 1e-4 + 2e-4 * n exactly: the fit recovers every candidate
    rate = {depth: 1 / (1e-4 + 2e-4 * ((depth - 2) // 6)) for depth in (8, 14, 20, 32, 44, 56)}
    predicted = predict_throughput({8: rate[8], 32: rate[32]})
    assert predicted == pytest.approx(rate)
    with pytest.raises(ValueError, match="two different depths"):
        predict_throughput({20: 1000.0})


def test_budget_picks_the_deepest_network_that_sees_enough_images():
    measured = {8: 2500.0, 32: 700.0}
    choice = choose_network(measured, train_examples=20_000, seconds_left=1770, min_images=1_000_000)
    assert choice.images[choice.value] >= 1_000_000 * choice.value / 20
    deeper = [d for d in choice.images if d > choice.value]
    assert deeper and all(choice.images[d] < 1_000_000 * d / 20 for d in deeper)
    assert f"ResNet-{choice.value} (the largest that sees what it needs; " in choice.reason()
    # a deeper network needs more: the 30-minute Fashion-MNIST probe (ResNet-8 3,120 img/s, ResNet-32
    # 804 img/s) would give ResNet-56 its 0.8M images, but ResNet-32 is the deepest that sees d/20 x 0.7M
    fashion = choose_network({8: 3120.0, 32: 804.0}, 60_000, 29.4 * 60, 700_000)
    assert fashion.images[56] > 700_000 and fashion.value == 32
    # more time buys a deeper network; less time a shallower one
    assert choose_network(measured, 20_000, 4 * 1770, 1_000_000).value > choice.value
    assert choose_network(measured, 20_000, 1770 / 4, 1_000_000).value < choice.value
    # nothing sees enough: the shallowest trains, and the log says so
    tiny = choose_network(measured, 60_000, 60, 1_000_000)
    assert tiny.value == 8 and "none sees what it needs" in tiny.reason()
    # a probe longer than the budget leaves no time, and the log does not claim a negative amount
    overspent = choose_network(measured, 60_000, -18.0, 1_000_000)
    assert overspent.value == 8 and "in the 0.0 min left" in overspent.reason()


def test_small_crops_count_as_images_in_the_depth_choice():
    # a 900 s budget whose first 2/3 trains x1.5 faster: with 600 s left, half of them are on crops, x1.25
    assert small_crop_gain(1.5, 2 / 3, 900, 600) == pytest.approx(1.25)
    # crop time left is clipped: all of the time left on crops, or none of it (the crop phase is over)
    assert small_crop_gain(1.5, 1.0, 900, 600) == pytest.approx(1.5) and small_crop_gain(1.5, 0.3, 900, 600) == 1.0
    assert small_crop_gain(None, 0.5, 900, 600) == 1.0 and small_crop_gain(1.5, 0.5, 900, 0) == 1.0
    # a 5-minute curve run (2026-12-01, f8eeec1) probed ResNet-8 at 2,700 and ResNet-32 at 592 img/s; with twice the
    # time left, whole images alone leave ResNet-14 short of its 0.84M, and the window phase's images reach it
    probe, seconds_left = {8: 2700.0, 32: 592.0}, 2 * 4.3 * 60
    whole = choose_network(probe, 50_000, seconds_left, 1_200_000)
    gain = small_crop_gain(1.34, 0.5, seconds_left, seconds_left)  # probed at the start: half the time on crops
    counted = choose_network(probe, 50_000, seconds_left, 1_200_000, image_gain=gain)
    assert whole.value == 8 and whole.images[14] < 840_000 and "small crops counted" not in whole.reason()
    assert counted.value == 14 and counted.images[14] == pytest.approx(whole.images[14] * 1.17)
    assert "small crops counted, x1.17)" in counted.reason() and counted.to_json()["image_gain"] == gain
    # a recheck that chooses again counts them too
    slowed = recheck_network(probe, 14, 0.7 * counted.predicted[14], 50_000, seconds_left - 60, 1_200_000,
                           image_gain=gain)
    assert slowed.choice is not None and slowed.choice.image_gain == gain


def test_recheck_corrects_a_probe_disturbed_by_another_process():
    # issue 19's loaded run: a busy core during the probe measured ResNet-8 at 1,391 and ResNet-32 at
    # 439 img/s, the rule chose ResNet-14, and ResNet-14 then trained at ~1,440 img/s
    probe = {8: 1391.0, 32: 439.0}
    assert choose_network(probe, 50_000, 1751, 1_200_000).value == 14
    two_minutes_in = recheck_network(probe, 14, 1440.0, 50_000, 1600, 1_200_000, images_seen=1440.0 * 110)
    assert two_minutes_in.switched and two_minutes_in.value == 20
    assert two_minutes_in.predicted == pytest.approx(902, abs=1)
    assert "off by x1.60" in two_minutes_in.reason() and "restarting with ResNet-20" in two_minutes_in.reason()
    # JSON keys (a saved choice) are strings; an idle probe confirmed by training keeps its choice
    idle = recheck_network({"8": 2159.0, "32": 637.0}, 20, 974.0, 50_000, 1600, 1_200_000)
    assert not idle.switched and idle.choice is None and "keeps ResNet-20" in idle.reason()
    assert abs(974.0 / idle.predicted - 1) < RECHECK_TOLERANCE


def test_recheck_compares_a_rate_timed_on_small_crops_with_the_prediction_times_their_speedup():
    # a 30-minute run at ca8ac14 (2026-12-01): the probe (ResNet-8 2,789, ResNet-32 650 img/s; windows x1.55) chose
    # ResNet-20, which then trained at about 1,555 img/s on 24x24 windows
    probe = {8: 2789.0, 32: 650.0}
    on_windows = recheck_network(probe, 20, 1555.0, 50_000, 1700, 1_200_000, images_seen=1555.0 * 60, speedup=1.55)
    assert on_windows.choice is None and on_windows.ratio == pytest.approx(1555.0 / 1.55 / on_windows.predicted)
    assert "on small crops, 1,003 as whole images (the probe's x1.55)" in on_windows.reason()
    assert on_windows.to_json()["observed_speedup"] == pytest.approx(1.55)
    # read as whole images, the same rate looks far above the prediction and the choice is made again
    as_whole = recheck_network(probe, 20, 1555.0, 50_000, 1700, 1_200_000, images_seen=1555.0 * 60)
    assert as_whole.choice is not None and as_whole.ratio > 1 + RECHECK_TOLERANCE


def test_recheck_counts_what_the_running_network_has_already_seen():
    # training 29 % slower than predicted: from scratch ResNet-20 would fall short of its 1.2M images in
    # the time left, but with the images it has already trained on it still gets there; a little slower
    # and it does not, and the run restarts with ResNet-14
    probe = {8: 2159.0, 32: 637.0}
    slowed = recheck_network(probe, 20, 700.0, 50_000, 1600, 1_200_000, images_seen=700.0 * 150)
    assert slowed.choice is not None and not slowed.switched and "still ResNet-20" in slowed.reason()
    assert recheck_network(probe, 20, 700.0, 50_000, 1600, 1_200_000).value == 14
    assert recheck_network(probe, 20, 600.0, 50_000, 1600, 1_200_000, images_seen=600.0 * 150).value == 14


class _Model:  # what ThroughputCheck reads of a Keras model
    def __init__(self):
        self.optimizer = type("Optimizer", (), {"iterations": tf.Variable(0, dtype=tf.int64)})()
        self.stop_training = False


def test_throughput_check_times_steady_training_after_the_first_epoch_once():
    now = [0.0]
    calls = []
    clock = TrainingClock(budget_seconds=1000.0, clock=lambda: now[0])
    check = ThroughputCheck(clock, batch_size=100, decide=lambda *args: calls.append(args) or True,
                            window_seconds=30.0, now=lambda: now[0])
    check.set_model(_Model())
    # the first epoch (10 steps) runs at 2 s/step, filling the cache; then 0.5 s/step
    _drive_from(check, now, 1, 10, 2.0)
    check.on_epoch_end(0)
    stopped_at = _drive_from(check, now, 11, 200, 0.5)
    (rate, seconds_left, images_seen), = calls  # called once
    assert rate == pytest.approx(200.0)  # 100 images per 0.5 s, the slow first epoch left out
    assert seconds_left == pytest.approx(1000.0 - now[0]) and images_seen == stopped_at * 100
    assert check.model.stop_training and check.images_per_second == rate


def _drive_from(check, now, first, last, seconds_per_step):
    for step in range(first, last + 1):
        now[0] += seconds_per_step
        check.model.optimizer.iterations.assign(step)
        check.on_train_batch_end(step)
        if check.model.stop_training:
            return step
    return last


def test_throughput_check_is_skipped_when_a_restart_would_waste_too_much():
    now = [0.0]
    calls = []
    clock = TrainingClock(budget_seconds=100.0, clock=lambda: now[0])  # a 100 s budget: 25 s is too late
    check = ThroughputCheck(clock, 100, lambda *args: calls.append(args) or True, window_seconds=30.0,
                            now=lambda: now[0])
    check.set_model(_Model())
    check.on_epoch_end(0)
    _drive_from(check, now, 1, 100, 0.5)
    assert not calls and not check.model.stop_training and check.images_per_second is None


def test_shifted_moves_the_image_and_fills_with_the_mean():
    image = tf.reshape(tf.range(1, 17, dtype=tf.float32), [1, 4, 4, 1])
    down_right = shifted(image, 1).numpy()[0, ..., 0]
    up_left = shifted(image, -1).numpy()[0, ..., 0]
    source = image.numpy()[0, ..., 0]
    np.testing.assert_array_equal(down_right[1:, 1:], source[:-1, :-1])
    assert (down_right[0] == 0).all() and (down_right[:, 0] == 0).all()
    np.testing.assert_array_equal(up_left[:-1, :-1], source[1:, 1:])
    assert (up_left[-1] == 0).all() and (up_left[:, -1] == 0).all()
    np.testing.assert_array_equal(shifted(image, 0).numpy(), image.numpy())
    assert prediction_views(False) == ((False, 0),)
    assert prediction_views(True, 2) == ((False, 0), (False, 2), (False, -2), (True, 0), (True, 2), (True, -2))


def test_budget_profile_leaves_depth_to_the_run_and_only_to_a_budgeted_one():
    assert BUDGET.depth is None and BUDGET.time_budget_minutes and BUDGET.epochs is None
    assert HParams.from_json(BUDGET.to_json()) == BUDGET
    assert with_overrides(BUDGET, depth=20).depth == 20  # an explicit depth always wins
    with pytest.raises(ValueError, match="only in a time-budgeted run"):
        with_overrides(BUDGET, epochs=10.0)
    with pytest.raises(ValueError, match="picks its depth from a time budget"):
        with_training_length(BUDGET, epochs=10.0)
    assert with_training_length(BUDGET, minutes=5.0).time_budget_minutes == 5.0
    for field, value in (("lr_schedule", "cosine"), ("label_smoothing", 0.9), ("warmup_fraction", -0.1)):
        with pytest.raises(ValueError, match=field):
            with_overrides(BUDGET, **{field: value})


def test_cifar_budget_trains_resnet9_with_its_width_left_to_the_run():
    from cifar_tfx.data.datasets import CIFAR10, FASHION_MNIST
    from cifar_tfx.trainer.hparams import with_run_values

    cifar = profile_for_dataset("budget", CIFAR10)
    assert (cifar.architecture, cifar.depth, cifar.width, cifar.network_left_to_probe) == ("resnet9", None, None, True)
    fashion = profile_for_dataset("budget", FASHION_MNIST)
    assert (fashion.architecture, fashion.depth, fashion.width) == ("resnet", None, 1)
    assert CIFAR10.budget_min_images_for("resnet9") == CIFAR10.budget_min_images_resnet9 != CIFAR10.budget_min_images
    # a width fixes it; a depth names a ResNet; the other architecture leaves its own size open
    assert with_overrides(cifar, width=2).network_name == "ResNet-9 x2"
    assert (with_overrides(cifar, depth=20).architecture, with_overrides(cifar, depth=20).width) == ("resnet", 1)
    back = with_overrides(cifar, architecture="resnet")
    assert (back.depth, back.width, back.size_knob, back.network_left_to_probe) == (None, 1, "depth", True)
    # as Kubeflow run parameters: 0 keeps the width open, a number fixes it
    assert with_run_values(cifar, {"width": 0}).width is None and with_run_values(cifar, {"width": 2}).width == 2
    with pytest.raises(ValueError, match="picks its width from a time budget; give minutes, or compile with --width"):
        with_training_length(cifar, epochs=10.0)
    with pytest.raises(ValueError, match="width can be left to the trainer only in a time-budgeted resnet9 or airbench"):
        HParams(width=None)
    # a whitened stem leaves the width to the probe too: each probed width cuts its own stem
    assert with_overrides(cifar, whitened_stem=True).network_left_to_probe


def test_resnet9_width_choice_fits_a_line_in_width_squared_and_picks_the_widest_that_sees_enough():
    from cifar_tfx.trainer.budget import RESNET9_WIDTHS

    # seconds/image = 2e-4 + 3e-4 * w^2 exactly: the fit recovers width 4 from widths 1 and 2
    rate = {width: 1 / (2e-4 + 3e-4 * width * width) for width in (1, 2, 4)}
    assert predict_throughput({1: rate[1], 2: rate[2]}, RESNET9_WIDTHS) == pytest.approx(rate)
    # measured on 2 cores (2026-12-02): width 1 at ~1,700 and width 2 at ~650 whole images/s; 29 minutes left with the
    # first half on windows x1.6 give width 2 its 1.0M images, 9 minutes do not
    probe, gain = {1: 1700.0, 2: 650.0}, small_crop_gain(1.6, 0.5, 1800, 1740)
    thirty = choose_network(probe, 50_000, 1740, 1_000_000, RESNET9_WIDTHS, image_gain=gain)
    assert thirty.value == 2 and thirty.network == "ResNet-9 x2" and thirty.images[4] < 2_000_000
    assert "-> ResNet-9 x2 (the largest that sees what it needs; " in thirty.reason()
    assert "ResNet-9 x2 1.00M, scaled by width" in thirty.reason()
    ten = choose_network(probe, 50_000, 540, 1_000_000, RESNET9_WIDTHS, image_gain=gain)
    assert ten.value == 1 and ten.to_json()["network"] == "ResNet-9" and ten.to_json()["knob"] == "width"
    # an accelerator's rates afford Myrtle's own width
    assert choose_network({1: 20_000.0, 2: 12_000.0}, 50_000, 1740, 1_000_000, RESNET9_WIDTHS).value == 4
    # a busy probe chose width 1; steady training shows the machine is faster, and width 2 takes over
    busy = choose_network({1: 1000.0, 2: 380.0}, 50_000, 1740, 1_000_000, RESNET9_WIDTHS)
    assert busy.value == 1
    corrected = recheck_network({"1": 1000.0, "2": 380.0}, 1, 1700.0, 50_000, 1650, 1_000_000,
                                ladder=RESNET9_WIDTHS)
    assert corrected.switched and corrected.value == 2 and "restarting with ResNet-9 x2" in corrected.reason()
    assert corrected.to_json()["switched_to_network"] == "ResNet-9 x2"


def test_budget_counts_time_of_earlier_attempts():
    now = [0.0]
    clock = TrainingClock(budget_seconds=100.0, elapsed_before=60.0, clock=lambda: now[0])
    assert learning_rate_at(clock.fraction_done(0), 0.1, *DROPS) == pytest.approx(0.01)  # 60 % done
    now[0] = 40.0
    assert clock.finished(0)


def test_profiles_and_overrides():
    assert get_profile("full").depth == 56 and FULL.batch_size == 128 and FULL.cutout_size == 16
    assert FULL.planned_steps(50_000) == 64_062  # ≈ the paper's 64k iterations
    assert DEMO.depth < 20
    budget = with_overrides(FULL, time_budget_minutes=30.0, depth=20)
    assert budget.epochs is None and budget.planned_steps(50_000) is None and budget.depth == 20
    assert HParams.from_json(budget.to_json()) == budget
    with pytest.raises(KeyError, match="known: budget, demo, full"):
        get_profile("huge")


def test_runtime_auto_rules():
    assert resolve_runtime(FULL, gpus=0) == resolve_runtime(FULL, 0)
    cpu = resolve_runtime(FULL, gpus=0)
    assert (cpu.precision, cpu.xla, cpu.mirrored) == ("float32", False, False)
    one = resolve_runtime(FULL, gpus=1)
    assert (one.precision, one.xla, one.mirrored) == ("mixed_float16", True, False)
    assert resolve_runtime(FULL, gpus=4).mirrored
    assert resolve_runtime(FULL, gpus=0, cpu_bf16=True).precision == "mixed_bfloat16"
    assert resolve_runtime(FULL, gpus=1, cpu_bf16=True).precision == "mixed_float16"
    assert resolve_runtime(with_overrides(FULL, precision="float32"), 0, cpu_bf16=True).precision == "float32"
    forced = resolve_runtime(with_overrides(FULL, precision="mixed_bfloat16", xla="off", distribute="on"), 0)
    assert (forced.precision, forced.xla, forced.mirrored) == ("mixed_bfloat16", False, True)


def test_cpu_bf16_detection(tmp_path):
    from cifar_tfx.trainer.runtime import detect_cpu_bf16

    (tmp_path / "with").write_text("processor\t: 0\nflags\t\t: fpu sse2 avx512f avx512_bf16\n")
    (tmp_path / "without").write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2\n")
    assert detect_cpu_bf16(str(tmp_path / "with")) and not detect_cpu_bf16(str(tmp_path / "without"))
    assert not detect_cpu_bf16(str(tmp_path / "missing"))


def test_cutout_zeroes_one_square_of_the_right_size():
    mask = cutout_mask(3, 32, 32, 16, centres=tf.constant([[16, 16], [0, 0], [31, 20]]))
    zeros = (mask.numpy()[..., 0] == 0)
    assert zeros[0].sum() == 256 and zeros[0][8:24, 8:24].all()
    assert zeros[1].sum() == 8 * 8 and zeros[1][:8, :8].all()  # clipped at the corner
    assert zeros[2].sum() == 9 * 16 and zeros[2][23:, 12:28].all()


def test_augment_batch_random_cutout_per_image_and_pixels_preserved():
    images = tf.random.uniform([64, 32, 32, 3], 1.0, 2.0)  # no zeros before augmentation
    out = augment_batch(images, padding=0, flip=False, cutout_size=16).numpy()
    zero_pixels = (out == 0).all(axis=-1).sum(axis=(1, 2))
    assert ((zero_pixels >= 64) & (zero_pixels <= 256)).all()  # one (possibly clipped) square each
    assert (zero_pixels == 256).any() and len(set(zero_pixels.tolist())) > 1
    kept = out != 0
    np.testing.assert_array_equal(out[kept], images.numpy()[kept])


def test_crop_and_flip_are_shifts_and_mirrors():
    images = tf.reshape(tf.range(2 * 32 * 32 * 1, dtype=tf.float32) + 1, [2, 32, 32, 1])
    out = crop_and_flip(images, 4, flip=True).numpy()[..., 0]
    source = images.numpy()[..., 0]
    for index in range(2):
        padded = np.pad(source[index], 4)
        matches = [(dy, dx, f) for dy in range(9) for dx in range(9) for f in (False, True)
                   if np.array_equal(out[index], (padded[dy:dy + 32, dx:dx + 32][:, ::-1] if f
                                                  else padded[dy:dy + 32, dx:dx + 32]))]
        assert matches, "every output is a crop of the padded image, possibly mirrored"


def test_augmentation_varies_between_calls():
    images = tf.random.uniform([8, 32, 32, 3], 1.0, 2.0)
    first = augment_batch(images, 4, True, 16).numpy()
    second = augment_batch(images, 4, True, 16).numpy()
    assert not np.array_equal(first, second)


def test_a_task_given_gpus_fails_when_tensorflow_sees_fewer():
    from cifar_tfx.trainer.runtime import MissingGpuError, check_gpus

    cpu = ["/physical_device:CPU:0"]
    two_gpus = cpu + ["/physical_device:GPU:0", "/physical_device:GPU:1"]
    assert check_gpus(0, cpu) == "devices: TensorFlow sees 0 GPU(s) and 1 other device(s)"
    assert "2 GPU(s)" in check_gpus(2, two_gpus) and "GPU:1" in check_gpus(1, two_gpus)
    with pytest.raises(MissingGpuError, match="asked for 1 GPU.*sees 0.*--allow-cpu-fallback"):
        check_gpus(1, cpu)
    with pytest.raises(MissingGpuError, match="asked for 3 GPU"):
        check_gpus(3, two_gpus)


@pytest.mark.parametrize("zero_init", [True, False])
def test_zero_init_residual_makes_every_block_start_as_its_shortcut(zero_init):
    model = build_resnet(14, CIFAR_SHAPE, 10, FULL.weight_decay, zero_init_residual=zero_init)
    import tf_keras as keras

    names = ("stem_relu", "stage1_block1_out", "stage1_block2_out")
    outputs = keras.Model(model.input, [model.get_layer(name).output for name in names])(
        tf.random.normal([4, *CIFAR_SHAPE]), training=False)
    stem, block1, block2 = (tf.cast(output, tf.float32).numpy() for output in outputs)
    # identity blocks: out = relu(shortcut + bn2(...)), and the shortcut is already non-negative
    assert np.allclose(block1, stem) == zero_init
    assert np.allclose(block2, stem) == zero_init
    scales = [layer.gamma.numpy() for layer in model.layers if layer.name.endswith("_bn2")]
    assert len(scales) == 6 and all(not scale.any() for scale in scales) == zero_init


def test_nesterov_reaches_the_optimizer():
    from cifar_tfx.data.datasets import get_dataset
    from cifar_tfx.trainer.train import build_and_compile

    runtime = resolve_runtime(DEMO, gpus=0)
    for nesterov in (True, False):
        model = build_and_compile(with_overrides(DEMO, nesterov=nesterov), get_dataset("cifar10"), runtime)
        assert model.optimizer.nesterov is nesterov


def test_small_crops_are_windows_of_each_image_at_offsets_drawn_per_image():
    from cifar_tfx.trainer.augment import small_crops

    images = tf.reshape(tf.range(64 * 8 * 8 * 1, dtype=tf.float32), [64, 8, 8, 1])
    out = small_crops(images, 5).numpy()
    assert out.shape == (64, 5, 5, 1)
    offsets = set()
    for image, window in zip(images.numpy(), out):
        row, col = np.argwhere(image[..., 0] == window[0, 0, 0])[0]
        np.testing.assert_array_equal(window, image[row:row + 5, col:col + 5])
        offsets.add((row, col))
    assert len(offsets) > 4 and all(r <= 3 and c <= 3 for r, c in offsets)
    with pytest.raises(ValueError, match="do not fit"):
        small_crops(images, 9)


def test_resnet9_pools_three_stages_adds_two_residual_blocks_and_scales_its_logits():
    model = build_resnet9(CIFAR_SHAPE, 10, 5e-4)
    assert [model.get_layer(f"stage{s}_pool").output_shape for s in (1, 2, 3)] == [
        (None, 16, 16, 32), (None, 8, 8, 64), (None, 4, 4, 128)]
    assert sorted(layer.name for layer in model.layers if layer.name.endswith("_add")) == ["stage1_add", "stage3_add"]
    assert model.get_layer("logit_scale").scale == 0.125 and model.output_shape == (None, 10)
    assert model.get_layer("stage2_conv").kernel_regularizer.l2 == pytest.approx(5e-4)
    fashion = build_resnet9((28, 28, 1), 10, 5e-4, width=2)  # a side that 8 does not divide
    assert fashion.get_layer("stage3_pool").output_shape == (None, 3, 3, 256)
    small = build_resnet9((24, 24, 3), 10, 5e-4, weights_from=model)  # the small-crop phase's copy
    assert [id(v) for v in small.weights] == [id(v) for v in model.weights]


def test_airbench_shape_pools_three_plain_stages_from_a_fixed_size_stem_and_scales_its_logits():
    model = build_airbench(CIFAR_SHAPE, 10, 5e-4, width=4)
    assert model.get_layer("stem_conv").filters == 24
    assert [model.get_layer(f"stage{s}_a_pool").output_shape for s in (1, 2, 3)] == [
        (None, 16, 16, 64), (None, 8, 8, 256), (None, 4, 4, 256)]
    assert model.get_layer("stage3_b_conv").output_shape == (None, 4, 4, 256)
    assert not [layer.name for layer in model.layers if isinstance(layer, tf.keras.layers.Add.__mro__[0])
                and "add" in layer.name]  # no shortcuts
    assert model.get_layer("logit_scale").scale == pytest.approx(1 / 9) and model.output_shape == (None, 10)
    # airbench94's network has 1.97M weights; here the stem is 3x3 (not 2x2) and the BatchNorms keep a scale
    assert 1.9e6 < model.count_params() < 2.05e6
    assert build_airbench(CIFAR_SHAPE, 10, 5e-4, width=2).get_layer("stem_conv").filters == 24  # the stem stays
    small = build_airbench((24, 24, 3), 10, 5e-4, weights_from=model, width=4)  # the small-crop phase's copy
    assert [id(v) for v in small.weights] == [id(v) for v in model.weights]
    assert build_airbench((28, 28, 1), 10, 5e-4, width=1).get_layer("stage3_b_conv").output_shape == (None, 3, 3, 64)


def test_airbench_is_sized_by_width_its_whitened_stem_fixed_whatever_the_width():
    from cifar_tfx.data.datasets import CIFAR10

    cifar = with_overrides(profile_for_dataset("budget", CIFAR10), architecture="airbench")
    assert (cifar.depth, cifar.width, cifar.size_knob, cifar.network_left_to_probe) == (None, None, "width", True)
    assert cifar.network_name == "Airbench (width left to the budget)"
    assert with_overrides(cifar, width=4).network_name == "Airbench x4"
    # unlike ResNet-9's, the stem does not grow with width: whitening it needs no width
    open_whitened = with_overrides(cifar, whitened_stem=True)
    assert open_whitened.whitened_stem and open_whitened.width is None
    assert stem_filters(with_overrides(cifar, width=3)) == 24 == stem_filters(with_overrides(cifar, width=4))
    assert stem_filters(with_overrides(FULL, width=2)) == 32
    assert build_network(with_overrides(cifar, width=3), CIFAR_SHAPE, 10).name == "airbench"
    assert CIFAR10.budget_min_images_for("airbench") == CIFAR10.budget_min_images_airbench
    with pytest.raises(ValueError, match="airbench has none, got depth 20"):
        HParams(architecture="airbench", depth=20, width=4)
    with pytest.raises(ValueError, match="zero_init_residual is for networks with residual blocks; airbench has none"):
        with_overrides(cifar, width=4, zero_init_residual=True)


def test_airbench_width_choice_fits_width_squared_and_scales_the_need_from_width_4():
    from cifar_tfx.trainer.budget import AIRBENCH_WIDTHS

    rate = {width: 1 / (3e-4 + 1.2e-4 * width * width) for width in (2, 3, 4)}
    assert predict_throughput({2: rate[2], 4: rate[4]}, AIRBENCH_WIDTHS) == pytest.approx(rate)
    # width 4 at ~440 img/s sees 0.77M images in 29 minutes: more than its 0.5M
    thirty = choose_network({2: rate[2], 4: rate[4]}, 45_000, 1740, 500_000, AIRBENCH_WIDTHS)
    assert thirty.value == 4 and thirty.network == "Airbench x4"
    # in 15 minutes width 4 sees 0.40M of its 0.5M; width 3 (needs 3/4 of it) sees 0.58M of 0.375M
    fifteen = choose_network({2: rate[2], 4: rate[4]}, 45_000, 900, 500_000, AIRBENCH_WIDTHS)
    assert fifteen.value == 3 and "Airbench x4 0.50M, scaled by width" in fifteen.reason()
    # too little time for any: the smallest trains
    assert choose_network({2: rate[2], 4: rate[4]}, 45_000, 60, 500_000, AIRBENCH_WIDTHS).value == 2


def test_the_architecture_decides_which_network_is_built_and_what_it_is_called():
    resnet9 = with_overrides(FULL, architecture="resnet9")  # drops the profile's depth 56
    assert resnet9.depth is None and resnet9.network_name == "ResNet-9" and not resnet9.network_left_to_probe
    assert build_network(resnet9, CIFAR_SHAPE, 10).name == "resnet9"
    assert build_network(with_overrides(resnet9, width=2), CIFAR_SHAPE, 10).get_layer("stem_conv").filters == 32
    assert build_network(FULL, CIFAR_SHAPE, 10).name == "resnet56" and FULL.network_name == "ResNet-56"
    assert BUDGET.network_left_to_probe and with_overrides(BUDGET, architecture="resnet9").network_left_to_probe
    assert not with_overrides(BUDGET, architecture="resnet9", width=2).network_left_to_probe
    assert with_overrides(FULL, architecture="resnet9", width=2).network_name == "ResNet-9 x2"
    with pytest.raises(ValueError, match="resnet9 has none, got depth 20"):
        with_overrides(FULL, architecture="resnet9", depth=20)
    with pytest.raises(ValueError, match="architecture must be one of resnet, resnet9"):
        HParams(architecture="vgg")
    # counted in epochs: a resnet9 with its width needs no depth; the budget profile's resnet still does
    assert with_training_length(with_overrides(BUDGET, architecture="resnet9", width=2), epochs=3).epochs == 3


def test_a_network_for_small_crops_shares_every_weight_with_the_whole_image_one():
    full = build_resnet(14, (32, 32, 3), 10, 1e-4)
    small = build_resnet(14, (24, 24, 3), 10, 1e-4, weights_from=full)
    assert small.input_shape == (None, 24, 24, 3) and small.count_params() == full.count_params()
    assert [id(v) for v in small.weights] == [id(v) for v in full.weights]


def test_budget_profile_trains_cifar_on_small_crops_first_and_checks_they_fit():
    from cifar_tfx.data.datasets import CIFAR10, FASHION_MNIST

    assert profile_for_dataset("budget", CIFAR10).small_crop_fraction == CIFAR10.budget_small_crop_fraction > 0
    assert profile_for_dataset("budget", FASHION_MNIST).small_crop_fraction == 0.0
    with pytest.raises(ValueError, match="small_crop_size 28"):
        with_overrides(BUDGET, small_crop_fraction=0.5, small_crop_size=28).check_fits(28, 28)
    with_overrides(BUDGET, small_crop_fraction=0.0, small_crop_size=28).check_fits(28, 28)


def test_whitening_kernel_decorrelates_the_leading_patch_directions():
    from cifar_tfx.trainer.whitening import EPSILON, patch_covariance, whitening_kernel

    rng = np.random.default_rng(0)
    # images with strongly correlated neighbouring pixels and channels: a smoothed shared signal plus noise
    base = rng.normal(size=(64, 18, 18, 1))
    smooth = (base[:, :-2, :-2] + base[:, 1:-1, 1:-1] + base[:, 2:, 2:]) / 3
    images = (smooth + 0.2 * rng.normal(size=(64, 16, 16, 3))).astype(np.float32)
    covariance = patch_covariance(images)
    assert covariance.shape == (27, 27) and np.allclose(covariance, covariance.T)
    kernel = whitening_kernel(images, 16)
    assert kernel.shape == (3, 3, 3, 16)
    directions = kernel.reshape(27, 16)
    # each half answers the other with the opposite sign, so a ReLU passes both sides
    assert np.allclose(directions[:, :8], -directions[:, 8:])
    # the 8 filters' outputs over all patches: uncorrelated, variance lambda / (lambda + eps), ~1 here
    output_covariance = directions[:, :8].T @ covariance @ directions[:, :8]
    eigenvalues = np.sort(np.linalg.eigvalsh(covariance))[::-1][:8]
    assert np.allclose(output_covariance, np.diag(eigenvalues / (eigenvalues + EPSILON)), atol=1e-4)
    assert output_covariance[0, 0] > 0.99
    # the first direction is the patch mean: the same sign over all 27 pixels
    assert abs(np.sign(directions[:, 0]).sum()) == 27
    # one channel has 9 patch directions: a 32-filter stem takes the 9 and then the first 7 again
    gray = whitening_kernel(images[..., :1], 32).reshape(9, 32)
    assert np.array_equal(gray[:, 9:16], gray[:, :7]) and np.array_equal(gray[:, :16], -gray[:, 16:])
    assert np.linalg.matrix_rank(gray[:, :9]) == 9
    with pytest.raises(ValueError, match="even number of filters, got 15"):
        whitening_kernel(images, 15)


def test_every_width_cuts_its_stem_from_one_patch_whitening():
    from cifar_tfx.trainer.whitening import patch_whitening

    images = np.random.default_rng(2).normal(size=(16, 12, 12, 3)).astype(np.float32)
    whitening = patch_whitening(images)
    narrow, wide, widest = (whitening.kernel(filters) for filters in (16, 32, 64))
    assert (narrow.shape, wide.shape, widest.shape) == ((3, 3, 3, 16), (3, 3, 3, 32), (3, 3, 3, 64))
    # the narrow stem's directions lead the wide one's, with the same scale
    np.testing.assert_array_equal(wide[..., :8], narrow[..., :8])
    np.testing.assert_array_equal(wide[..., 16:24], narrow[..., 8:16])
    # ResNet-9 x4's 64 filters: 27 directions, then the first 5 again, each with both signs
    columns = widest.reshape(27, 64)
    np.testing.assert_array_equal(columns[:, 27:32], columns[:, :5])
    np.testing.assert_array_equal(columns[:, 32:], -columns[:, :32])


def test_a_whitened_stem_is_fixed_and_the_rest_trains():
    kernel = np.random.default_rng(1).normal(size=(3, 3, 3, 16)).astype(np.float32)
    model = build_resnet(8, CIFAR_SHAPE, 10, FULL.weight_decay, stem_kernel=kernel)
    stem = model.get_layer("stem_conv")
    assert not stem.trainable and np.array_equal(stem.get_weights()[0], kernel)
    assert all("stem_conv" not in weight.name for weight in model.trainable_weights)
    assert stem.kernel_regularizer is None
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    model.fit(np.random.rand(8, *CIFAR_SHAPE).astype(np.float32), np.arange(8) % 10, epochs=1, verbose=0)
    assert np.array_equal(stem.get_weights()[0], kernel)
    with pytest.raises(ValueError, match="stem kernel of 16 filters for a stem of 32"):
        build_resnet(8, CIFAR_SHAPE, 10, FULL.weight_decay, width=2, stem_kernel=kernel)
