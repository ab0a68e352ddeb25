"""Export for serving: one SavedModel, two signatures, the Transform graph inside.

* ``serving_default``: a batch of serialized ``tf.train.Example`` (what TFX's
  Evaluator and batch jobs send);
* ``serving_images``: a batch of encoded PNG or JPEG bytes (what a REST client
  sends as ``{"b64": ...}``).

Both run the same tf.Transform graph (decode, normalise) and the same network,
and return ``probabilities`` [B, classes] float32, ``class_id`` [B] int64 and
``class_name`` [B] string.
"""

from __future__ import annotations

import functools
from typing import Dict, Optional, Sequence, Tuple

import tensorflow as tf
import tf_keras as keras

from cifar_tfx.example_format import IMAGE_KEY, LABEL_KEY
from cifar_tfx.trainer.model import predict_probabilities
from cifar_tfx.trainer.preprocessing import IMAGE_XF
from cifar_tfx.model_contract import EXAMPLES_INPUT, EXAMPLES_SIGNATURE, IMAGES_INPUT, IMAGES_SIGNATURE



class ServingModule(tf.Module):
    """The network, the Transform layer and the class names, with the two signature functions."""

    def __init__(self, model: keras.Model, tft_output, class_names: Sequence[str],
                 test_time_flip: bool = False, test_time_shift: int = 0) -> None:
        super().__init__()
        # The SavedModel keeps the network's variables and the traced signatures, not the Keras object:
        # a tracked Keras model makes tf.saved_model.save trace every layer's call again for Keras's own
        # loader, which was most of an export's time (nothing here loads the export back as Keras).
        self.network_variables = list(model.variables)
        self._probabilities = functools.partial(predict_probabilities, model, test_time_flip=test_time_flip,
                                                test_time_shift=test_time_shift)  # not tracked: a plain callable
        self.tft_layer = tft_output.transform_features_layer()
        spec = dict(tft_output.raw_feature_spec())
        spec.pop(LABEL_KEY, None)
        self._feature_spec = spec
        self.class_names = tf.constant(list(class_names))

    def _predict(self, raw_features: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
        images = self.tft_layer(raw_features)[IMAGE_XF]
        probabilities = self._probabilities(images)
        class_id = tf.argmax(probabilities, axis=-1)
        return {"probabilities": probabilities, "class_id": class_id,
                "class_name": tf.gather(self.class_names, class_id)}

    # autograph=False: nothing here branches on a tensor, and converting every Keras layer's call was
    # most of the tracing time.
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=EXAMPLES_INPUT)], autograph=False)
    def serve_examples(self, examples: tf.Tensor) -> Dict[str, tf.Tensor]:
        return self._predict(tf.io.parse_example(examples, self._feature_spec))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=IMAGES_INPUT)], autograph=False)
    def serve_images(self, images: tf.Tensor) -> Dict[str, tf.Tensor]:
        return self._predict({IMAGE_KEY: tf.reshape(images, [-1, 1])})


def export_saved_model(model: keras.Model, tft_output, class_names: Sequence[str], export_dir: str,
                       warmup_image_shape: Optional[Tuple[int, int, int]] = None,
                       test_time_flip: bool = False, test_time_shift: int = 0) -> str:
    """Write the SavedModel with both signatures to ``export_dir``; return it.

    ``test_time_flip`` and ``test_time_shift`` serve the view-averaged prediction
    (:func:`~cifar_tfx.trainer.model.predict_probabilities`: the one the Trainer evaluated
    and the Evaluator gates, since both run this graph).

    With ``warmup_image_shape`` (H, W, C), TF Serving warm-up requests for both signatures
    are written to ``assets.extra/`` (see :mod:`cifar_tfx.trainer.warmup`).
    """
    module = ServingModule(model, tft_output, class_names, test_time_flip, test_time_shift)
    signatures = {
        EXAMPLES_SIGNATURE: module.serve_examples.get_concrete_function(),
        IMAGES_SIGNATURE: module.serve_images.get_concrete_function(),
    }
    tf.saved_model.save(module, export_dir, signatures=signatures)
    if warmup_image_shape is not None:
        from cifar_tfx.trainer.warmup import write_warmup_requests

        write_warmup_requests(export_dir, warmup_image_shape)
    return export_dir
