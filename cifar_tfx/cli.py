"""``cifar-tfx``: the command line. Sub-commands import TensorFlow only when they need it.

    cifar-tfx data verify PATH          summarise an archive or folder as JSON
    cifar-tfx data download             fetch an official archive (md5-checked, resumable)
    cifar-tfx data synth --out DIR      write the embedded synthetic dataset
    cifar-tfx run --data PATH           run the TFX pipeline locally
    cifar-tfx report PIPELINE_ROOT      write the HTML report of a run
    cifar-tfx predict IMAGE...          classify images with TF Serving (REST/gRPC) or a SavedModel
    cifar-tfx serving config|label|rollback   edit models.config for TF Serving
    cifar-tfx kubeflow compile ...      write the Kubeflow Pipelines 2 spec (open-source KFP or Vertex AI)
    cifar-tfx kubeflow submit SPEC      start a run of it and, with --wait, follow it to the end
"""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from cifar_tfx.cli_common import (EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_NOT_PUSHED,  # noqa: F401 - re-exported
                                  EXIT_PIPELINE_FAILED, BadArgumentError)
from cifar_tfx.cli_data import add_data_commands
from cifar_tfx.cli_kubeflow import add_kubeflow_commands
from cifar_tfx.cli_run import add_run_commands, hparams_from_args, root_message  # noqa: F401 - re-exported
from cifar_tfx.cli_serving import add_serving_commands
from cifar_tfx.data.errors import DataError, UnknownNameError


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``cifar-tfx``: one module per command group (``cli_*.py``)."""
    parser = argparse.ArgumentParser(prog="cifar-tfx", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    add_data_commands(commands)
    add_run_commands(commands)
    add_serving_commands(commands)
    add_kubeflow_commands(commands)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of the ``cifar-tfx`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        # Downloads keep their .part to resume, synth and pushes stage then rename: nothing half-written.
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (DataError, BadArgumentError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except UnknownNameError as err:
        print(f"error: {err.args[0]}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
