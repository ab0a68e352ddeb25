"""What the exported SavedModel promises its callers: signature and input names, outputs, warm-up file.

Named once here (no TensorFlow import) and used by the exporter, the warm-up writer, the serving
check, the prediction client, the Evaluator's config and the report.
"""

import posixpath

EXAMPLES_SIGNATURE = "serving_default"   # serialized tf.train.Examples, as the Evaluator feeds them
EXAMPLES_INPUT = "examples"
IMAGES_SIGNATURE = "serving_images"      # PNG or JPEG bytes, as clients send them
IMAGES_INPUT = "images"
SIGNATURE_INPUTS = ((IMAGES_SIGNATURE, IMAGES_INPUT), (EXAMPLES_SIGNATURE, EXAMPLES_INPUT))
OUTPUTS = ("probabilities", "class_id", "class_name")  # every signature answers these

# TF Serving replays this TFRecord file of PredictionLogs before a version takes traffic.
WARMUP_DIR = "assets.extra"
WARMUP_FILE = "tf_serving_warmup_requests"
WARMUP_PATH = posixpath.join(WARMUP_DIR, WARMUP_FILE)
