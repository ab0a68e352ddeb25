"""What a run is submitted with: the compiled spec and the run's parameter values, checked before anything
is sent.

The spec is read through the bounded reader and must have the shape every later step relies on; each
``--param`` value is typed by the spec's own declaration and checked as ``kubeflow compile`` checks it (a
run parameter by its hyperparameter's declaration, ``data_path`` by what ExampleGen's task can open), and the
training values together as the Trainer's task will fold them into the compiled hyperparameters; the data
fingerprint that lets KFP's cache answer ExampleGen is computed here.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Sequence, Tuple


class SubmitError(Exception):
    """The run could not be submitted or followed; the message says why."""


MAX_SPEC_BYTES = 16 << 20  # a compiled spec is about 100 KB
MAX_SPEC_DEPTH = 64        # it nests about 12 levels


def load_documents(spec_path: str) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """``(PipelineSpec, PlatformSpec or {})`` of a compiled YAML, read through the bounded reader and
    checked for the shape every later step relies on."""
    import yaml

    from cifar_tfx.bounded_input import InputRefused, nesting_depth, read_regular_file

    try:
        text = read_regular_file(spec_path, max_bytes=MAX_SPEC_BYTES, what="spec").decode("utf-8")
    except InputRefused as err:
        raise SubmitError(str(err)) from err
    except UnicodeDecodeError:
        raise SubmitError(f"{spec_path} is not text: give the YAML `cifar-tfx kubeflow compile` wrote") from None
    if nesting_depth(text) > MAX_SPEC_DEPTH:
        raise SubmitError(f"{spec_path} nests deeper than a compiled spec does ({MAX_SPEC_DEPTH} levels)")
    try:
        documents = [doc for doc in yaml.safe_load_all(text) if doc]
    except (yaml.YAMLError, RecursionError) as err:
        raise SubmitError(f"{spec_path} is not YAML: {' '.join(str(err).split())[:200]}") from err
    spec = next((doc for doc in documents if isinstance(doc, dict) and "pipelineInfo" in doc and "root" in doc), None)
    tasks = spec.get("root", {}).get("dag", {}).get("tasks") if isinstance(spec, dict) and \
        isinstance(spec.get("root"), dict) and isinstance(spec["root"].get("dag"), dict) else None
    if not isinstance(tasks, dict) or not tasks or not isinstance(spec.get("pipelineInfo"), dict):
        raise SubmitError(f"{spec_path} holds no PipelineSpec with tasks (compile one with `cifar-tfx kubeflow "
                          "compile`)")
    platform = next((doc for doc in documents if isinstance(doc, dict) and "platforms" in doc), {})
    return spec, platform


def load_spec(spec_path: str) -> Dict[str, Any]:
    """The PipelineSpec document of a compiled YAML (the first of its documents)."""
    return load_documents(spec_path)[0]


def parse_parameters(pairs: Sequence[str], spec: Mapping[str, Any],
                     platform: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """``["name=value", ...]`` typed by the spec's root input declarations and checked as compile checks them:
    a run parameter by its hyperparameter's declaration (bounds, whole numbers), ``data_path`` against what
    the ExampleGen task can open (``platform``: the spec's PlatformSpec, which holds its volume).

    Raises :class:`SubmitError` for a pair without ``=``, a name the pipeline does not declare (listing
    those it does) or a value of the wrong type or out of bounds.
    """
    from cifar_tfx.trainer.hparams import check_run_parameter, run_parameter_fields

    declared = spec.get("root", {}).get("inputDefinitions", {}).get("parameters", {})
    values: Dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep:
            raise SubmitError(f"--param {pair!r} must be NAME=VALUE")
        if name not in declared:
            raise SubmitError(f"the pipeline has no parameter {name!r}; it has: {', '.join(sorted(declared))}")
        kind = declared[name].get("parameterType", "STRING")
        try:
            values[name] = _typed(text, kind)
            if name in run_parameter_fields():
                check_run_parameter(name, values[name])
            elif name == DATA_PATH_PARAMETER:
                check_data_path(values[name], platform or {})
        except ValueError as err:
            raise SubmitError(f"--param {name}: {err}") from err
    check_training_values(values, spec)
    return values


def compiled_hparams(spec: Mapping[str, Any]):
    """The hyperparameters the spec's Trainer task was compiled with, or ``None`` if the spec does not hold
    them where ``kubeflow compile`` writes them (its ``custom_config`` constant)."""
    import json

    from cifar_tfx.pipeline.component_ids import TRAINER
    from cifar_tfx.trainer.hparams import HParams
    from cifar_tfx.trainer.run_fn import HPARAMS_KEY

    try:
        constant = spec["root"]["dag"]["tasks"][TRAINER]["inputs"]["parameters"]["custom_config"]["runtimeValue"][
            "constant"]
        return HParams.from_json(json.loads(constant)[HPARAMS_KEY])
    except (KeyError, TypeError, ValueError):
        return None


def check_training_values(values: Mapping[str, Any], spec: Mapping[str, Any]) -> None:
    """Fold the run's training values into the compiled hyperparameters as the Trainer's task will (every
    other parameter at its default), so that a combination it would refuse is refused now: an architecture
    with a size it does not have, or epochs on a spec whose network is left to a time budget."""
    from cifar_tfx.trainer.hparams import training_run_fields, with_run_values

    training = training_run_fields()
    if not set(values) & set(training):
        return
    compiled = compiled_hparams(spec)
    if compiled is None:
        return
    declared = spec.get("root", {}).get("inputDefinitions", {}).get("parameters", {})
    run = {name: declared[name]["defaultValue"] for name in training
           if isinstance(declared.get(name), dict) and "defaultValue" in declared[name]}
    run.update({name: value for name, value in values.items() if name in training})
    try:
        with_run_values(compiled, run)
    except ValueError as err:
        given = ", ".join(f"{name}={values[name]}" for name in training if name in values)
        raise SubmitError(f"--param {given}: {err}") from err


def check_data_path(data_path: str, platform: Mapping[str, Any]) -> None:
    """``data_path`` as ExampleGen's task would open it: the compile-time rule (``compiler.check_task_path``)
    with the volume the spec mounts into ExampleGen, if any."""
    from cifar_tfx.kubeflow.compiler import VolumeMount, check_task_path

    executors = platform.get("platforms", {}).get("kubernetes", {}).get("deploymentSpec", {}).get("executors", {})
    mounts = executors.get(f"{FINGERPRINTED_TASK}_executor", {}).get("pvcMount", [])
    volume = VolumeMount(mounts[0]["constant"], mounts[0]["mountPath"]) if mounts else None
    check_task_path(data_path, volume, DATA_PATH_PARAMETER, "kfp" if platform else "vertex")


FINGERPRINT_PARAMETER = "data_fingerprint"  # compiler.FINGERPRINT_PARAMETER (the compiler imports TFX)
DATA_PATH_PARAMETER = "data_path"
FINGERPRINTED_TASK = "CifarExampleGen"        # component_ids.EXAMPLE_GEN


def data_fingerprint(data_path: str) -> Tuple[str, str]:
    """``(fingerprint, "")`` of the data at ``data_path`` as the cluster sees it, or ``("", why not)``.

    Only ``gs://`` data is fingerprinted: a path is a path on the cluster's volume, and a file at the
    same path on this machine would be other bytes. The fingerprint hashes the files' names, sizes and
    modification times (``reader.source_fingerprint``, what ExampleGen records on its output).
    """
    import hashlib

    if not data_path.startswith("gs://"):
        return "", f"{data_path} is on the cluster's volume, which this machine cannot see"
    import tensorflow as tf

    from cifar_tfx.data.reader import MissingDataError, source_fingerprint

    try:
        listing = source_fingerprint(data_path)
    except (MissingDataError, tf.errors.OpError) as err:
        return "", f"cannot list {data_path} from here ({' '.join(str(err).split())[:200]})"
    return "sha256:" + hashlib.sha256(listing.encode()).hexdigest()[:16], ""


def with_cached_ingestion(spec_path: str, out_path: str) -> str:
    """A copy of the compiled YAML at ``out_path`` whose ExampleGen task may be taken from KFP's cache
    (for a run that carries a data fingerprint, which is then part of ExampleGen's cache key)."""
    import yaml

    with open(spec_path) as handle:
        documents = [doc for doc in yaml.safe_load_all(handle) if doc]
    spec = next(doc for doc in documents if "pipelineInfo" in doc)
    spec["root"]["dag"]["tasks"][FINGERPRINTED_TASK]["cachingOptions"] = {"enableCache": True}
    with open(out_path, "w") as out:
        yaml.safe_dump_all(documents, out, sort_keys=True)
    return out_path


def _typed(text: str, kind: str) -> Any:
    import math

    if kind == "NUMBER_DOUBLE":
        value = float(text)
        if not math.isfinite(value):
            raise ValueError(f"{text!r} is not a finite number")
        return value
    if kind == "NUMBER_INTEGER":
        if len(text) > 20:
            raise ValueError(f"{text[:20]}... is not a whole number of this size")
        return int(text)
    if kind == "BOOLEAN":
        if text.lower() not in ("true", "false"):
            raise ValueError(f"{text!r} is not true or false")
        return text.lower() == "true"
    return text
