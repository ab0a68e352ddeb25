"""CifarExampleGen: official CIFAR-format archives (or folders) to TFRecords of tf.train.Example.

A custom TFX component rather than ``FileBasedExampleGen`` because one archive
holds both splits: ``train`` is the training batches and ``test`` the test batch,
as the dataset authors define them, not a hash split of one file pattern. The
reading is :func:`cifar_tfx.data.reader.read_batches`, the same code as
``cifar-tfx data verify``, so what is ingested is exactly what is verified.
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, Iterator, List, Tuple, Union

import apache_beam as beam
from tfx import types
from tfx.components.util import examples_utils
from tfx.dsl.components.base import base_beam_component, base_beam_executor, executor_spec
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_artifacts
from tfx.orchestration import data_types
from tfx.types.component_spec import ChannelParameter, ExecutionParameter

from cifar_tfx.example_format import serialize_batch
from cifar_tfx.data.datasets import DEFAULT_DATASET, SPLITS, get_dataset
from cifar_tfx.data.reader import detect_source, read_batches, source_fingerprint
from cifar_tfx.data.verify import check_no_leakage, duplicate_report, image_keys

DATA_PATH_KEY = "data_path"
DATASET_KEY = "dataset"
NUM_SHARDS_KEY = "num_shards"
FINGERPRINT_KEY = "data_fingerprint"
MAX_TEST_OVERLAP_KEY = "max_test_overlap"
DEFAULT_MAX_TEST_OVERLAP = 0.01  # of the test split; exact-pixel copies of training images
EXAMPLES_KEY = "examples"
FILE_PREFIX = "data_tfrecord"


def read_examples(data_path: str, dataset: str) -> Iterator[beam.pvalue.TaggedOutput]:
    """Every split's serialized examples in batch order, each tagged with its split: one pass over
    the archive (the unit of Beam work; a gzip archive cannot be read from the middle)."""
    _, batches = read_batches(data_path, SPLITS, get_dataset(dataset))
    for split in SPLITS:
        for batch in batches[split]:
            for example in serialize_batch(batch.images, batch.labels):
                yield beam.pvalue.TaggedOutput(split, example)


def check_splits(data_path: str, spec, max_test_overlap: float) -> Tuple[Dict[str, int], Dict[str, int]]:
    """``(duplicates, examples per split)``; raise ``DataLeakageError`` past ``max_test_overlap``.

    Duplicates are exact image copies within and across the splits.
    """
    _, batches = read_batches(data_path, SPLITS, spec)
    counts = {split: sum(len(batch) for batch in batches[split]) for split in SPLITS}
    report = duplicate_report(image_keys(batches["train"]), image_keys(batches["test"]))
    check_no_leakage(report, counts["test"], data_path, max_test_overlap)
    return report, counts


class CifarExampleGenSpec(types.ComponentSpec):
    """Parameters: where the data is, which dataset spec it follows, shards per split."""

    PARAMETERS = {
        DATA_PATH_KEY: ExecutionParameter(type=str),
        DATASET_KEY: ExecutionParameter(type=str),
        NUM_SHARDS_KEY: ExecutionParameter(type=int),
        FINGERPRINT_KEY: ExecutionParameter(type=str, optional=True),
        MAX_TEST_OVERLAP_KEY: ExecutionParameter(type=float, optional=True),
    }
    INPUTS: Dict[str, ChannelParameter] = {}
    OUTPUTS = {EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples)}


class CifarExampleGenExecutor(base_beam_executor.BaseBeamExecutor):
    """Writes ``Split-train`` and ``Split-test`` as gzip TFRecords of tf.train.Example.

    The fingerprint of the data read (names, sizes, modification times) is taken
    here, when the data is read, on every orchestrator, and recorded on the Examples
    artifact as the custom property ``data_fingerprint`` (lineage: which bytes a
    model was trained on).
    """

    def Do(self, input_dict: Dict[str, List[types.Artifact]],
           output_dict: Dict[str, List[types.Artifact]],
           exec_properties: Dict[str, Any]) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        data_path = exec_properties[DATA_PATH_KEY]
        dataset = exec_properties[DATASET_KEY]
        shards = int(exec_properties[NUM_SHARDS_KEY])
        # Fail fast, before Beam starts, with the reader's own message.
        spec = get_dataset(dataset)
        detect_source(data_path, spec)
        fingerprint = source_fingerprint(data_path)
        duplicates, counts = check_splits(data_path, spec, float(exec_properties.get(MAX_TEST_OVERLAP_KEY) or 0.0))

        examples = artifact_utils.get_single_instance(output_dict[EXAMPLES_KEY])
        examples.set_string_custom_property(FINGERPRINT_KEY, fingerprint)
        examples.set_string_custom_property(DATA_PATH_KEY, data_path)
        examples.set_string_custom_property("duplicates", json.dumps(duplicates, sort_keys=True))
        for split, count in counts.items():
            examples.set_int_custom_property(f"{split}_examples", count)
        examples.split_names = artifact_utils.encode_split_names(list(SPLITS))
        with self._make_beam_pipeline() as pipeline:
            by_split = (pipeline
                        | "Create" >> beam.Create([data_path])
                        | "Read" >> beam.FlatMap(read_examples, dataset).with_outputs(*SPLITS))
            for split in SPLITS:
                out = os.path.join(artifact_utils.get_split_uri([examples], split), FILE_PREFIX)
                _ = by_split[split] | f"Write[{split}]" >> beam.io.WriteToTFRecord(
                    out, file_name_suffix=".gz", num_shards=shards,
                    compression_type=beam.io.filesystem.CompressionTypes.GZIP)
        examples_utils.set_payload_format(examples, example_gen_pb2.PayloadFormat.FORMAT_TF_EXAMPLE)
        examples_utils.set_file_format(examples, "tfrecords_gzip")


class CifarExampleGen(base_beam_component.BaseBeamComponent):
    """TFX component: ingest a CIFAR-format archive or folder as train/test Examples."""

    SPEC_CLASS = CifarExampleGenSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(CifarExampleGenExecutor)

    def __init__(self, data_path: Union[str, data_types.RuntimeParameter], dataset: str = DEFAULT_DATASET,
                 num_shards: int = 4, data_fingerprint: Union[str, data_types.RuntimeParameter] = "",
                 max_test_overlap: float = DEFAULT_MAX_TEST_OVERLAP) -> None:
        """``data_path`` may be a pipeline parameter (Kubeflow); ``data_fingerprint`` is the
        runner's view of the data, part of the cache key where the runner can compute it;
        ``max_test_overlap`` the fraction of test images that may also be training images."""
        super().__init__(spec=CifarExampleGenSpec(
            data_path=data_path, dataset=dataset, num_shards=num_shards, data_fingerprint=data_fingerprint,
            max_test_overlap=max_test_overlap,
            examples=types.Channel(type=standard_artifacts.Examples)))
