"""``cifar-tfx run`` (the local pipeline) and ``cifar-tfx report`` (its HTML report)."""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
import time
import traceback
from typing import Optional

from cifar_tfx import console
from cifar_tfx.cli_common import (EXIT_BAD_INPUT, EXIT_NOT_PUSHED, EXIT_PIPELINE_FAILED, BadArgumentError,
                                  cause_of_kind, check_writable_file, check_writable_folder, interruption_in,
                                  positive_int, use_keras2)
from cifar_tfx.cli_hparams import add_hparam_options, hparams_from_args
from cifar_tfx.data.datasets import DATASETS, DEFAULT_DATASET, get_dataset
from cifar_tfx.data.errors import DataError
from cifar_tfx.pipeline import component_ids as ids


def _cmd_run(args: argparse.Namespace) -> int:
    use_keras2()
    from cifar_tfx.data.reader import detect_source
    from cifar_tfx import storage
    from cifar_tfx.serving.model_config import MODELS_CONFIG, check_base_path, check_model_name, read_models_config
    from cifar_tfx.pipeline.local_runner import LocalRun, PipelineRootBusyError, exclusive_root, run_holding_root

    spec = get_dataset(args.dataset)
    hparams = hparams_from_args(args)
    try:
        hparams.check_fits(spec.height, spec.width)
    except ValueError as err:
        raise BadArgumentError(str(err)) from err
    detect_source(args.data, spec)  # a bad --data fails here, before TFX starts
    check_writable_folder(args.serving_dir, "--serving-dir", remote=True)
    check_writable_folder(args.pipeline_root, "--pipeline-root")  # ML Metadata's SQLite and the lock are local
    check_store(args.pipeline_root)
    try:
        check_model_name(args.model_name or spec.name)
        if args.serving_base_path:
            check_base_path(args.serving_base_path)
        read_models_config(storage.join(args.serving_dir, MODELS_CONFIG))  # the Pusher edits it: damage found now
    except OSError as err:
        raise BadArgumentError(f"--serving-dir {args.serving_dir}: {err}") from None
    except ValueError as err:
        raise BadArgumentError(str(err)) from err
    if args.pipeline_name is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}", args.pipeline_name) \
            or ".." in (args.pipeline_name or ""):
        raise BadArgumentError(f"--pipeline-name {args.pipeline_name!r} must be letters, digits, '-', '_' or '.' "
                               "(no '..', at most 100 characters)")
    run = LocalRun(pipeline_name=args.pipeline_name or default_pipeline_name(spec.name),
                   pipeline_root=args.pipeline_root, data_path=args.data, dataset=spec, hparams=hparams,
                   serving_dir=args.serving_dir, model_name=args.model_name or spec.name,
                   enable_cache=not args.no_cache, beam_args=tuple(args.beam_arg), workers=args.workers,
                   server_base_path=args.serving_base_path or "")
    log_path = None if args.verbose else run_log_path(args.pipeline_root)
    try:
        with exclusive_root(run.pipeline_root):  # before the log: a refused run writes nothing
            if log_path:
                print(f"library output (TensorFlow, Beam, TFX warnings) goes to {log_path}; --verbose shows it",
                      file=sys.stderr)
            with (console.library_output_to(log_path) if log_path else contextlib.nullcontext()):
                produced = run_holding_root(run)
    except PipelineRootBusyError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as err:  # noqa: BLE001 - report which component failed and why, then exit non-zero
        return _failed(err, args.debug, log_path)
    from cifar_tfx.reporting.outcome import read_outcome

    _print_artifacts(produced)
    print(f"pipeline {run.pipeline_name} finished; ML Metadata: {run.metadata_path}")
    with (console.library_output_to(log_path) if log_path else contextlib.nullcontext()):
        outcome = read_outcome(produced)  # TFMA's loaders warn too
        report = _write_run_report(args.pipeline_root)
    if outcome.trained:
        print(outcome.trained)
    print(report)
    print(outcome.line(run.model_name))
    return 0 if outcome.pushed else EXIT_NOT_PUSHED


def _failed(err: Exception, debug: bool, log_path: Optional[str]) -> int:
    """The exit code and lines for a run that raised ``err``: bad input found inside a component is
    exit 2, any other failure exit 3; an interrupt Beam wrapped is raised again for ``cli.main``."""
    stopped = interruption_in(err)
    if stopped is not None:  # Ctrl-C or SIGTERM: cli.main says where the run stopped and how to resume
        raise stopped from None
    if debug:
        traceback.print_exc()
    data_error = data_error_in(err)
    if data_error is not None:  # bad input found inside a component (Beam wraps it)
        print(f"error: {data_error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"pipeline failed: {root_message(err)}", file=sys.stderr)
    if not debug:
        print(f"(the traceback: --debug; library output: {log_path or 'above'})", file=sys.stderr)
    return EXIT_PIPELINE_FAILED


def _print_artifacts(produced) -> None:
    """One line per artifact a user looks at next (examples, anomalies, graph, model, evaluation)."""
    from tfx.utils import path_constants

    shown = ("examples", "anomalies", "transform_graph", "model", "model_run", "evaluation")
    for artifact in produced:
        if artifact.component in (ids.EXAMPLE_GEN, ids.EXAMPLE_VALIDATOR, ids.TRANSFORM, ids.TRAINER, ids.EVALUATOR) \
                and artifact.output in shown:
            uri = artifact.uri
            if (artifact.component, artifact.output) == (ids.TRAINER, "model"):
                uri = os.path.join(uri, path_constants.SERVING_MODEL_DIR) + "  (SavedModel)"
            print(f"{artifact.component:>18} {artifact.output:<16} {uri}")


def _write_run_report(pipeline_root: str) -> str:
    """``report: PATH`` for the run just finished, or why there is none (the run's outcome stands)."""
    from cifar_tfx.reporting.run_report import write_report

    try:
        return f"report: {write_report(pipeline_root)}"
    except Exception as err:  # noqa: BLE001 - a report that cannot be drawn must not turn a pushed run into a failure
        return f"report not written ({type(err).__name__}: {err}); try `cifar-tfx report {pipeline_root}`"


def _cmd_report(args: argparse.Namespace) -> int:
    use_keras2()
    from cifar_tfx.reporting.run_record import METADATA_FILE, RunNotFoundError, load_run  # ML Metadata only: quiet

    # Everything that can be refused is refused before anything is created (the log folder included).
    metadata = os.path.join(args.pipeline_root, METADATA_FILE)
    if os.path.exists(args.pipeline_root) and not os.path.isdir(args.pipeline_root):
        raise BadArgumentError(f"{args.pipeline_root} is a file: give the --pipeline-root folder of a run")
    check_store(args.pipeline_root)
    try:
        load_run(args.pipeline_root, args.run)
    except RunNotFoundError as err:
        raise BadArgumentError(str(err)) from err
    except RuntimeError as err:  # ML Metadata's own error for a store SQLite reads but it cannot
        reason = re.search(r"Error when executing query: (.*?)(?: query:|$)", str(err))
        if reason is None:
            raise
        raise BadArgumentError(f"{metadata} is damaged: {reason.group(1)[:200]}") from err
    if args.out:
        check_writable_file(args.out, "--out")
    else:
        check_writable_folder(os.path.join(args.pipeline_root, "reports"), "the report folder (or give --out)")
    logs = os.path.join(os.path.abspath(args.pipeline_root), "logs")
    if not args.verbose:
        check_writable_folder(logs, "the log folder (or give --verbose)")
    log_path = None if args.verbose else os.path.join(logs, time.strftime("report-%Y%m%d-%H%M%S.log"))
    with (console.library_output_to(log_path) if log_path else contextlib.nullcontext()):
        from cifar_tfx.reporting.run_report import write_report  # imports TFMA and TensorFlow: noisy

        path = write_report(args.pipeline_root, args.run, args.out)
    print(path)
    return 0


def check_store(pipeline_root: str) -> None:
    """A ``metadata.sqlite`` SQLite cannot read is bad input: one line naming it (see ``check_store_file``)."""
    from cifar_tfx.reporting.run_record import DamagedStoreError, check_store_file

    try:
        check_store_file(pipeline_root)
    except DamagedStoreError as err:
        raise BadArgumentError(str(err)) from None


def default_pipeline_name(dataset: str) -> str:
    """``<dataset>-resnet`` with characters KFP refuses in names replaced (``fashion-mnist-resnet``)."""
    return dataset.replace("_", "-") + "-resnet"


def data_error_in(err: BaseException) -> Optional[DataError]:
    """The outermost :class:`DataError` in ``err``'s chain of causes, if any."""
    return cause_of_kind(err, DataError)  # type: ignore[return-value]


def run_log_path(pipeline_root: str) -> str:
    """``<pipeline_root>/logs/run-YYYYmmdd-HHMMSS.log``: where a quiet run's library output goes."""
    return os.path.join(os.path.abspath(pipeline_root), "logs", time.strftime("run-%Y%m%d-%H%M%S.log"))


def root_message(err: BaseException) -> str:
    """The innermost exception's message (Beam wraps component errors)."""
    while err.__cause__ is not None or err.__context__ is not None:
        err = err.__cause__ or err.__context__  # type: ignore[assignment]
    return f"{type(err).__name__}: {err}"


def add_run_commands(commands) -> None:
    """The ``run`` and ``report`` commands."""
    run = commands.add_parser("run", help="run the TFX pipeline locally (Beam DAG runner)")
    run.add_argument("--data", required=True, help="archive, extracted folder or `data synth` output")
    run.add_argument("--dataset", default=DEFAULT_DATASET, choices=sorted(DATASETS))
    run.add_argument("--profile", help="hyperparameter profile: demo, full (the paper's run), budget "
                     "(default: budget with --time-budget-minutes, else demo)")
    run.add_argument("--pipeline-root", default="runs/pipeline", help="artifacts and ML Metadata")
    run.add_argument("--pipeline-name", help="default: <dataset>-resnet")
    run.add_argument("--serving-dir", default="runs/serving", help="TF Serving model base folder")
    run.add_argument("--model-name", help="model name under --serving-dir (default: the dataset's name)")
    run.add_argument("--serving-base-path", metavar="PATH",
                     help="--serving-dir as TF Serving will see it, written into models.config (e.g. /models "
                          "where its container mounts the folder; default: the folder's own path)")
    run.add_argument("--no-cache", action="store_true", help="re-run every component even if unchanged")
    run.add_argument("--beam-arg", action="append", default=[], metavar="ARG",
                     help="a Beam option for ExampleGen, StatisticsGen, Transform and Evaluator (repeatable), "
                          "e.g. --beam-arg=--runner=DataflowRunner")
    run.add_argument("--workers", type=positive_int, default=1,
                     help="DirectRunner workers: 1 runs in this process (default), more in multi-processing mode")
    run.add_argument("--verbose", action="store_true",
                     help="show library output (TensorFlow, Beam, TFX) instead of writing it to the run log")
    run.add_argument("--debug", action="store_true", help="print the traceback when a component fails")
    add_hparam_options(run)
    run.set_defaults(func=_cmd_run)

    report = commands.add_parser("report", help="write one self-contained HTML page about a pipeline run")
    report.add_argument("pipeline_root", help="the --pipeline-root of the run")
    report.add_argument("--run", default="latest", help="run id (ML Metadata pipeline_run) or latest (default)")
    report.add_argument("--out", help="HTML file to write (default: PIPELINE_ROOT/reports/<run id>.html)")
    report.add_argument("--verbose", action="store_true", help="show library output instead of logging it")
    report.set_defaults(func=_cmd_report)
