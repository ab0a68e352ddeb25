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
import signal
import sys
import threading
from typing import List, Optional

from cifar_tfx import console
from cifar_tfx.cli_common import (EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_NOT_PUSHED,  # noqa: F401 - re-exported
                                  EXIT_PIPELINE_FAILED, EXIT_TERMINATED, BadArgumentError, Terminated, forget_stop,
                                  raise_stop)
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


def _raise_terminated(signum: int, frame: object) -> None:
    raise_stop(Terminated())


def _raise_interrupted(signum: int, frame: object) -> None:
    raise_stop(KeyboardInterrupt())


def _stopped_line(what: str) -> str:
    """``interrupted`` / ``terminated``, and where a run stopped and how it resumes."""
    where = console.stage()
    if where is None:
        return what
    resume = ("the same command resumes training from its last checkpoint (saved every epoch)" if where == "Trainer"
              else "the same command runs it again, taking finished components from the cache")
    return f"{what} during {where}: {resume}"


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of the ``cifar-tfx`` console script.

    Ctrl-C (SIGINT) and SIGTERM end any command with one line and exit 130 / 143. Downloads keep
    their .part to resume; synthesised data and pushed versions are staged and renamed into place,
    so nothing is left half-published; a run says which stage it stopped in.
    """
    args = build_parser().parse_args(argv)
    on_main_thread = threading.current_thread() is threading.main_thread()
    previous = {}
    if on_main_thread:
        previous[signal.SIGTERM] = signal.signal(signal.SIGTERM, _raise_terminated)
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # an ignored SIGINT stays ignored
            previous[signal.SIGINT] = signal.signal(signal.SIGINT, _raise_interrupted)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print(_stopped_line("interrupted"), file=sys.stderr)
        return EXIT_INTERRUPTED
    except Terminated:
        print(_stopped_line("terminated"), file=sys.stderr)
        return EXIT_TERMINATED
    except (DataError, BadArgumentError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except UnknownNameError as err:
        print(f"error: {err.args[0]}", file=sys.stderr)
        return EXIT_BAD_INPUT
    finally:
        console.set_stage(None)
        forget_stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)


if __name__ == "__main__":
    sys.exit(main())
