"""What the training tests share: a tiny run on the ``splits`` fixture (conftest.py) and a callback.

Used by ``test_training.py`` and ``test_training_budget.py``.
"""

import io

import tf_keras as keras

from cifar_tfx.data.datasets import CIFAR10
from cifar_tfx.trainer.hparams import DEMO, with_overrides
from cifar_tfx.trainer.train import train_model

TINY = with_overrides(DEMO, depth=8, batch_size=32, train_steps=6, shuffle_buffer=64, log_every_seconds=0.0)


def train_tiny(splits, tmp_path, hparams=TINY, **kwargs):
    """``(model, result, log)`` of ``train_model`` on ``splits``, its checkpoints and logs under ``tmp_path``."""
    stream = io.StringIO()
    model, result = train_model(train_files=splits["train"], eval_files=splits["test"], tft_output=splits["tft"],
                                hparams=hparams, dataset=CIFAR10, checkpoint_dir=str(tmp_path / "ckpt"),
                                log_dir=str(tmp_path / "logs"), stream=stream, **kwargs)
    return model, result, stream.getvalue()


class InputSizes(keras.callbacks.Callback):
    """The image side each training step ran at."""

    def __init__(self):
        super().__init__()
        self.sizes = []

    def on_train_batch_end(self, batch, logs=None):
        self.sizes.append(self.model.input_shape[1])
