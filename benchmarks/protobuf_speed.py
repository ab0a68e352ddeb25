"""How fast this environment's protobuf builds tf.Examples (pure Python or the upb/C++ extension).

    .venv/bin/python -m benchmarks.protobuf_speed [--examples 10000]

Builds and serializes ``--examples`` tf.Examples with ExampleGen's five features (a 2,300-byte
image string, label, height, width, channels), the message every component after ExampleGen
parses again; prints the implementation and the seconds taken.
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--examples", type=int, default=10_000)
    args = parser.parse_args()

    import google.protobuf
    from google.protobuf.internal import api_implementation
    from tensorflow.core.example import example_pb2

    from cifar_tfx.example_format import CHANNELS_KEY, HEIGHT_KEY, IMAGE_KEY, LABEL_KEY, WIDTH_KEY

    image = b"\x89PNG" + bytes(2296)
    started = time.perf_counter()
    for index in range(args.examples):
        example = example_pb2.Example()
        feature = example.features.feature
        feature[IMAGE_KEY].bytes_list.value.append(image)
        feature[LABEL_KEY].int64_list.value.append(index % 10)
        for key in (HEIGHT_KEY, WIDTH_KEY):
            feature[key].int64_list.value.append(32)
        feature[CHANNELS_KEY].int64_list.value.append(3)
        example.SerializeToString()
    seconds = time.perf_counter() - started
    print(f"protobuf {google.protobuf.__version__} ({api_implementation.Type()}): {args.examples:,} tf.Examples "
          f"built and serialized in {seconds:.3f} s")


if __name__ == "__main__":
    main()
