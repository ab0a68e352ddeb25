"""A run killed mid-Trainer whose newest checkpoint was cut short resumes from the newest intact one."""

import io
import os

import pytest
import tensorflow as tf

from cifar_tfx.trainer.checkpoints import newest_intact


def _save_steps(folder, values):
    """Checkpoints ``ckpt-<step>`` of one variable holding ``value``, as the Trainer's manager writes them."""
    variable = tf.Variable(tf.zeros([4096]))
    checkpoint = tf.train.Checkpoint(weights=variable)
    manager = tf.train.CheckpointManager(checkpoint, str(folder), max_to_keep=3, checkpoint_name="ckpt")
    for step, value in values:
        variable.assign(tf.fill([4096], float(value)))
        manager.save(checkpoint_number=step)
    return checkpoint, variable


def _truncate(folder, step):
    data = folder / f"ckpt-{step}.data-00000-of-00001"
    with open(data, "r+b") as handle:
        handle.truncate(data.stat().st_size // 2)


def _restored(folder):
    """What the Trainer restores: a fresh variable, the manager it builds, the checkpoint newest_intact chose."""
    log = io.StringIO()
    resume_from = newest_intact(str(folder), log)
    variable = tf.Variable(tf.zeros([4096]))
    checkpoint = tf.train.Checkpoint(weights=variable)
    manager = tf.train.CheckpointManager(checkpoint, str(folder), max_to_keep=3, checkpoint_name="ckpt")
    if resume_from:
        checkpoint.restore(resume_from).expect_partial()
    return resume_from, manager, float(variable.numpy()[0]), log.getvalue()


def test_the_reproduction_fails_as_the_issue_says(tmp_path):
    """What every re-run did: restore the newest checkpoint the manager names, cut short."""
    _save_steps(tmp_path, [(120, 1.0), (240, 2.0)])
    _truncate(tmp_path, 240)
    checkpoint, _ = _save_steps(tmp_path / "other", [(1, 0.0)])
    with pytest.raises((IndexError, tf.errors.OpError)):
        checkpoint.restore(tf.train.latest_checkpoint(str(tmp_path))).expect_partial()


def test_a_cut_short_newest_checkpoint_is_moved_aside_and_the_run_resumes_from_the_one_before(tmp_path):
    _save_steps(tmp_path, [(120, 1.0), (240, 2.0)])
    _truncate(tmp_path, 240)
    resume_from, manager, value, log = _restored(tmp_path)
    assert os.path.basename(resume_from) == "ckpt-120" and value == 1.0
    assert manager.latest_checkpoint == resume_from, "the manager's next saves rotate from the intact one"
    damaged = [p for p in tmp_path.iterdir() if p.name.startswith("damaged-")]
    assert len(damaged) == 1 and sorted(p.name for p in damaged[0].iterdir()) == [
        "ckpt-240.data-00000-of-00001", "ckpt-240.index"], "kept, not deleted"
    assert f"checkpoint {tmp_path}/ckpt-240 cannot be read" in log and "moved to" in log
    assert "resuming from the newest intact checkpoint, ckpt-120 (step 120)" in log
    assert newest_intact(str(tmp_path), io.StringIO()) == resume_from, "a second attempt resumes the same way"


def test_when_no_checkpoint_is_intact_training_starts_over_and_says_so(tmp_path):
    _save_steps(tmp_path, [(240, 2.0)])
    _truncate(tmp_path, 240)
    (tmp_path / "ckpt-240.index").write_bytes(b"\0" * 10)
    resume_from, manager, value, log = _restored(tmp_path)
    assert resume_from is None and manager.latest_checkpoint is None and value == 0.0
    assert "training starts over from step 0" in log
    assert not list(tmp_path.glob("ckpt-*")), "the damaged files are in damaged-*/, not beside the new ones"


def test_intact_checkpoints_are_resumed_without_a_word(tmp_path):
    _save_steps(tmp_path, [(120, 1.0), (240, 2.0)])
    resume_from, _, value, log = _restored(tmp_path)
    assert os.path.basename(resume_from) == "ckpt-240" and value == 2.0 and log == ""


def _train_once(checkpoint_dir, monkeypatch):
    """``train_model`` on the demo profile with ``Model.fit`` taking one step in no time; returns its log."""
    import tf_keras as keras

    from cifar_tfx.data.datasets import CIFAR10
    from cifar_tfx.trainer import train
    from cifar_tfx.trainer.hparams import DEMO

    def one_step(model, dataset, **kwargs):
        model.optimizer.iterations.assign_add(1)
        return keras.callbacks.History()

    keras.backend.clear_session()
    examples = tf.data.Dataset.from_tensor_slices((tf.zeros([8, 32, 32, 3]), tf.range(8, dtype=tf.int64) % 10))
    monkeypatch.setattr(train, "expand_patterns", list)
    monkeypatch.setattr(train, "count_records", lambda files: 80)
    monkeypatch.setattr(train, "cached_examples", lambda files, tft_output, limit=None: examples)
    monkeypatch.setattr(train, "detect_cpu_bf16", lambda: False)
    monkeypatch.setattr(keras.Model, "fit", one_step)
    log = io.StringIO()
    _, result = train.train_model(train_files=["train"], tft_output=None, hparams=DEMO, dataset=CIFAR10,
                                  checkpoint_dir=str(checkpoint_dir), clock=lambda: 100.0, stream=log, gpus=0)
    return result, log.getvalue()


def test_a_rerun_after_the_newest_checkpoint_was_cut_short_resumes_from_the_one_before(tmp_path, monkeypatch):
    first, _ = _train_once(tmp_path, monkeypatch)
    second, _ = _train_once(tmp_path, monkeypatch)
    assert second.resumed_from_step == first.steps_done and second.steps_done > first.steps_done
    _truncate(tmp_path, second.steps_done)
    third, log = _train_once(tmp_path, monkeypatch)  # was: IndexError: Read less bytes than requested
    assert third.resumed_from_step == first.steps_done, log
    assert f"ckpt-{second.steps_done} cannot be read" in log and f"ckpt-{first.steps_done} (step" in log, log
