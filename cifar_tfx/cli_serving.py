"""``cifar-tfx predict`` (query TF Serving or a SavedModel) and ``cifar-tfx serving`` (edit models.config)."""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys

from cifar_tfx import console
from cifar_tfx.cli_common import EXIT_BAD_INPUT, BadArgumentError, use_keras2
from cifar_tfx.data.datasets import DATASETS, DEFAULT_DATASET, get_dataset

MAX_SECONDS = 86_400.0  # a request or a wait longer than a day is a typo


def _seconds(text: str) -> float:
    """A time-out or wait: a finite number of seconds above 0 and at most a day (``inf``, ``1e300``,
    ``nan`` and negatives are refused here, not by a thread's ``join`` later)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a number of seconds") from None
    if not (math.isfinite(value) and 0 < value <= MAX_SECONDS):
        raise argparse.ArgumentTypeError(f"must be above 0 and at most {MAX_SECONDS:g} seconds, got {text[:40]}")
    return value


def _whole_seconds(text: str) -> int:
    """A whole number of seconds from 1 to a day (TF Serving's poll interval is an int32 of seconds)."""
    if not (text.isascii() and text.isdigit() and len(text) <= 5 and 1 <= int(text) <= MAX_SECONDS):
        raise argparse.ArgumentTypeError(f"must be a whole number of seconds from 1 to {MAX_SECONDS:g}, "
                                         f"got {text[:40]}")
    return int(text)


def _address(text: str) -> str:
    """A server address that is not empty (an empty ``--grpc`` would otherwise fall back to REST)."""
    if not text.strip() or any(c.isspace() for c in text) or len(text) > 2048:
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is no server address (HOST:PORT or a URL)")
    return text


def _version(text: str) -> int:
    from cifar_tfx.serving.model_config import version_number

    try:
        return version_number(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _cmd_predict(args: argparse.Namespace) -> int:
    from cifar_tfx.serving import client
    from cifar_tfx.serving.images import load_images

    spec = get_dataset(args.dataset)
    if args.batch_size < 1 or args.top_k < 1:
        raise BadArgumentError("--batch-size and --top-k must be >= 1")
    if args.version is not None and args.label is not None:
        raise BadArgumentError("give --version or --label, not both")
    images = load_images(args.images, (spec.width, spec.height), resize=args.resize)
    if args.print_request:
        print(json.dumps(client.rest_request_body(images)))
        return 0
    if args.saved_model:
        use_keras2()
        send = lambda batch: client.predict_saved_model(args.saved_model, batch, spec.class_names)  # noqa: E731
    elif args.grpc:
        use_keras2()
        send = lambda batch: client.predict_grpc(args.grpc, args.model_name or spec.name, batch, spec.class_names,  # noqa: E731
                                                 args.version, args.timeout, args.label)
    else:
        send = lambda batch: client.predict_rest(args.server, args.model_name or spec.name, batch, spec.class_names,  # noqa: E731
                                                 args.version, args.timeout, args.label)
    try:  # TensorFlow's import-time lines and warnings go to a log (shown with --verbose); REST loads none
        with (console.libraries_quiet("predict", args.verbose, expected=(client.PredictError,))
              if args.saved_model or args.grpc else contextlib.nullcontext()):
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


def _cmd_serving_status(args: argparse.Namespace) -> int:
    """``serving status``: the versions TF Serving knows of a model and their states (REST or gRPC);
    exit 0 when one is AVAILABLE, 4 when none is, 2 when the server cannot be asked."""
    from cifar_tfx.cli_common import EXIT_NOT_PUSHED
    from cifar_tfx.serving import client, versions

    if args.version is not None and args.label is not None:
        raise BadArgumentError("give --version or --label, not both")
    try:  # gRPC loads TensorFlow: its import-time lines go to a log (shown with --verbose); REST loads none
        with (console.libraries_quiet("serving-status", args.verbose, expected=(client.PredictError,))
              if args.grpc else contextlib.nullcontext()):
            version = args.version
            if args.label is not None:  # TF Serving's status ignores a label: resolve it first
                resolve = versions.label_version_grpc if args.grpc else versions.label_version_rest
                version = resolve(args.grpc or args.server, args.model, args.label, args.timeout)
            if args.grpc:
                states = versions.model_status_grpc(args.grpc, args.model, version, None, args.timeout)
            else:
                states = versions.model_status_rest(args.server, args.model, version, None, args.timeout)
    except client.PredictError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    for status in sorted(states, key=lambda v: v.version):
        print(f"{args.model} version {status.version}: {status.state}" + (f" ({status.error})" if status.error else ""))
    if not any(status.state == "AVAILABLE" for status in states):
        print(f"{args.model}: no version is AVAILABLE", file=sys.stderr)
        return EXIT_NOT_PUSHED
    return 0


def _cmd_serving(args: argparse.Namespace) -> int:
    """``serving config|label|rollback|policy|command``: edit or rebase ``models.config`` through TF Serving's
    proto, under the serving folder's lock (a push cannot interleave), or print the server command it needs;
    a folder that cannot be read or written is one line."""
    from cifar_tfx import storage

    if not storage.isdir(args.serving_dir):
        what = "is a file" if storage.exists(args.serving_dir) else "does not exist"
        raise BadArgumentError(f"{args.serving_dir} {what}: give the serving folder (the one holding models.config)")
    try:
        return _edit_serving_folder(args)
    except OSError as err:
        raise BadArgumentError(f"cannot change {args.serving_dir}: {err.strerror or err} (nothing was changed)") \
            from err


def _edit_serving_folder(args: argparse.Namespace) -> int:
    from google.protobuf import text_format

    from cifar_tfx import storage
    from cifar_tfx.serving import model_config

    path = storage.join(args.serving_dir, model_config.MODELS_CONFIG)
    if args.serving_command == "command":
        return _print_server_command(args, _read_listed(path))
    if args.serving_command == "config":
        try:
            text = text_format.MessageToString(model_config.rebased(_read_listed(path), args.base_path))
        except ValueError as err:
            raise BadArgumentError(str(err)) from err
        if args.out:
            try:
                storage.write_text_atomically(args.out, text)
            except OSError as err:
                raise BadArgumentError(f"cannot write {args.out}: {err.strerror or err}") from err
            print(args.out)
        else:
            print(text, end="")
        print(f"TF Serving needs {model_config.POLL_FLAG}=SECONDS {model_config.LABEL_FLAG} to serve this file "
              "(`cifar-tfx serving command` prints the whole command)", file=sys.stderr)
        return 0
    if args.serving_command == "label" and (args.server or args.grpc):
        _wait_for_labelled_versions(args, path)
    try:
        with model_config.config_lock(args.serving_dir):
            config = _read_listed(path)
            versions = model_config.versions_of(config, args.serving_dir, args.model)
            updated, message = _edited(args, config, versions)
            model_config.write_models_config(path, updated)
    except ValueError as err:
        raise BadArgumentError(str(err)) from err
    print(message)
    if args.serving_command == "label" and not (args.server or args.grpc) and updated_labels(args):
        print("note: written without asking TF Serving. If it has not loaded the labelled version(s) yet (a "
              "`serving policy` edit it has not polled), it refuses this models.config and never loads them "
              "(server_core.cc, UpdateModelVersionLabelMap); `--server URL` waits until they are AVAILABLE",
              file=sys.stderr)
    return 0


def updated_labels(args: argparse.Namespace):
    """The ``NAME=VERSION`` pairs of ``serving label`` that set a label (not those removing one)."""
    from cifar_tfx.serving import model_config

    return model_config.parse_labels([pair for pair in args.labels if not pair.endswith("=")])


WAIT_EVERY_SECONDS = 2.0  # how often `serving label --server` asks for the versions' states


def _wait_for_labelled_versions(args: argparse.Namespace, path: str) -> None:
    """``serving label --server/--grpc``: the edit is checked against the file first, then written only once
    the server reports every labelled version AVAILABLE. A label on a version TF Serving has not loaded makes
    it refuse the whole config; if that config also changed the policy, the new versions are never loaded
    (server_core.cc at 2.16.1: ReloadConfig stores the config, then UpdateModelVersionLabelMap fails before
    AddModelsViaModelConfigList)."""
    from cifar_tfx.serving import client, model_config, versions

    config = _read_listed(path)
    try:
        _edited(args, config, model_config.versions_of(config, args.serving_dir, args.model))
        labels = updated_labels(args)
    except ValueError as err:
        raise BadArgumentError(str(err)) from err
    if args.grpc:
        status_of = lambda v: versions.model_status_grpc(args.grpc, args.model, v, None, args.timeout)  # noqa: E731
    else:
        status_of = lambda v: versions.model_status_rest(args.server, args.model, v, None, args.timeout)  # noqa: E731
    try:
        versions.wait_until_available(status_of, sorted(set(labels.values())), args.wait_seconds,
                                      every=WAIT_EVERY_SECONDS)
    except client.PredictError as err:
        raise BadArgumentError(f"{err}; no label written") from err


def _print_server_command(args: argparse.Namespace, config) -> int:
    """``serving command``: the ``docker run`` (with ``--base-path``) or ``tensorflow_model_server`` command
    that serves this folder with the flags it needs (:func:`model_config.server_flags`)."""
    import os
    import posixpath
    import shlex

    from cifar_tfx.serving import model_config

    folder = os.path.abspath(args.serving_dir)
    seen_as = model_config.check_base_path(args.base_path) if args.base_path else folder
    try:
        flags = model_config.server_flags(posixpath.join(seen_as, model_config.MODELS_CONFIG), args.poll_seconds)
    except ValueError as err:
        raise BadArgumentError(str(err)) from err
    if args.base_path:
        command = ["docker", "run", "-p", "8500:8500", "-p", "8501:8501", "-v", f"{folder}:{seen_as}:ro", args.image]
    else:
        command = ["tensorflow_model_server", "--port=8500", "--rest_api_port=8501"]
    print(" ".join(shlex.quote(part) for part in command + flags))
    elsewhere = [e.name for e in config.model_config_list.config if not e.base_path.startswith(seen_as + "/")]
    if elsewhere:
        print(f"note: models.config's base_path of {', '.join(model_config.shown(n, 40) for n in elsewhere[:8])} "
              f"is not under {seen_as}, where this server sees the folder"
              + ("; push with --serving-base-path, or serve a copy from `cifar-tfx serving config`"
                 if args.base_path else ""), file=sys.stderr)
    return 0


def _read_listed(path: str):
    from cifar_tfx.serving import model_config

    try:
        config = model_config.read_models_config(path)
    except ValueError as err:
        raise BadArgumentError(str(err)) from err
    if not config.model_config_list.config:
        raise BadArgumentError(f"{path} lists no model (push one first)")
    return config


def _edited(args: argparse.Namespace, config, versions):
    """``(new config, message)`` for ``label``, ``rollback`` or ``policy``; ``ValueError`` if refused."""
    from cifar_tfx.serving import model_config

    if args.serving_command == "label":
        removed = [pair[:-1] for pair in args.labels if pair.endswith("=")]
        labels = model_config.parse_labels([pair for pair in args.labels if not pair.endswith("=")])
        updated = model_config.with_labels(config, args.model, labels, versions, remove=removed)
        labels = model_config.entry_of(updated, args.model).version_labels
        return updated, f"{args.model}: labels " + (", ".join(f"{k}={v}" for k, v in sorted(labels.items())) or "none")
    if args.serving_command == "policy":
        updated, loaded = model_config.with_policy(config, args.model, args.policy, args.versions, versions)
        added = sorted(set(loaded) - set(model_config.loaded_versions(model_config.entry_of(config, args.model),
                                                                      versions)))
        return updated, (f"{args.model}: policy {model_config.describe_policy(model_config.entry_of(updated, args.model))}"
                         f", serving version(s) {', '.join(map(str, loaded)) or 'none yet'}"
                         + (f"; label version(s) {', '.join(map(str, added))} only once TF Serving has loaded them "
                            "(`serving label … --server URL` waits for that)" if added else ""))
    updated, version, removed = model_config.rolled_back(config, args.model, versions, args.to)
    return updated, (f"{args.model}: serving version {version} only (`serving policy … latest` undoes it)"
                     + (f"; removed labels on other versions: {', '.join(removed)}" if removed else ""))


def add_serving_commands(commands) -> None:
    """The ``predict`` and ``serving`` commands."""
    _add_predict_command(commands)
    _add_serving_commands(commands)


def _add_predict_command(commands) -> None:
    predict = commands.add_parser("predict", help="classify image files with the served model")
    predict.add_argument("images", nargs="+", help="PNG or JPEG files")
    where = predict.add_mutually_exclusive_group()
    where.add_argument("--server", default="http://localhost:8501", type=_address,
                       help="TF Serving REST address (default)")
    where.add_argument("--grpc", metavar="HOST:PORT", type=_address, help="TF Serving gRPC address instead of REST")
    where.add_argument("--saved-model", metavar="DIR", help="run a SavedModel in this process instead")
    predict.add_argument("--model-name", help="default: the dataset's name")
    predict.add_argument("--version", type=_version, help="model version (default: the server's latest)")
    predict.add_argument("--label", help="version label instead of a version, e.g. stable (`serving label`)")
    predict.add_argument("--dataset", default=DEFAULT_DATASET, choices=sorted(DATASETS))
    predict.add_argument("--top-k", type=int, default=3)
    predict.add_argument("--batch-size", type=int, default=64, help="images per request")
    predict.add_argument("--timeout", type=_seconds, default=30.0, help="seconds per request")
    predict.add_argument("--resize", action="store_true", help="resize other sizes/formats to the model's")
    predict.add_argument("--json", action="store_true", help="JSON output")
    predict.add_argument("--print-request", action="store_true", help="print the REST body, send nothing")
    predict.add_argument("--verbose", action="store_true",
                         help="show TensorFlow's own output (--saved-model, --grpc) instead of hiding it in a log")
    predict.set_defaults(func=_cmd_predict)


def _add_serving_commands(commands) -> None:
    serving = commands.add_parser("serving", help="edit the serving folder's models.config (TF Serving's proto)")
    serving_commands = serving.add_subparsers(dest="serving_command", required=True)
    config = serving_commands.add_parser("config", help="print models.config with base paths for a container")
    config.add_argument("serving_dir")
    config.add_argument("--base-path", required=True, help="where the container mounts SERVING_DIR, e.g. /models")
    config.add_argument("--out", help="write here instead of printing")
    label = serving_commands.add_parser("label", help="set version labels, e.g. stable=3 canary=4")
    label.add_argument("serving_dir")
    label.add_argument("--model", default=DEFAULT_DATASET)
    label.add_argument("labels", nargs="+", metavar="NAME=VERSION", help="NAME=VERSION sets a label, NAME= removes it")
    where = label.add_mutually_exclusive_group()
    where.add_argument("--server", type=_address, help="TF Serving's REST address: write the labels only once it "
                       "reports their versions AVAILABLE (it refuses a label on a version it has not loaded)")
    where.add_argument("--grpc", metavar="HOST:PORT", type=_address, help="the same over gRPC")
    label.add_argument("--wait-seconds", type=_seconds, default=600.0, help="how long --server may take to load them")
    label.add_argument("--timeout", type=_seconds, default=30.0, help="seconds per status request")
    rollback = serving_commands.add_parser("rollback", help="serve an older version only (default: the previous)")
    rollback.add_argument("serving_dir")
    rollback.add_argument("--model", default=DEFAULT_DATASET)
    rollback.add_argument("--to", type=_version, help="version to serve")
    policy = serving_commands.add_parser(
        "policy", help="which versions TF Serving loads: latest (the newest), all, or specific V...")
    policy.add_argument("serving_dir")
    policy.add_argument("--model", default=DEFAULT_DATASET)
    policy.add_argument("policy", choices=("latest", "all", "specific"))
    policy.add_argument("versions", nargs="*", type=_version, metavar="VERSION", help="for specific: the versions")
    command = serving_commands.add_parser("command", help="print the TF Serving start command this folder needs")
    command.add_argument("serving_dir")
    command.add_argument("--base-path", help="where a container mounts SERVING_DIR: print a `docker run` command")
    command.add_argument("--image", default="tensorflow/serving:2.16.1", help="TF Serving image for --base-path")
    command.add_argument("--poll-seconds", type=_whole_seconds, default=60,
                         help="how often the server reads models.config")
    for sub in (config, label, rollback, policy, command):
        sub.set_defaults(func=_cmd_serving)
    status = serving_commands.add_parser("status", help="ask TF Serving which versions it has loaded (REST or gRPC)")
    where = status.add_mutually_exclusive_group()
    where.add_argument("--server", default="http://localhost:8501", type=_address,
                       help="TF Serving REST address (default)")
    where.add_argument("--grpc", metavar="HOST:PORT", type=_address, help="TF Serving gRPC address instead of REST")
    status.add_argument("--model", default=DEFAULT_DATASET)
    status.add_argument("--version", type=_version, help="one version only")
    status.add_argument("--label", help="the version a label names (resolved by the server)")
    status.add_argument("--timeout", type=_seconds, default=30.0, help="seconds for each exchange")
    status.add_argument("--verbose", action="store_true",
                        help="show TensorFlow's own output (--grpc) instead of hiding it in a log")
    status.set_defaults(func=_cmd_serving_status)
