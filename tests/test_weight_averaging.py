"""The weight-averaging benchmark's averages and its BatchNorm re-estimation."""

import types

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

import tf_keras as keras  # noqa: E402

from benchmarks.weight_averaging import WeightAverages, reestimate_batchnorm  # noqa: E402


def _drive(watcher, rates_and_weights):
    """Run ``watcher`` over steps of (learning rate, weight value) on a one-variable stand-in model."""
    weight = tf.Variable(0.0)
    optimizer = types.SimpleNamespace(learning_rate=tf.Variable(0.0), iterations=tf.Variable(0, dtype=tf.int64))
    watcher.set_model(types.SimpleNamespace(trainable_weights=[weight], optimizer=optimizer))
    watcher.on_train_begin()
    for step, (rate, value) in enumerate(rates_and_weights):
        optimizer.learning_rate.assign(rate)
        weight.assign(value)
        optimizer.iterations.assign(step + 1)  # as after the step
        watcher.on_train_batch_end(step)
    return {name: float(values[0].numpy()) for name, values in watcher.averages().items()}


def test_uniform_average_takes_the_steps_whose_rate_fell_to_its_fraction_of_the_peak():
    # warm-up 0.01 -> 0.1 (low rates there must not count), then linear decay
    steps = [(0.01, 100.0), (0.05, 100.0), (0.1, 1.0), (0.08, 2.0), (0.04, 3.0), (0.02, 5.0), (0.0, 7.0)]
    averages = _drive(WeightAverages(swa_fractions=(0.25, 0.5), every=1), steps)
    assert averages["SWA last 25% (2 samples)"] == pytest.approx((5.0 + 7.0) / 2)
    assert averages["SWA last 50% (3 samples)"] == pytest.approx((3.0 + 5.0 + 7.0) / 3)


def test_uniform_average_samples_every_kth_step_only():
    steps = [(0.1, 1.0), (0.05, 2.0), (0.04, 3.0), (0.03, 4.0), (0.02, 5.0)]
    averages = _drive(WeightAverages(swa_fractions=(0.5,), every=2), steps)
    assert averages == {"SWA last 50% (2 samples)": pytest.approx((2.0 + 4.0) / 2)}  # steps 2 and 4


def test_exponential_average_follows_its_recurrence_every_step():
    values = [2.0, 4.0, 8.0]
    averages = _drive(WeightAverages(ema_decays=(0.5,)), [(0.1, value) for value in values])
    expected = 0.0  # starts at the weight's value when training begins
    for value in values:
        expected = 0.5 * expected + 0.5 * value
    assert averages["EMA 0.5"] == pytest.approx(expected)


def test_batchnorm_statistics_are_measured_again_on_the_batches():
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.BatchNormalization(momentum=0.9)(inputs))
    layer = model.layers[-1]
    layer.moving_mean.assign([50.0] * 4)
    layer.moving_variance.assign([0.01] * 4)
    rng = np.random.default_rng(0)
    batches = tf.data.Dataset.from_tensor_slices(
        (rng.normal(3.0, 2.0, (60 * 64, 4)).astype("float32"), np.zeros(60 * 64))).batch(64)
    reestimate_batchnorm(model, batches)
    np.testing.assert_allclose(layer.moving_mean.numpy(), 3.0, atol=0.3)
    np.testing.assert_allclose(layer.moving_variance.numpy(), 4.0, rtol=0.2)
