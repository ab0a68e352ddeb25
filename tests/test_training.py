"""Training and export on small real TFRecords with a real tf.Transform graph."""

import glob
import os

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

import tf_keras as keras  # noqa: E402

from cifar_tfx.example_format import encode_png, serialize_batch  # noqa: E402
from cifar_tfx.data.datasets import CIFAR10  # noqa: E402
from cifar_tfx.data.synth import make_examples  # noqa: E402
from cifar_tfx.trainer.export import export_saved_model  # noqa: E402
from cifar_tfx.trainer.hparams import with_overrides  # noqa: E402
from cifar_tfx.trainer.preprocessing import IMAGE_XF  # noqa: E402
from cifar_tfx.trainer.model import predict_probabilities  # noqa: E402
from cifar_tfx.trainer.train import training_loss  # noqa: E402
from training_runs import TINY, InputSizes, train_tiny  # noqa: E402

pytestmark = pytest.mark.usefixtures("float32_policy")


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
    _, result, log = train_tiny(splits, tmp_path, hparams)
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
    _, result, _ = train_tiny(splits, tmp_path, with_overrides(TINY, train_steps=8), callbacks=[counter])
    assert counter.rates == pytest.approx(result.learning_rates) and len(counter.rates) == 8


def test_resume_after_crash_continues_from_checkpoint(splits, tmp_path):
    hparams = with_overrides(TINY, train_steps=16)  # 256 / 32 = 8 steps per epoch
    first_stop = with_overrides(hparams, train_steps=8)
    # A run planned for 8 steps leaves a checkpoint at step 8, like a crash after epoch 1 would.
    train_tiny(splits, tmp_path, first_stop)
    _, result, log = train_tiny(splits, tmp_path, hparams)
    assert result.resumed_from_step == 8 and result.steps_done == 16
    assert "resuming from" in log
    assert len(result.learning_rates) == 8
    assert result.learning_rates == pytest.approx([0.01] * 4 + [0.001] * 4)
    # Once more: the checkpoint is past the last step, nothing trains, and no rate of 0 img/s is claimed.
    _, again, log = train_tiny(splits, tmp_path, hparams)
    assert again.resumed_from_step == again.steps_done == 16 and again.images_per_second is None
    assert "training had finished at step 16 (resumed from its checkpoint)" in log and "0 img/s" not in log


@pytest.mark.parametrize("override", [
    {"precision": "mixed_float16"}, {"precision": "mixed_bfloat16"}, {"xla": "on"}, {"distribute": "on"},
])
def test_gpu_code_paths_run_on_cpu(splits, tmp_path, override):
    hparams = with_overrides(TINY, train_steps=2, **override)
    model, result, _ = train_tiny(splits, tmp_path, hparams)
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
    from cifar_tfx.trainer.train import stem_whitening_for
    from cifar_tfx.trainer.whitening import whitening_kernel

    hparams = with_overrides(TINY, whitened_stem=True, small_crop_fraction=0.5, small_crop_size=24, train_steps=8)
    kernel = stem_whitening_for(hparams, splits["train"], splits["tft"]).kernel(16)
    assert stem_whitening_for(with_overrides(hparams, whitened_stem=False), splits["train"], splits["tft"]) is None
    # the sample is the first records as Transform normalises them (all 256 of them here)
    images = np.concatenate([batch.numpy() for batch, _ in cached_examples(splits["train"], splits["tft"]).batch(64)])
    np.testing.assert_allclose(kernel, whitening_kernel(images, 16), rtol=1e-4, atol=1e-5)
    model, first, log = train_tiny(splits, tmp_path, hparams)
    assert first.steps_done == 8 and "fixed patch-whitening stem" in log and "crops until 50%" in log
    np.testing.assert_array_equal(model.get_layer("stem_conv").get_weights()[0], kernel)
    model, second, _ = train_tiny(splits, tmp_path, with_overrides(hparams, train_steps=16))
    assert second.resumed_from_step == 8 and second.steps_done == 16 and np.isfinite(second.eval_loss)
    np.testing.assert_array_equal(model.get_layer("stem_conv").get_weights()[0], kernel)


def test_small_crop_phase_trains_the_same_weights_on_windows_then_whole_images(splits, tmp_path):
    sizes = InputSizes()
    hparams = with_overrides(TINY, train_steps=8, small_crop_fraction=0.5, small_crop_size=24)
    model, result, log = train_tiny(splits, tmp_path, hparams, callbacks=[sizes])
    assert sizes.sizes == [24] * 4 + [32] * 4
    assert result.steps_done == 8 and result.learning_rates == pytest.approx([0.1] * 4 + [0.01] * 2 + [0.001] * 2)
    assert "training on 24x24 crops until 50% of the run" in log and "24x24 crops for the first 50%" in log
    assert model.input_shape[1:] == (32, 32, 3) and model.optimizer.iterations.numpy() == 8
    # a resumed attempt past the small-crop phase trains on whole images only
    again = InputSizes()
    _, resumed, log = train_tiny(splits, tmp_path, with_overrides(hparams, train_steps=12), callbacks=[again])
    assert resumed.resumed_from_step == 8 and again.sizes == [32] * 4 and "crops until" not in log


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
    sizes = InputSizes()
    train_tiny(splits, tmp_path, with_overrides(TINY, train_steps=24, small_crop_fraction=0.5), callbacks=[sizes])
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
    model, _, _ = train_tiny(splits, tmp_path, with_overrides(TINY, train_steps=3, precision="float32"))
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
    model, _, _ = train_tiny(splits, tmp_path, with_overrides(TINY, train_steps=3))
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
    model, _, _ = train_tiny(splits, tmp_path, with_overrides(TINY, train_steps=1))
    export_dir = export_saved_model(model, splits["tft"], CIFAR10.class_names, str(tmp_path / "export"))
    loaded = tf.saved_model.load(export_dir)
    small = encode_png(np.zeros((28, 28, 3), np.uint8))
    with pytest.raises(tf.errors.InvalidArgumentError, match="28,28,3"):
        loaded.signatures["serving_images"](images=tf.constant([small]))


def test_exported_warmup_requests_parse_as_tf_serving_logs_and_run(splits, tmp_path):
    from tensorflow_serving.apis import prediction_log_pb2

    model, _, _ = train_tiny(splits, tmp_path, with_overrides(TINY, train_steps=2))
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
