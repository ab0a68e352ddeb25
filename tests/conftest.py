"""Shared fixtures. TF_USE_LEGACY_KERAS must be set before any test imports TensorFlow."""

import gc
import inspect
import os
import pathlib
import shutil
import types

import pytest

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = pathlib.Path(__file__).resolve().parent.parent
SAMPLE_DIR = REPO / "tests" / "data" / "cifar10-mini"  # 700 real images: see its README


@pytest.fixture(scope="session")
def sample_archives():
    """Real CIFAR-10 archives (python and binary layout): 5 x 100 train and 200 test images."""
    python = SAMPLE_DIR / "cifar-10-python.tar.gz"
    binary = SAMPLE_DIR / "cifar-10-binary.tar.gz"
    if not python.exists():
        pytest.fail(f"the real CIFAR-10 sample is expected at {SAMPLE_DIR}")
    return {"python": str(python), "binary": str(binary)}


@pytest.fixture(scope="session")
def small_synth(tmp_path_factory):
    """A small synthetic dataset (500 train / 100 test) written by `data synth`."""
    from cifar_tfx.data.synth import write_dataset

    out = tmp_path_factory.mktemp("synth")
    write_dataset(str(out), train=500, test=100, seed=7)
    return str(out)


@pytest.fixture(scope="module")
def splits(tmp_path_factory):
    """Training inputs of the training tests: 256 training and 64 evaluation records of synthetic images
    (TFRecords as ExampleGen writes them) and the tf.Transform graph of the training ones."""
    import tensorflow_transform as tft

    from benchmarks.transform_fixtures import build_transform_output, write_split

    root = tmp_path_factory.mktemp("splits")
    train = write_split(str(root / "train" / "data.gz"), 256, seed=11)
    test = write_split(str(root / "test" / "data.gz"), 64, seed=12)
    tft_dir = build_transform_output(train, str(root / "transform"))
    return {"train": [train], "test": [test], "tft": tft.TFTransformOutput(tft_dir)}


@pytest.fixture
def float32_policy():
    """Leaves Keras' global precision policy at float32 after the test, whatever the test set."""
    yield
    import tf_keras as keras

    keras.mixed_precision.set_global_policy("float32")


@pytest.fixture
def copy_of(tmp_path):
    """Copy a file into the test's tmp dir (the fixture stays untouched)."""

    def _copy(path):
        target = tmp_path / pathlib.Path(path).name
        shutil.copy(path, target)
        target.chmod(0o644)
        return str(target)

    return _copy


GENERATOR_FLAGS = inspect.CO_GENERATOR | inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    """Free what returned frames still hold while every extension module still works.

    google-cloud-bigquery (imported by Apache Beam) keeps the ``ImportError`` of each optional
    dependency it lacks (``_pandas_helpers.db_dtypes_import_exception``, ``pandas_gbq_import_exception``,
    ``_pyarrow_helpers.db_dtypes_import_exception``); each traceback keeps alive, through ``f_back``,
    every frame that was on the stack when Beam was first imported, with its locals. A test or fixture
    that imports Beam and then builds a pipeline (``benchmarks/transform_fixtures.py``) so keeps that
    pipeline, and the protobuf messages in it, until the interpreter's finalization, which frees them
    after protobuf's upb module has lost its state: ``PyUpb_RepeatedContainer_Dealloc`` then
    dereferences it, a segmentation fault after "N passed" (exit 139; protobuf 4.25.5, Python 3.11;
    protocolbuffers/protobuf#22067 reports the same crash at exit). Clearing the locals of every frame
    that has returned (``frame.clear()``; a generator's frame is left alone, clearing it would close
    the generator) and collecting frees them here, in the order their own references give.
    """
    for obj in gc.get_objects():
        if isinstance(obj, types.FrameType) and not obj.f_code.co_flags & GENERATOR_FLAGS:
            try:
                obj.clear()
            except RuntimeError:  # still executing: pytest's own frames, this one
                pass
    gc.collect()
