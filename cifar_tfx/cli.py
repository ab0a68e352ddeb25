"""``cifar-tfx``: the command line. Sub-commands import TensorFlow only when they need it.

    cifar-tfx data verify PATH          summarise an archive or folder as JSON
    cifar-tfx data download             fetch an official archive (md5-checked, resumable)
    cifar-tfx data synth --out DIR      write the embedded synthetic dataset
    cifar-tfx run --data PATH           run the TFX pipeline locally
    cifar-tfx predict IMAGE...          classify images with TF Serving (REST/gRPC) or a SavedModel
    cifar-tfx serving config|label|rollback   edit models.config for TF Serving
    cifar-tfx kubeflow compile ...      write the Kubeflow Pipelines 2 spec (open-source KFP or Vertex AI)
    cifar-tfx kubeflow submit SPEC      start a run of it and, with --wait, follow it to the end
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
import traceback
from typing import List, Optional

from cifar_tfx import console
from cifar_tfx.data.datasets import DATASETS, FORMATS, get_dataset
from cifar_tfx.data.errors import DataError, UnknownNameError

EXIT_BAD_INPUT = 2
EXIT_PIPELINE_FAILED = 3
EXIT_NOT_PUSHED = 4
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it


class BadArgumentError(Exception):
    """A command-line value that cannot work; reported as one ``error:`` line, exit 2."""


def _use_keras2() -> None:
    """tensorflow-transform 1.16 needs Keras 2; this must happen before TensorFlow loads."""
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")


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


def _cmd_synth(args: argparse.Namespace) -> int:
    from cifar_tfx.data.synth import write_dataset

    check_writable_folder(args.out, "--out")
    try:
        folder = write_dataset(args.out, train=args.train, test=args.test, seed=args.seed,
                               spec=get_dataset(args.dataset))
    except ValueError as err:
        raise BadArgumentError(str(err)) from err
    print(folder)
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    _use_keras2()
    from cifar_tfx.data.reader import detect_source
    from cifar_tfx.serving.model_config import check_model_name
    from cifar_tfx.pipeline.local_runner import LocalRun, PipelineRootBusyError, run_local

    spec = get_dataset(args.dataset)
    hparams = hparams_from_args(args)
    try:
        hparams.check_fits(spec.height, spec.width)
    except ValueError as err:
        raise BadArgumentError(str(err)) from err
    detect_source(args.data, spec)  # a bad --data fails here, before TFX starts
    check_writable_folder(args.serving_dir, "--serving-dir")
    check_writable_folder(args.pipeline_root, "--pipeline-root")
    try:
        check_model_name(args.model_name or spec.name)
    except ValueError as err:
        raise BadArgumentError(str(err)) from err
    run = LocalRun(pipeline_name=args.pipeline_name or default_pipeline_name(spec.name),
                   pipeline_root=args.pipeline_root, data_path=args.data, dataset=spec, hparams=hparams,
                   serving_dir=args.serving_dir, model_name=args.model_name or spec.name,
                   enable_cache=not args.no_cache, beam_args=tuple(args.beam_arg), workers=args.workers)
    log_path = None if args.verbose else run_log_path(args.pipeline_root)
    if log_path:
        print(f"library output (TensorFlow, Beam, TFX warnings) goes to {log_path}; --verbose shows it",
              file=sys.stderr)
    try:
        with (console.library_output_to(log_path) if log_path else contextlib.nullcontext()):
            produced = run_local(run)
    except PipelineRootBusyError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as err:  # noqa: BLE001 - report which component failed and why, then exit non-zero
        if args.debug:
            traceback.print_exc()
        data_error = _data_error_in(err)
        if data_error is not None:  # bad input found inside a component (Beam wraps it)
            print(f"error: {data_error}", file=sys.stderr)
            return EXIT_BAD_INPUT
        print(f"pipeline failed: {_root_message(err)}", file=sys.stderr)
        if not args.debug:
            print(f"(the traceback: --debug; library output: {log_path or 'above'})", file=sys.stderr)
        return EXIT_PIPELINE_FAILED
    from tfx.utils import path_constants

    from cifar_tfx.pipeline.outcome import read_outcome

    for artifact in produced:
        if artifact.component in ("CifarExampleGen", "ExampleValidator", "Transform", "Trainer", "Evaluator") \
                and artifact.output in ("examples", "anomalies", "transform_graph", "model", "model_run", "evaluation"):
            uri = artifact.uri
            if (artifact.component, artifact.output) == ("Trainer", "model"):
                uri = os.path.join(uri, path_constants.SERVING_MODEL_DIR) + "  (SavedModel)"
            print(f"{artifact.component:>18} {artifact.output:<16} {uri}")
    print(f"pipeline {run.pipeline_name} finished; ML Metadata: {run.metadata_path}")
    with (console.library_output_to(log_path) if log_path else contextlib.nullcontext()):
        outcome = read_outcome(produced)  # TFMA's loaders warn too
        report = _write_run_report(args.pipeline_root)
    if outcome.trained:
        print(outcome.trained)
    print(report)
    print(outcome.line(run.model_name))
    return 0 if outcome.pushed else EXIT_NOT_PUSHED


def _write_run_report(pipeline_root: str) -> str:
    """``report: PATH`` for the run just finished, or why there is none (the run's outcome stands)."""
    from cifar_tfx.pipeline.run_report import write_report

    try:
        return f"report: {write_report(pipeline_root)}"
    except Exception as err:  # noqa: BLE001 - a report that cannot be drawn must not turn a pushed run into a failure
        return f"report not written ({type(err).__name__}: {err}); try `cifar-tfx report {pipeline_root}`"


def _cmd_report(args: argparse.Namespace) -> int:
    _use_keras2()
    from cifar_tfx.pipeline.run_record import RunNotFoundError
    from cifar_tfx.pipeline.run_report import write_report

    log_path = None if args.verbose else os.path.join(os.path.abspath(args.pipeline_root), "logs",
                                                      time.strftime("report-%Y%m%d-%H%M%S.log"))
    try:
        with (console.library_output_to(log_path) if log_path else contextlib.nullcontext()):
            path = write_report(args.pipeline_root, args.run, args.out)
    except RunNotFoundError as err:
        raise BadArgumentError(str(err)) from err
    print(path)
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from cifar_tfx.serving import client
    from cifar_tfx.serving.images import load_images

    spec = get_dataset(args.dataset)
    if args.batch_size < 1 or args.top_k < 1 or not args.timeout > 0:
        raise BadArgumentError("--batch-size and --top-k must be >= 1 and --timeout > 0")
    images = load_images(args.images, (spec.width, spec.height), resize=args.resize)
    if args.print_request:
        print(json.dumps(client.rest_request_body(images)))
        return 0
    if args.saved_model:
        _use_keras2()
        send = lambda batch: client.predict_saved_model(args.saved_model, batch, spec.class_names)  # noqa: E731
    elif args.grpc:
        _use_keras2()
        send = lambda batch: client.predict_grpc(args.grpc, args.model_name or spec.name, batch, spec.class_names,  # noqa: E731
                                                 args.version, args.timeout)
    else:
        send = lambda batch: client.predict_rest(args.server, args.model_name or spec.name, batch, spec.class_names,  # noqa: E731
                                                 args.version, args.timeout)
    try:
        predictions = []
        for start in range(0, len(images), args.batch_size):
            predictions += send(images[start:start + args.batch_size])
    except client.PredictError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    rows = [{"file": path, "top": [{"class": name, "probability": round(p, 6)} for name, p in pred.top(args.top_k)]}
            for path, pred in zip(args.images, predictions)]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for row in rows:
            ranked = "  ".join(f"{t['class']} {t['probability']:.3f}" for t in row["top"])
            print(f"{row['file']}: {ranked}")
    return 0


def _cmd_kubeflow_compile(args: argparse.Namespace) -> int:
    _use_keras2()
    from cifar_tfx.kubeflow.compiler import KubeflowTarget, compile_pipeline, parse_node_selector

    hparams = hparams_from_args(args)
    try:
        target = KubeflowTarget(
            image=args.image, pipeline_root=args.pipeline_root, data_path=args.data, serving_dir=args.serving_dir,
            target=args.target, model_name=args.model_name or args.dataset, trainer_gpus=args.gpus,
            gpu_type=args.gpu_type or "",
            data_volume=_volume(args.data_pvc, "/mnt/data"), serving_volume=_volume(args.serving_pvc, "/mnt/models"),
            gpu_node_selector=parse_node_selector(args.gpu_node_selector))
    except ValueError as err:
        raise BadArgumentError(str(err)) from err
    spec = get_dataset(args.dataset)
    print(compile_pipeline(target, spec, hparams, args.output, pipeline_name=default_pipeline_name(spec.name)))
    return 0


def _volume(value: Optional[str], default_mount: str):
    """``NAME`` or ``NAME:MOUNT_PATH`` as a :class:`VolumeMount` (``None`` stays ``None``)."""
    from cifar_tfx.kubeflow.compiler import VolumeMount

    if value is None:
        return None
    claim, _, mount = value.partition(":")
    return VolumeMount(claim=claim, mount_path=mount or default_mount)


def _cmd_kubeflow_submit(args: argparse.Namespace) -> int:
    from cifar_tfx.kubeflow import submit

    try:
        spec = submit.load_spec(args.spec)
        options = submit.SubmitOptions(
            spec_path=args.spec, parameters=submit.parse_parameters(args.param, spec), run_name=args.run_name,
            experiment=args.experiment, enable_caching=False if args.no_cache else None,
            service_account=args.service_account, pipeline_root=args.pipeline_root)
        if args.target == "vertex":
            if not args.project or not args.region:
                raise submit.SubmitError("--target vertex needs --project and --region")
            job, run = submit.submit_vertex(options, args.project, args.region)
            get_state, final_states = (lambda: submit.vertex_run_state(job)), submit.VERTEX_FINAL_STATES
        else:
            if not args.host:
                raise submit.SubmitError("--host is required for --target kfp (the KFP API address)")
            client = submit.kfp_client(args.host, args.namespace, args.token)
            run = submit.submit_kfp(client, options, args.namespace)
            get_state, final_states = (lambda: submit.kfp_run_state(client, run.run_id)), submit.KFP_FINAL_STATES
        print(f"run {run.run_id}: {run.url}", flush=True)
        if not args.wait:
            return 0
        state = submit.wait_for_run(get_state, final_states, args.timeout, poll_seconds=args.poll_seconds)
    except submit.SubmitError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"run {run.run_id} finished: {state}")
    return 0 if final_states[state] else EXIT_PIPELINE_FAILED


def _cmd_serving(args: argparse.Namespace) -> int:
    """``serving config|label|rollback``: edit or rebase ``models.config`` through TF Serving's proto."""
    from google.protobuf import text_format

    from cifar_tfx import storage
    from cifar_tfx.serving import model_config

    path = storage.join(args.serving_dir, model_config.MODELS_CONFIG)
    try:
        config = model_config.read_models_config(path)
        if not config.model_config_list.config:
            raise ValueError(f"{path} lists no model (push one first)")
        if args.serving_command == "config":
            text = text_format.MessageToString(model_config.rebased(config, args.base_path))
            if args.out:
                storage.write_text_atomically(args.out, text)
                print(args.out)
            else:
                print(text, end="")
            return 0
        versions = model_config.existing_versions(storage.join(args.serving_dir, args.model))
        if args.serving_command == "label":
            updated = model_config.with_labels(config, args.model, model_config.parse_labels(args.labels), versions)
            message = f"{args.model}: labels " + ", ".join(f"{k}={v}" for k, v in sorted(
                model_config.entry_of(updated, args.model).version_labels.items()))
        else:
            updated, version, removed = model_config.rolled_back(config, args.model, versions, args.to)
            message = f"{args.model}: serving version {version} only" + (
                f"; removed labels on other versions: {', '.join(removed)}" if removed else "")
    except ValueError as err:
        raise BadArgumentError(str(err)) from err
    model_config.write_models_config(path, updated)
    print(message)
    return 0


def check_writable_folder(path: str, option: str) -> None:
    """Refuse, before anything runs, a local folder that cannot be created or written."""
    from cifar_tfx import storage

    if storage.is_remote(path):
        return
    if os.path.exists(path) and not os.path.isdir(path):
        raise BadArgumentError(f"{option} {path} is a file, not a folder")
    existing = path
    while not os.path.exists(existing):
        existing = os.path.dirname(os.path.abspath(existing))
    if not os.path.isdir(existing) or not os.access(existing, os.W_OK | os.X_OK):
        raise BadArgumentError(f"{option} {path} cannot be created or written ({existing} is not a writable folder)")


def default_pipeline_name(dataset: str) -> str:
    """``<dataset>-resnet`` with characters KFP refuses in names replaced (``fashion-mnist-resnet``)."""
    return dataset.replace("_", "-") + "-resnet"


def hparams_from_args(args: argparse.Namespace):
    """The ``--profile`` hyperparameters with every given override applied."""
    from cifar_tfx.trainer.hparams import get_profile, with_overrides

    profile = args.profile or ("budget" if args.time_budget_minutes is not None else "demo")
    flip = {"on": True, "off": False}.get(args.test_time_flip or "")
    try:
        return with_overrides(
            get_profile(profile), lr_schedule=args.lr_schedule, label_smoothing=args.label_smoothing,
            test_time_flip=flip, depth=args.depth, epochs=args.epochs, train_steps=args.train_steps,
            time_budget_minutes=args.time_budget_minutes, batch_size=args.batch_size,
            learning_rate=args.learning_rate, cutout_size=args.cutout_size, precision=args.precision,
            xla=args.xla, distribute=args.distribute, min_accuracy=args.min_accuracy,
            max_regression=args.max_regression)
    except ValueError as err:
        raise BadArgumentError(str(err)) from err


def _data_error_in(err: BaseException) -> Optional[DataError]:
    """The outermost :class:`DataError` in ``err``'s chain of causes, if any."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, DataError):
            return err
        err = err.__cause__ or err.__context__  # type: ignore[assignment]
    return None


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def run_log_path(pipeline_root: str) -> str:
    """``<pipeline_root>/logs/run-YYYYmmdd-HHMMSS.log``: where a quiet run's library output goes."""
    return os.path.join(os.path.abspath(pipeline_root), "logs", time.strftime("run-%Y%m%d-%H%M%S.log"))


def _root_message(err: BaseException) -> str:
    """The innermost exception's message (Beam wraps component errors)."""
    while err.__cause__ is not None or err.__context__ is not None:
        err = err.__cause__ or err.__context__  # type: ignore[assignment]
    return f"{type(err).__name__}: {err}"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``cifar-tfx``."""
    parser = argparse.ArgumentParser(prog="cifar-tfx", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    data = commands.add_parser("data", help="verify, download or synthesise CIFAR-format data")
    data_commands = data.add_subparsers(dest="data_command", required=True)

    verify = data_commands.add_parser("verify", help="read an archive or folder fully and print a JSON summary")
    verify.add_argument("path", help="cifar-10-python.tar.gz, cifar-10-binary.tar.gz, an extracted folder, "
                                     "or (fashion_mnist) the folder of the four IDX files")
    verify.add_argument("--dataset", default="cifar10", choices=sorted(DATASETS))
    verify.set_defaults(func=_cmd_verify)

    download = data_commands.add_parser("download", help="download an official archive")
    download.add_argument("--format", choices=FORMATS,
                          help="layout (default: the dataset's first: python for cifar10, idx for fashion_mnist)")
    download.add_argument("--dest", default="data", help="folder for the archive (default: data)")
    download.add_argument("--dataset", default="cifar10", choices=sorted(DATASETS))
    download.add_argument("--url", help="download from this mirror instead of the official site")
    download.add_argument("--md5", help="expected md5 (default: the official archive's)")
    download.add_argument("--timeout", type=float, default=30.0, help="network timeout in seconds")
    download.set_defaults(func=_cmd_download)

    synth = data_commands.add_parser("synth", help="write the deterministic synthetic dataset")
    synth.add_argument("--out", required=True, help="folder to write cifar-10-batches-py/ into")
    synth.add_argument("--train", type=int, default=5000, help="training images (default 5000)")
    synth.add_argument("--test", type=int, default=1000, help="test images (default 1000)")
    synth.add_argument("--seed", type=int, default=20150610)
    synth.add_argument("--dataset", default="cifar10", choices=sorted(DATASETS))
    synth.set_defaults(func=_cmd_synth)

    run = commands.add_parser("run", help="run the TFX pipeline locally (Beam DAG runner)")
    run.add_argument("--data", required=True, help="archive, extracted folder or `data synth` output")
    run.add_argument("--dataset", default="cifar10", choices=sorted(DATASETS))
    run.add_argument("--profile", help="hyperparameter profile: demo, full (the paper's run), budget "
                     "(default: budget with --time-budget-minutes, else demo)")
    run.add_argument("--pipeline-root", default="runs/pipeline", help="artifacts and ML Metadata")
    run.add_argument("--pipeline-name", help="default: <dataset>-resnet")
    run.add_argument("--serving-dir", default="runs/serving", help="TF Serving model base folder")
    run.add_argument("--model-name", help="model name under --serving-dir (default: the dataset's name)")
    run.add_argument("--no-cache", action="store_true", help="re-run every component even if unchanged")
    run.add_argument("--beam-arg", action="append", default=[], metavar="ARG",
                     help="a Beam option for ExampleGen, StatisticsGen, Transform and Evaluator (repeatable), "
                          "e.g. --beam-arg=--runner=DataflowRunner")
    run.add_argument("--workers", type=_positive_int, default=1,
                     help="DirectRunner workers: 1 runs in this process (default), more in multi-processing mode")
    run.add_argument("--verbose", action="store_true",
                     help="show library output (TensorFlow, Beam, TFX) instead of writing it to the run log")
    run.add_argument("--debug", action="store_true", help="print the traceback when a component fails")
    _add_training_options(run)
    run.set_defaults(func=_cmd_run)

    report = commands.add_parser("report", help="write one self-contained HTML page about a pipeline run")
    report.add_argument("pipeline_root", help="the --pipeline-root of the run")
    report.add_argument("--run", default="latest", help="run id (ML Metadata pipeline_run) or latest (default)")
    report.add_argument("--out", help="HTML file to write (default: PIPELINE_ROOT/reports/<run id>.html)")
    report.add_argument("--verbose", action="store_true", help="show library output instead of logging it")
    report.set_defaults(func=_cmd_report)

    predict = commands.add_parser("predict", help="classify image files with the served model")
    predict.add_argument("images", nargs="+", help="PNG or JPEG files")
    where = predict.add_mutually_exclusive_group()
    where.add_argument("--server", default="http://localhost:8501", help="TF Serving REST address (default)")
    where.add_argument("--grpc", metavar="HOST:PORT", help="TF Serving gRPC address instead of REST")
    where.add_argument("--saved-model", metavar="DIR", help="run a SavedModel in this process instead")
    predict.add_argument("--model-name", help="default: the dataset's name")
    predict.add_argument("--version", type=int, help="model version (default: the server's latest)")
    predict.add_argument("--dataset", default="cifar10", choices=sorted(DATASETS))
    predict.add_argument("--top-k", type=int, default=3)
    predict.add_argument("--batch-size", type=int, default=64, help="images per request")
    predict.add_argument("--timeout", type=float, default=30.0, help="seconds per request")
    predict.add_argument("--resize", action="store_true", help="resize other sizes/formats to the model's")
    predict.add_argument("--json", action="store_true", help="JSON output")
    predict.add_argument("--print-request", action="store_true", help="print the REST body, send nothing")
    predict.set_defaults(func=_cmd_predict)

    serving = commands.add_parser("serving", help="edit the serving folder's models.config (TF Serving's proto)")
    serving_commands = serving.add_subparsers(dest="serving_command", required=True)
    config = serving_commands.add_parser("config", help="print models.config with base paths for a container")
    config.add_argument("serving_dir")
    config.add_argument("--base-path", required=True, help="where the container mounts SERVING_DIR, e.g. /models")
    config.add_argument("--out", help="write here instead of printing")
    label = serving_commands.add_parser("label", help="set version labels, e.g. stable=3 canary=4")
    label.add_argument("serving_dir")
    label.add_argument("--model", default="cifar10")
    label.add_argument("labels", nargs="+", metavar="NAME=VERSION")
    rollback = serving_commands.add_parser("rollback", help="serve an older version only (default: the previous)")
    rollback.add_argument("serving_dir")
    rollback.add_argument("--model", default="cifar10")
    rollback.add_argument("--to", type=int, help="version to serve")
    for sub in (config, label, rollback):
        sub.set_defaults(func=_cmd_serving)

    kubeflow = commands.add_parser("kubeflow", help="Kubeflow Pipelines 2")
    kubeflow_commands = kubeflow.add_subparsers(dest="kubeflow_command", required=True)
    compile_ = kubeflow_commands.add_parser("compile", help="write the KFP-2 pipeline spec (YAML)")
    compile_.add_argument("--target", choices=("kfp", "vertex"), default="kfp",
                          help="kfp: open-source KFP 2 (default); vertex: Vertex AI Pipelines")
    compile_.add_argument("--image", required=True, help="container image built from kubeflow/Dockerfile")
    compile_.add_argument("--pipeline-root", required=True, help="gs://bucket/path for the run's artifacts")
    compile_.add_argument("--data", required=True,
                          help="default of the data_path parameter: gs:// URI or a path on --data-pvc")
    compile_.add_argument("--serving-dir", required=True,
                          help="TF Serving base folder: gs:// URI or a path on --serving-pvc")
    compile_.add_argument("--data-pvc", metavar="NAME[:MOUNT]",
                          help="kfp: PVC with the data, mounted into ExampleGen (default mount /mnt/data)")
    compile_.add_argument("--serving-pvc", metavar="NAME[:MOUNT]",
                          help="kfp: PVC with the serving folder, mounted into the Pusher (default /mnt/models)")
    compile_.add_argument("--gpu-node-selector", action="append", default=[], metavar="LABEL=VALUE",
                          help="kfp: node label the Trainer pod must match (repeatable)")
    compile_.add_argument("--model-name", help="default: the dataset's name")
    compile_.add_argument("--dataset", default="cifar10", choices=sorted(DATASETS))
    compile_.add_argument("--profile", default="full")
    compile_.add_argument("--gpus", type=int, default=1, help="GPUs for the Trainer node (0: CPU only)")
    compile_.add_argument("--gpu-type", help="accelerator: kfp default nvidia.com/gpu, vertex NVIDIA_TESLA_T4")
    compile_.add_argument("--output", default="cifar10-resnet-pipeline.yaml")
    _add_training_options(compile_)
    compile_.set_defaults(func=_cmd_kubeflow_compile)

    submit = kubeflow_commands.add_parser("submit", help="start a run of a compiled spec (and wait for it)")
    submit.add_argument("spec", help="the YAML written by `kubeflow compile`")
    submit.add_argument("--target", choices=("kfp", "vertex"), default="kfp")
    submit.add_argument("--host", help="kfp: KFP API address, e.g. http://localhost:8080")
    submit.add_argument("--namespace", help="kfp: namespace of a multi-user deployment")
    submit.add_argument("--token", help="kfp: bearer token for the API server")
    submit.add_argument("--project", help="vertex: Google Cloud project")
    submit.add_argument("--region", help="vertex: region, e.g. us-central1")
    submit.add_argument("--experiment", help="experiment to file the run under")
    submit.add_argument("--run-name")
    submit.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                        help="pipeline parameter (repeatable): data_path, epochs, time_budget_minutes, min_accuracy")
    submit.add_argument("--pipeline-root", help="override the spec's defaultPipelineRoot")
    submit.add_argument("--no-cache", action="store_true", help="run every task, take nothing from the cache")
    submit.add_argument("--service-account")
    submit.add_argument("--wait", action="store_true", help="wait for the run; exit 0 succeeded, 3 failed")
    submit.add_argument("--timeout", type=float, default=24 * 3600.0, help="seconds to wait (default 24 h)")
    submit.add_argument("--poll-seconds", type=float, default=15.0, help=argparse.SUPPRESS)
    submit.set_defaults(func=_cmd_kubeflow_submit)
    return parser


def _add_training_options(run: argparse.ArgumentParser) -> None:
    training = run.add_argument_group("training overrides (default: the profile's value)")
    training.add_argument("--depth", type=int, help="ResNet depth 6n+2 (20, 32, 44, 56, 110); "
                          "the budget profile picks one from measured throughput unless given")
    training.add_argument("--epochs", type=float, help="training epochs (the schedule drops at 1/2, 3/4)")
    training.add_argument("--train-steps", type=int, help="training steps instead of epochs")
    training.add_argument("--time-budget-minutes", type=float,
                          help="train for this wall-clock time instead (the schedule counts in time)")
    training.add_argument("--lr-schedule", choices=("step", "linear"),
                          help="step: drops at 1/2 and 3/4 (the paper's); linear: decay to 0 at the end")
    training.add_argument("--label-smoothing", type=float, help="0 for plain cross-entropy")
    training.add_argument("--test-time-flip", choices=("on", "off"),
                          help="serve (and gate) the mean prediction of the image and its mirror")
    training.add_argument("--batch-size", type=int)
    training.add_argument("--learning-rate", type=float, help="initial SGD learning rate")
    training.add_argument("--cutout-size", type=int, help="cutout square side in pixels; 0 disables")
    training.add_argument("--precision", choices=("auto", "float32", "mixed_float16", "mixed_bfloat16"))
    training.add_argument("--xla", choices=("auto", "on", "off"))
    training.add_argument("--distribute", choices=("auto", "on", "off"), help="MirroredStrategy")
    gate = run.add_argument_group("evaluator gate (default: the profile's value)")
    gate.add_argument("--min-accuracy", type=float, help="bless only at or above this test accuracy")
    gate.add_argument("--max-regression", type=float,
                      help="bless only if accuracy is at most this much below the last blessed model's")


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
