"""``cifar-tfx data verify|download|synth``: CIFAR-format data without TensorFlow."""

from __future__ import annotations

import argparse
import json

from cifar_tfx.cli_common import BadArgumentError, check_writable_folder
from cifar_tfx.data.datasets import DATASETS, DEFAULT_DATASET, FORMATS, get_dataset
from cifar_tfx.data.errors import DataError
from cifar_tfx.data.synth import DEFAULT_SEED


def _cmd_verify(args: argparse.Namespace) -> int:
    from cifar_tfx.data.verify import verify

    print(json.dumps(verify(args.path, get_dataset(args.dataset)), indent=2))
    return 0


def _cmd_download(args: argparse.Namespace) -> int:
    from cifar_tfx.data.download import download, download_dataset

    check_writable_folder(args.dest, "--dest")
    spec = get_dataset(args.dataset)
    fmt = args.format or spec.formats[0]
    if args.url or args.md5:
        if len(spec.download_files(fmt)) != 1:
            raise DataError(f"--url/--md5 name one file; {spec.name}'s {fmt} layout has several")
        print(download(fmt, args.dest, spec, url=args.url, md5=args.md5, timeout=args.timeout))
    else:
        print(download_dataset(fmt, args.dest, spec, timeout=args.timeout))
    return 0


# The numbers of `data synth`: option -> (default, lowest, highest, what it counts). The highest counts are
# CIFAR-10's own splits (generating 50,000 images peaks near 2.5 GB); numpy's generator takes seeds >= 0.
SYNTH_NUMBERS = {
    "--train": (5000, 1, 50_000, "training images"),
    "--test": (1000, 1, 10_000, "test images"),
    "--seed": (DEFAULT_SEED, 0, 2**32 - 1, "the generator's seed"),
}


def synth_number(option: str, text: str) -> int:
    """``text`` as the whole number ``option`` declares in :data:`SYNTH_NUMBERS`, or one line naming the option."""
    _, lowest, highest, what = SYNTH_NUMBERS[option]
    shown = text if len(text) <= 30 else text[:30] + "..."
    try:
        value = int(text.strip()) if len(text) <= 30 else None
    except ValueError:
        value = None
    if value is None or not lowest <= value <= highest:
        raise BadArgumentError(f"{option} {shown}: {what} must be a whole number from {lowest:,} to {highest:,}")
    return value


def _cmd_synth(args: argparse.Namespace) -> int:
    from cifar_tfx.data.synth import write_dataset

    train, test, seed = (synth_number(option, str(getattr(args, option[2:])))
                         for option in ("--train", "--test", "--seed"))
    check_writable_folder(args.out, "--out")
    try:
        folder = write_dataset(args.out, train=train, test=test, seed=seed, spec=get_dataset(args.dataset))
    except ValueError as err:
        raise BadArgumentError(str(err)) from err
    print(folder)
    return 0


def add_data_commands(commands) -> None:
    """The ``data`` command group."""
    data = commands.add_parser("data", help="verify, download or synthesise CIFAR-format data")
    data_commands = data.add_subparsers(dest="data_command", required=True)

    verify = data_commands.add_parser("verify", help="read an archive or folder fully and print a JSON summary")
    verify.add_argument("path", help="cifar-10-python.tar.gz, cifar-10-binary.tar.gz, an extracted folder, "
                                     "or (fashion_mnist) the folder of the four IDX files")
    verify.add_argument("--dataset", default=DEFAULT_DATASET, choices=sorted(DATASETS))
    verify.set_defaults(func=_cmd_verify)

    download = data_commands.add_parser("download", help="download an official archive")
    download.add_argument("--format", choices=FORMATS,
                          help="layout (default: the dataset's first: python for cifar10, idx for fashion_mnist)")
    download.add_argument("--dest", default="data", help="folder for the archive (default: data)")
    download.add_argument("--dataset", default=DEFAULT_DATASET, choices=sorted(DATASETS))
    download.add_argument("--url", help="download from this mirror instead of the official site")
    download.add_argument("--md5", help="expected md5 (default: the official archive's)")
    download.add_argument("--timeout", type=float, default=30.0, help="network timeout in seconds")
    download.set_defaults(func=_cmd_download)

    synth = data_commands.add_parser("synth", help="write the deterministic synthetic dataset")
    synth.add_argument("--out", required=True, help="folder to write cifar-10-batches-py/ into")
    for option, (default, lowest, highest, what) in SYNTH_NUMBERS.items():
        synth.add_argument(option, default=str(default), metavar="N",
                           help=f"{what}, {lowest:,} to {highest:,} (default {default})")
    synth.add_argument("--dataset", default=DEFAULT_DATASET, choices=sorted(DATASETS))
    synth.set_defaults(func=_cmd_synth)
