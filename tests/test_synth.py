"""The embedded synthetic dataset: deterministic, balanced, official layout."""

import pickle

import numpy as np
import pytest

from cifar_tfx.data.synth import make_examples, write_dataset
from cifar_tfx.data.verify import verify


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    a = verify(write_dataset(str(tmp_path / "a"), 100, 30, seed=1))
    b = verify(write_dataset(str(tmp_path / "b"), 100, 30, seed=1))
    c = verify(write_dataset(str(tmp_path / "c"), 100, 30, seed=2))
    assert a["train"]["digest"] == b["train"]["digest"] and a["test"] == b["test"]
    assert a["train"]["digest"] != c["train"]["digest"]


def test_official_python_layout(tmp_path):
    folder = write_dataset(str(tmp_path), 12, 3)
    with open(f"{folder}/data_batch_1", "rb") as handle:
        # Our own freshly written file; encoding="latin1" as one loads the official ones.
        batch = pickle.load(handle, encoding="latin1")
    assert batch["data"].dtype == np.uint8 and batch["data"].shape == (3, 3072)
    assert len(batch["labels"]) == 3 and batch["batch_label"].startswith("synthetic training batch 1")
    with open(f"{folder}/batches.meta", "rb") as handle:
        meta = pickle.load(handle, encoding="latin1")
    assert meta["label_names"][0] == "airplane" and meta["num_vis"] == 3072


def test_classes_balanced_and_images_vary():
    images, labels = make_examples(1000, seed=3)
    assert images.shape == (1000, 32, 32, 3) and images.dtype == np.uint8
    assert np.bincount(labels, minlength=10).tolist() == [100] * 10
    assert len({img.tobytes() for img in images}) == 1000


def test_too_few_training_images_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="at least 5"):
        write_dataset(str(tmp_path), 4, 1)


@pytest.mark.parametrize("args, message", [
    (["--train", "1e12"], "--train 1e12: training images must be a whole number from 1 to 50,000"),
    (["--train", "1000000000000"], "--train 1000000000000: training images must be a whole number"),
    (["--test", "0"], "--test 0: test images must be a whole number from 1 to 10,000"),
    (["--seed", "-1"], "--seed -1: the generator's seed must be a whole number from 0 to 4,294,967,295"),
    (["--seed", "9" * 5000], "--seed 999999999999999999999999999999...: the generator's seed"),
])
def test_synth_numbers_out_of_bounds_are_one_line_naming_the_option(args, message, tmp_path, capsys):
    from cifar_tfx.cli import EXIT_BAD_INPUT, main

    assert main(["data", "synth", "--out", str(tmp_path / "out"), *args]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.startswith(f"error: {message}") and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()


def test_synth_takes_the_numbers_it_is_given(tmp_path):
    from cifar_tfx.cli import main
    from cifar_tfx.data.verify import verify

    assert main(["data", "synth", "--out", str(tmp_path), "--train", "15", "--test", "7", "--seed", "0"]) == 0
    summary = verify(str(tmp_path))
    assert (summary["train"]["count"], summary["test"]["count"]) == (15, 7)
