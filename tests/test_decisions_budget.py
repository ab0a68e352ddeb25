"""The budget's accounting and the schedule's rate, with values that differ from the defaults.

``resolve_network`` and ``_fit_with_recheck`` run with the probe's timing replaced by an injected clock,
so the seconds a probe takes are known exactly; nothing trains.
"""

import dataclasses
import io

import pytest

from cifar_tfx.trainer.budget import RESNET_DEPTHS, predict_throughput
from cifar_tfx.trainer.schedule import learning_rate_at


def test_a_noisy_probe_falls_back_to_cost_proportional_to_size_plus_one_at_the_measured_mean():
    measured = {8: 1000.0, 32: 1100.0}  # the deeper network timed faster: noise, a fit would give slope <= 0
    predicted = predict_throughput(measured)
    sizes = {depth: RESNET_DEPTHS.size(depth) for depth in RESNET_DEPTHS.candidates}
    mean_cost = (1 / 1000.0 + 1 / 1100.0) / 2
    mean_size = (sizes[8] + sizes[32]) / 2
    per_unit = mean_cost / (mean_size + 1)
    assert predicted == pytest.approx({depth: 1 / (per_unit * (size + 1)) for depth, size in sizes.items()})
    assert predicted[20] == pytest.approx(1 / mean_cost), "ResNet-20 sits at the probes' mean size"
    assert predicted[8] / predicted[56] == pytest.approx((sizes[56] + 1) / (sizes[8] + 1))


@pytest.mark.parametrize("schedule", ["step", "linear"])
def test_the_schedule_starts_at_the_given_rate_and_scales_it(schedule):
    initial = 0.37  # not the default 0.1
    fractions, factors = (0.3, 0.6), (0.2, 0.05)
    rates = [learning_rate_at(done, initial, fractions, factors, schedule) for done in (0.0, 0.29, 0.3, 0.6, 0.8)]
    if schedule == "step":
        assert rates == pytest.approx([0.37, 0.37, 0.37 * 0.2, 0.37 * 0.05, 0.37 * 0.05])
    else:
        assert rates == pytest.approx([0.37, 0.37 * 0.71, 0.37 * 0.7, 0.37 * 0.4, 0.37 * 0.2])
    warm = learning_rate_at(0.05, initial, fractions, factors, schedule, warmup_fraction=0.1)
    assert warm == pytest.approx(learning_rate_at(0.05, initial, fractions, factors, schedule) * 0.55)


class _Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def probed(monkeypatch, tmp_path):
    """``resolve_network`` of a 10-minute budget whose two probes take 45 s each on the injected clock."""
    tf = pytest.importorskip("tensorflow")
    from cifar_tfx.data.datasets import FASHION_MNIST
    from cifar_tfx.trainer import train
    from cifar_tfx.trainer.hparams import DEMO, with_overrides

    clock = _Clock()
    rates = {8: 2000.0, 32: 500.0}

    def timed_probe(network, dataset, runtime, strategy, probe_ds, clock=None, **_):
        clock.now += 45.0
        return rates[network.depth]

    monkeypatch.setattr(train, "measure_throughput", timed_probe)
    monkeypatch.setattr(train, "cached_examples", lambda files, tft_output, limit=None: tf.data.Dataset.from_tensors(
        (tf.zeros([28, 28, 1]), tf.constant(0, tf.int64))).repeat(limit or 8))
    hparams = dataclasses.replace(with_overrides(DEMO, time_budget_minutes=10.0), depth=None, budget_min_images=700_000)
    resolved, choice, probe_seconds = train.resolve_network(
        hparams, FASHION_MNIST, train.resolve_runtime(hparams, 0), tf.distribute.get_strategy(), ["train"], None,
        60_000, str(tmp_path / "ckpt"), io.StringIO(), clock=clock)
    return hparams, resolved, choice, probe_seconds, rates


def test_the_probes_seconds_are_taken_from_the_budget_before_the_choice(probed):
    hparams, resolved, choice, probe_seconds, rates = probed
    assert probe_seconds == 90.0
    assert choice["seconds_left"] == 600.0 - 90.0
    assert choice["min_images"] == 700_000, "budget_min_images, not the dataset's"
    assert choice["predicted_images_seen"][20] == pytest.approx(choice["predicted_images_per_second"][20] * 510.0)
    assert resolved.depth == choice["value"]


def test_the_probes_seconds_count_in_the_training_clock(probed):
    from cifar_tfx.trainer import train

    hparams, resolved, choice, probe_seconds, _ = probed

    class Fitting:
        calls = []

        def fit(self, hparams, elapsed_before, recheck):
            self.calls.append((hparams.depth, elapsed_before, recheck is not None))
            return None

    fitted, _, _ = train._fit_with_recheck(Fitting(), resolved, choice, probe_seconds)
    assert Fitting.calls == [(resolved.depth, 90.0, True)]


def test_the_schedule_controller_sets_the_given_rate_before_every_step():
    tf = pytest.importorskip("tensorflow")
    import tf_keras as keras

    from cifar_tfx.trainer.callbacks import StepScheduleController
    from cifar_tfx.trainer.schedule import TrainingClock

    model = keras.Sequential([keras.layers.Dense(2, input_shape=(3,))])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=tf.Variable(0.5, trainable=False)), loss="mse")
    controller = StepScheduleController(TrainingClock(planned_steps=4), 0.37, (0.5,), (0.25,))
    controller.set_model(model)
    seen = []
    for step in range(4):  # what fit() does around each step, without the step
        controller.on_train_batch_begin(step)
        seen.append(float(model.optimizer.learning_rate.numpy()))
        model.optimizer.iterations.assign_add(1)
        controller.on_train_batch_end(step)
    assert seen == pytest.approx([0.37, 0.37, 0.37 * 0.25, 0.37 * 0.25])
    assert controller.rates == pytest.approx(seen)
