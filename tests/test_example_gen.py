"""CifarExampleGen's executor: pixel-exact Examples, gzip TFRecord shards per split."""

import glob
import os

import pytest

tf = pytest.importorskip("tensorflow")

from tfx.types import artifact_utils, standard_artifacts  # noqa: E402

from cifar_tfx.components.example_gen import CifarExampleGenExecutor  # noqa: E402
from cifar_tfx.data.reader import read_batches  # noqa: E402


def parse_example(serialized: bytes) -> tuple:
    """``(image [H, W, C] uint8, label)`` of one serialized example, decoded with TensorFlow itself."""
    parsed = tf.io.parse_single_example(serialized, {"image": tf.io.FixedLenFeature([], tf.string),
                                                     "label": tf.io.FixedLenFeature([], tf.int64)})
    return tf.io.decode_png(parsed["image"]).numpy(), int(parsed["label"])


def _run_executor(data_path, out_dir, shards=3):
    examples = standard_artifacts.Examples()
    examples.uri = str(out_dir)
    CifarExampleGenExecutor().Do({}, {"examples": [examples]},
                                 {"data_path": data_path, "dataset": "cifar10", "num_shards": shards})
    return examples


def _records(examples, split):
    files = sorted(glob.glob(os.path.join(artifact_utils.get_split_uri([examples], split), "*")))
    return files, [r.numpy() for r in tf.data.TFRecordDataset(files, compression_type="GZIP")]


def test_examples_are_pixel_exact_against_the_archive(sample_archives, tmp_path):
    examples = _run_executor(sample_archives["python"], tmp_path)
    assert artifact_utils.decode_split_names(examples.split_names) == ["train", "test"]
    assert examples.get_string_custom_property("payload_format") == "FORMAT_TF_EXAMPLE"
    _, batches = read_batches(sample_archives["binary"])  # the other layout, for good measure
    for split in ("train", "test"):
        files, records = _records(examples, split)
        assert len(files) == 3 and all(f.endswith(".gz") for f in files)
        written = sorted(image.tobytes() + bytes([label]) for image, label in map(parse_example, records))
        expected = sorted(
            image.tobytes() + bytes([int(label)])
            for batch in batches[split] for image, label in zip(batch.images, batch.labels)
        )
        assert len(written) == (500 if split == "train" else 200)
        assert written == expected


def test_bad_archive_fails_before_writing(tmp_path):
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(b"not an archive")
    from cifar_tfx.data.errors import CorruptArchiveError

    with pytest.raises(CorruptArchiveError):
        _run_executor(str(bad), tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.gz"))
