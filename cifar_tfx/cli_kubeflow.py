"""``cifar-tfx kubeflow compile|submit``: the Kubeflow Pipelines 2 spec and its runs."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Optional

from cifar_tfx import console
from cifar_tfx.cli_common import (EXIT_BAD_INPUT, EXIT_NOT_PUSHED, EXIT_PIPELINE_FAILED, EXIT_RUN_UNFOLLOWED,
                                  BadArgumentError, positive_seconds, use_keras2)
from cifar_tfx.cli_hparams import add_hparam_options, hparams_from_args
from cifar_tfx.cli_run import default_pipeline_name
from cifar_tfx.data.datasets import DATASETS, DEFAULT_DATASET, get_dataset
from cifar_tfx.data.errors import DataError, UnknownNameError
from cifar_tfx.trainer.hparams import run_parameter_fields


def _cmd_kubeflow_compile(args: argparse.Namespace) -> int:
    _check_output_file(args.output)  # before seconds of imports
    use_keras2()
    # TensorFlow's and TFX's import-time lines and warnings go to a log, shown with --verbose
    refused = (BadArgumentError, DataError, UnknownNameError, ValueError)  # one error line each: the log goes
    with console.libraries_quiet("kubeflow-compile", args.verbose, expected=refused):
        written = _compile(args)
    print(written)
    return 0


def _check_output_file(path: str) -> None:
    """Refuse an ``--output`` the spec cannot be written to: not YAML, a folder, or in no writable folder."""
    if not path.endswith((".yaml", ".yml")):
        raise BadArgumentError(f"--output {path!r} must end in .yaml (KFP 2 takes a YAML PipelineSpec)")
    if os.path.isdir(path):
        raise BadArgumentError(f"--output {path} is a folder: name the file to write, e.g. {path}/pipeline.yaml")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder) or not os.access(folder, os.W_OK | os.X_OK):
        raise BadArgumentError(f"--output {path}: {folder} is not a writable folder")


def _compile(args: argparse.Namespace) -> str:
    from cifar_tfx.kubeflow.compiler import (DEFAULT_GPU_TOLERATIONS, KubeflowTarget, compile_pipeline,
                                             parse_pairs, parse_secret_env, parse_secret_volume,
                                             parse_tolerations)

    hparams = hparams_from_args(args)
    try:
        target = KubeflowTarget(
            image=args.image, pipeline_root=args.pipeline_root, data_path=args.data, serving_dir=args.serving_dir,
            target=args.target, model_name=args.model_name or args.dataset, trainer_gpus=args.gpus,
            gpu_type=args.gpu_type or "", allow_cpu_fallback=args.allow_cpu_fallback,
            trainer_cpus=args.trainer_cpu, trainer_memory_gb=args.trainer_memory, task_cpus=args.cpu,
            task_memory_gb=args.memory, retries=args.retries,
            gpu_tolerations=parse_tolerations(args.gpu_toleration) if args.gpu_toleration else DEFAULT_GPU_TOLERATIONS,
            data_volume=_volume(args.data_pvc, "/mnt/data"), serving_volume=_volume(args.serving_pvc, "/mnt/models"),
            gpu_node_selector=parse_pairs(args.gpu_node_selector, "--gpu-node-selector"),
            secret_volumes=tuple(parse_secret_volume(text) for text in args.secret),
            secret_env=tuple(parse_secret_env(text) for text in args.secret_env),
            env=parse_pairs(args.env, "--env"), serving_base_path=args.serving_base_path or "")
    except ValueError as err:
        raise BadArgumentError(str(err)) from err
    spec = get_dataset(args.dataset)
    return compile_pipeline(target, spec, hparams, args.output, pipeline_name=default_pipeline_name(spec.name))


def _volume(value: Optional[str], default_mount: str):
    """``NAME`` or ``NAME:MOUNT_PATH`` as a :class:`VolumeMount` (``None`` stays ``None``)."""
    from cifar_tfx.kubeflow.compiler import VolumeMount

    if value is None:
        return None
    claim, _, mount = value.partition(":")
    return VolumeMount(claim=claim, mount_path=mount or default_mount)


def _cmd_kubeflow_submit(args: argparse.Namespace) -> int:
    import tempfile

    with tempfile.TemporaryDirectory(prefix="cifar-tfx-submit-") as scratch:
        return _submit_and_follow(args, scratch)


def _submit_and_follow(args: argparse.Namespace, scratch: str) -> int:
    """Submit (with the cache settings of :func:`_cache_settings`), then follow the run if asked."""
    from cifar_tfx.kubeflow import run_request, submit

    try:
        spec, platform = run_request.load_documents(args.spec)
        task_names = sorted(spec["root"]["dag"]["tasks"])
        parameters = run_request.parse_parameters(args.param, spec, platform)
        request_timeout = min(args.timeout, submit.REQUEST_SECONDS)
        if args.target == "vertex" and (not args.project or not args.region):
            raise submit.SubmitError("--target vertex needs --project and --region")
        if args.target == "kfp":
            if not args.host:
                raise submit.SubmitError("--host is required for --target kfp (the KFP API address)")
            token = _token(args.token_file)
            client = submit.kfp_client(args.host, args.namespace, token, request_timeout=request_timeout)
        spec_path, parameters, cache_note = _cache_settings(args, spec, parameters, scratch)
        options = submit.SubmitOptions(
            spec_path=spec_path, parameters=parameters, run_name=args.run_name,
            experiment=args.experiment, enable_caching=False if args.no_cache else None,
            service_account=args.service_account, pipeline_root=args.pipeline_root)
        if args.target == "vertex":
            job, run = submit.submit_vertex(options, args.project, args.region)
            get_state, final_states = (lambda: submit.vertex_run_state(job)), submit.VERTEX_FINAL_STATES
            get_outcome = lambda: submit.vertex_run_outcome(job, task_names)  # noqa: E731
        else:
            run = submit.submit_kfp(client, options, args.namespace)
            get_state = lambda: submit.kfp_run_state(client, run.run_id)  # noqa: E731
            final_states = submit.KFP_FINAL_STATES
            get_outcome = lambda: submit.kfp_run_outcome(client, run.run_id, task_names, token,  # noqa: E731
                                                         request_timeout)
    except submit.SubmitError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"run {run.run_id}: {run.url}", flush=True)
    if cache_note:
        print(cache_note, file=sys.stderr)
    if not args.wait:
        return 0
    try:
        submit.wait_for_run(get_state, final_states, args.timeout, poll_seconds=args.poll_seconds)
        outcome = get_outcome()
    except (submit.LostRun, submit.SubmitError) as err:
        print(f"error: {err}; the run goes on: follow it at {run.url}", file=sys.stderr)
        return EXIT_RUN_UNFOLLOWED
    return _report_outcome(run.run_id, outcome)


def _cache_settings(args: argparse.Namespace, spec, parameters, scratch: str):
    """``(spec path, parameters, note)`` to submit. With a data fingerprint (``--param data_fingerprint=``,
    ``--data-fingerprint``, else computed for ``gs://`` data) ExampleGen may come from KFP's cache, and so
    may every later task whose inputs are unchanged; without one, or with ``--no-cache``, nothing does."""
    from cifar_tfx.kubeflow import run_request

    if args.no_cache or run_request.FINGERPRINT_PARAMETER not in spec["root"].get("inputDefinitions", {}).get(
            "parameters", {}):
        return args.spec, parameters, ""
    fingerprint, why_not = parameters.get(run_request.FINGERPRINT_PARAMETER) or args.data_fingerprint, ""
    if not fingerprint:
        data_path = parameters.get(run_request.DATA_PATH_PARAMETER) or \
            spec["root"]["inputDefinitions"]["parameters"][run_request.DATA_PATH_PARAMETER].get("defaultValue", "")
        use_keras2()
        fingerprint, why_not = run_request.data_fingerprint(data_path)
    if not fingerprint:
        return args.spec, parameters, (f"cache: ExampleGen and the tasks after it run afresh: {why_not} "
                                       "(--data-fingerprint TEXT, changed whenever the data changes, lets "
                                       "unchanged tasks come from the cache)")
    cached_spec = run_request.with_cached_ingestion(args.spec, os.path.join(scratch, os.path.basename(args.spec)))
    return (cached_spec, {**parameters, run_request.FINGERPRINT_PARAMETER: fingerprint},
            f"cache: data fingerprint {fingerprint}: tasks whose inputs are unchanged come from the cache")


def _report_outcome(run_id: str, outcome) -> int:
    """One line for the finished run; exit 0 pushed, 4 not pushed, 3 failed, 5 outcome unknown."""
    if not outcome.succeeded:
        failed = f"; failed task: {', '.join(outcome.failed_tasks)}" if outcome.failed_tasks else ""
        print(f"run {run_id} finished: {outcome.state}{failed}")
        return EXIT_PIPELINE_FAILED
    if outcome.pushed is None:
        print(f"run {run_id} finished: {outcome.state}; whether the model was pushed is unknown: "
              f"{outcome.unknown_reason}")
        return EXIT_RUN_UNFOLLOWED
    if outcome.pushed:
        print(f"run {run_id} finished: {outcome.state}; pushed: version {outcome.pushed_version} "
              f"to {outcome.pushed_destination}")
        return 0
    print(f"run {run_id} finished: {outcome.state}; not pushed: the Evaluator did not bless the model "
          "(its gate.json says why); the serving folder is unchanged")
    return EXIT_NOT_PUSHED


TOKEN_VARIABLE = "KFP_TOKEN"
MAX_TOKEN_BYTES = 64 << 10  # a Kubernetes service-account token is about 1 KB


def _token(token_file: Optional[str]) -> Optional[str]:
    """The bearer token from ``--token-file``, else ``$KFP_TOKEN``, else none."""
    from cifar_tfx.kubeflow import submit

    from cifar_tfx.bounded_input import InputRefused, read_regular_file

    if token_file is None:
        return os.environ.get(TOKEN_VARIABLE) or None
    try:
        token = read_regular_file(token_file, max_bytes=MAX_TOKEN_BYTES, what="--token-file").decode("ascii").strip()
    except InputRefused as err:
        raise submit.SubmitError(str(err)) from err
    except UnicodeDecodeError:
        raise submit.SubmitError(f"--token-file {token_file} is not a token: a token is ASCII text") from None
    if not token:
        raise submit.SubmitError(f"--token-file {token_file} is empty")
    if any(character.isspace() or not character.isprintable() for character in token):
        raise submit.SubmitError(f"--token-file {token_file} holds more than one token (spaces, lines or control "
                                 "characters): a bearer token is one line")
    return token


def add_kubeflow_commands(commands) -> None:
    """The ``kubeflow`` command group: a list of option declarations, longer than 60 lines because
    each option is one statement (the hyperparameters' options come from ``cli_hparams``)."""
    kubeflow = commands.add_parser("kubeflow", help="Kubeflow Pipelines 2")
    kubeflow_commands = kubeflow.add_subparsers(dest="kubeflow_command", required=True)
    compile_ = kubeflow_commands.add_parser("compile", help="write the KFP-2 pipeline spec (YAML)")
    compile_.add_argument("--target", choices=("kfp", "vertex"), default="kfp",
                          help="kfp: open-source KFP 2 (default); vertex: Vertex AI Pipelines")
    compile_.add_argument("--image", required=True, help="container image built from kubeflow/Dockerfile")
    compile_.add_argument("--pipeline-root", required=True,
                          help="where the run's artifacts go: kfp gs://, minio:// or s3://bucket/path "
                               "(the default install's is minio://mlpipeline/v2/artifacts); vertex gs://")
    compile_.add_argument("--data", required=True,
                          help="default of the data_path parameter: gs:// URI or a path on --data-pvc")
    compile_.add_argument("--serving-dir", required=True,
                          help="TF Serving base folder: gs:// URI or a path on --serving-pvc")
    compile_.add_argument("--serving-base-path", metavar="PATH",
                          help="--serving-dir as the TF Serving pod sees it, written into models.config "
                               "(default: the Pusher's own path, right when both mount the volume at one path)")
    compile_.add_argument("--data-pvc", metavar="NAME[:MOUNT]",
                          help="kfp: PVC with the data, mounted into ExampleGen (default mount /mnt/data)")
    compile_.add_argument("--serving-pvc", metavar="NAME[:MOUNT]",
                          help="kfp: PVC with the serving folder, mounted into the Pusher (default /mnt/models)")
    compile_.add_argument("--secret", action="append", default=[], metavar="NAME[:MOUNT]",
                          help="kfp: mount this Secret's keys as files into every task (default mount "
                               "/var/secrets/NAME; repeatable), e.g. a key file for gs:// data")
    compile_.add_argument("--secret-env", action="append", default=[], metavar="VARIABLE=SECRET:KEY",
                          help="kfp: set VARIABLE in every task from KEY of SECRET (repeatable)")
    compile_.add_argument("--env", action="append", default=[], metavar="VARIABLE=VALUE",
                          help="environment variable of every task (repeatable), e.g. "
                               "GOOGLE_APPLICATION_CREDENTIALS=/var/secrets/gcs-key/key.json")
    compile_.add_argument("--gpu-node-selector", action="append", default=[], metavar="LABEL=VALUE",
                          help="kfp: node label the Trainer pod must match (repeatable)")
    compile_.add_argument("--model-name", help="default: the dataset's name")
    compile_.add_argument("--dataset", default=DEFAULT_DATASET, choices=sorted(DATASETS))
    compile_.add_argument("--profile", help="hyperparameter profile: demo, full, budget (default, as for "
                          "`run`: budget with --time-budget-minutes, else demo)")
    compile_.add_argument("--gpus", type=int, default=1, help="GPUs for the Trainer node (0: CPU only)")
    compile_.add_argument("--gpu-type", help="accelerator: kfp default nvidia.com/gpu, vertex NVIDIA_TESLA_T4")
    sizes = compile_.add_argument_group("resources per task (kfp: requests; vertex: limits)")
    sizes.add_argument("--trainer-cpu", type=float, default=6.0, help="CPUs for the Trainer (default 6: fits an "
                       "8-vCPU GPU node beside its daemons)")
    sizes.add_argument("--trainer-memory", type=float, default=20.0, help="GB of memory for the Trainer (default 20)")
    sizes.add_argument("--cpu", type=float, default=2.0, help="CPUs for each Beam task (ExampleGen, StatisticsGen, "
                       "Transform, Evaluator), which runs as many Beam workers (default 2)")
    sizes.add_argument("--memory", type=float, default=8.0, help="GB of memory for each Beam task (default 8)")
    compile_.add_argument("--retries", type=int, default=0,
                          help="retry a failed task up to N times, 30 s apart and doubling (default 0)")
    compile_.add_argument("--gpu-toleration", action="append", metavar="KEY[=VALUE][:EFFECT]",
                          help="kfp: toleration of the Trainer's pod (repeatable; default nvidia.com/gpu:NoSchedule "
                               "with operator Exists, when it has GPUs)")
    compile_.add_argument("--allow-cpu-fallback", action="store_true",
                          help="a Trainer that sees no GPU trains on the CPU (default: the task fails)")
    compile_.add_argument("--output", default="cifar10-resnet-pipeline.yaml")
    compile_.add_argument("--verbose", action="store_true",
                          help="show TensorFlow's and TFX's own output instead of hiding it in a log")
    add_hparam_options(compile_)
    compile_.set_defaults(func=_cmd_kubeflow_compile)

    submit = kubeflow_commands.add_parser("submit", help="start a run of a compiled spec (and wait for it)")
    submit.add_argument("spec", help="the YAML written by `kubeflow compile`")
    submit.add_argument("--target", choices=("kfp", "vertex"), default="kfp")
    submit.add_argument("--host", help="kfp: KFP API address, e.g. http://localhost:8080")
    submit.add_argument("--namespace", help="kfp: namespace of a multi-user deployment")
    submit.add_argument("--token-file", metavar="FILE",
                        help=f"kfp: file holding the API server's bearer token (default: ${TOKEN_VARIABLE}; "
                             "a token is never taken from the command line, where `ps` shows it)")
    submit.add_argument("--project", help="vertex: Google Cloud project")
    submit.add_argument("--region", help="vertex: region, e.g. us-central1")
    submit.add_argument("--experiment", help="experiment to file the run under")
    submit.add_argument("--run-name")
    submit.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                        help="pipeline parameter (repeatable): data_path or a run parameter of the hyperparameters: "
                             + ", ".join(run_parameter_fields()))
    submit.add_argument("--pipeline-root", help="override the spec's defaultPipelineRoot")
    submit.add_argument("--no-cache", action="store_true", help="run every task, take nothing from the cache")
    submit.add_argument("--data-fingerprint", metavar="TEXT",
                        help="text that changes whenever the data changes (e.g. a dataset version): with it, "
                             "tasks whose inputs are unchanged come from KFP's cache (default: computed for "
                             "gs:// data; data on a volume runs afresh)")
    submit.add_argument("--service-account")
    submit.add_argument("--wait", action="store_true", help="wait for the run; exit 0 pushed, 4 not pushed, 3 failed, "
                        "5 lost the run (connection, --timeout) or could not read whether it pushed")
    submit.add_argument("--timeout", type=positive_seconds, default=24 * 3600.0,
                        help="seconds to wait (default 24 h); each call to the server waits at most a minute of it")
    submit.add_argument("--poll-seconds", type=positive_seconds, default=15.0, help=argparse.SUPPRESS)
    submit.set_defaults(func=_cmd_kubeflow_submit)
