"""Which versions a TF Serving model has, in which state, and which version a label names.

TF Serving's status call (``GET /v1/models/<m>[/versions/<n>]``, ``ModelService.GetModelStatus``) lists
versions and their states but ignores a label (get_model_status_impl.cc at 2.16.1 looks only at
``has_version()``); a label is resolved through model metadata (``GET /v1/models/<m>/labels/<l>/metadata``,
``PredictionService.GetModelMetadata``), which answers the version it names or "Unrecognized servable version
label". Every answer is read by one parser of its shape (:func:`parse_status_answer`,
:func:`parse_metadata_version`), written from TF Serving 2.16.1's answers; :func:`wait_until_available` polls
a version's status with an injected clock until the server reports it ``AVAILABLE``. The transports and
the errors are :mod:`cifar_tfx.serving.client`'s.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable, List, Optional, Sequence

from cifar_tfx.serving.client import (NotFound, PredictError, grpc_call, model_spec, rest_exchange, rest_url, shown,
                                      version_phrase)


@dataclasses.dataclass(frozen=True)
class VersionStatus:
    """One version's state as TF Serving reports it (get_model_status.proto: START, LOADING, AVAILABLE,
    UNLOADING, END) and the error of its last load, if any."""

    version: int
    state: str
    error: str = ""


STATUS_LIMIT = 1_000_000  # a status answer lists a few versions


def model_status_rest(server: str, model: str, version: Optional[int] = None, label: Optional[str] = None,
                      timeout: float = 30.0) -> List[VersionStatus]:
    """``GET /v1/models/<model>[/versions/<n>]``: the versions TF Serving knows and their states. TF Serving
    ignores a label here (get_model_status_impl.cc looks only at has_version()): resolve it first with
    :func:`label_version_rest`."""
    url = rest_url(server, model, version, label, verb="")
    answer = rest_exchange(url, None, timeout, STATUS_LIMIT, f"model {model!r}{version_phrase(version, label)}")
    return parse_status_answer(answer, url)


STATES = ("UNKNOWN", "START", "LOADING", "AVAILABLE", "UNLOADING", "END")  # get_model_status.proto


def parse_status_answer(answer: object, where: str) -> List[VersionStatus]:
    """The versions of a REST status answer, as TF Serving 2.16.1 writes it (http_rest_api_util.cc,
    ToJsonString with always_print_primitive_fields): ``{"model_version_status": [{"version": "2",
    "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]}`` (int64 as a string);
    anything else is one :class:`PredictError`."""
    rows = answer.get("model_version_status") if isinstance(answer, dict) else None
    if not isinstance(rows, list) or len(rows) > 10_000:
        raise PredictError(f"unexpected status answer from {where}: {shown(answer)}")
    return [_version_status(row, where) for row in rows]


def _version_status(row: object, where: str) -> VersionStatus:
    if not isinstance(row, dict):
        raise PredictError(f"unexpected status answer from {where}: a version is {shown(row)}")
    version, state, status = row.get("version"), row.get("state"), row.get("status", {})
    if isinstance(version, int) and not isinstance(version, bool):
        version = str(version)
    if not isinstance(version, str) or not _is_version(version):
        raise PredictError(f"unexpected status answer from {where}: version {shown(version)} is no version number")
    if state not in STATES:
        raise PredictError(f"unexpected status answer from {where}: state {shown(state)} of version {version} "
                           f"is none of {', '.join(STATES)}")
    if not isinstance(status, dict) or not isinstance(status.get("error_code", "OK"), (str, int)) \
            or not isinstance(status.get("error_message", ""), str):
        raise PredictError(f"unexpected status answer from {where}: the status of version {version} is "
                           f"{shown(status)}, not an error_code and error_message")
    code = str(status.get("error_code", "OK"))
    message = " ".join(status.get("error_message", "").split())[:300]
    return VersionStatus(int(version), state, "" if code in ("OK", "0") else f"{code[:40]}: {message}")


def _is_version(text: str) -> bool:
    from cifar_tfx.serving.model_config import is_version_name

    return is_version_name(text)


def model_status_grpc(target: str, model: str, version: Optional[int] = None, label: Optional[str] = None,
                      timeout: float = 30.0) -> List[VersionStatus]:
    """``ModelService.GetModelStatus``: the same as :func:`model_status_rest`, over gRPC."""
    from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc

    request = get_model_status_pb2.GetModelStatusRequest()
    model_spec(request.model_spec, model, version, label)
    response = grpc_call(target, lambda channel: model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus,
                         request, timeout, STATUS_LIMIT, f"model {model!r}{version_phrase(version, label)}")
    names = dict(get_model_status_pb2.ModelVersionStatus.State.items())
    names = {number: name for name, number in names.items()}
    return [VersionStatus(row.version, names.get(row.state, f"UNKNOWN({row.state})"),
                          "" if row.status.error_code == 0 else
                          f"{row.status.error_code}: {' '.join(row.status.error_message.split())[:300]}")
            for row in response.model_version_status]


METADATA_LIMIT = 4_000_000  # a model's metadata is its signature defs: a few KB here


def label_version_rest(server: str, model: str, label: str, timeout: float = 30.0) -> int:
    """The version ``label`` names, as TF Serving resolves it: ``GET /v1/models/<m>/labels/<l>/metadata``
    (GetModelMetadata resolves the label through GetServableHandle and answers ``model_spec.version``,
    get_model_metadata_impl.cc at 2.16.1; an unknown label is HTTP 400 "Unrecognized servable version
    label", server_core.cc)."""
    url = rest_url(server, model, label=label, verb="/metadata")
    answer = rest_exchange(url, None, timeout, METADATA_LIMIT, f"model {model!r}{version_phrase(None, label)}")
    return parse_metadata_version(answer, url)


def parse_metadata_version(answer: object, where: str) -> int:
    """``model_spec.version`` of a REST metadata answer (``{"model_spec": {"name": …, "signature_name": "",
    "version": "3"}, "metadata": …}``, http_rest_api_util.cc at 2.16.1: int64 written as a string)."""
    spec = answer.get("model_spec") if isinstance(answer, dict) else None
    version = spec.get("version") if isinstance(spec, dict) else None
    if isinstance(version, int) and not isinstance(version, bool):
        version = str(version)
    if not isinstance(version, str) or not _is_version(version):
        raise PredictError(f"unexpected metadata answer from {where}: model_spec.version is {shown(version)}")
    return int(version)


def label_version_grpc(target: str, model: str, label: str, timeout: float = 30.0) -> int:
    """:func:`label_version_rest` over gRPC: ``PredictionService.GetModelMetadata`` with ``version_label``."""
    from tensorflow_serving.apis import get_model_metadata_pb2, prediction_service_pb2_grpc

    request = get_model_metadata_pb2.GetModelMetadataRequest()
    model_spec(request.model_spec, model, label=label)
    request.metadata_field.append("signature_def")  # the one field GetModelMetadata serves
    method = lambda channel: prediction_service_pb2_grpc.PredictionServiceStub(channel).GetModelMetadata  # noqa: E731
    response = grpc_call(target, method, request, timeout, METADATA_LIMIT,
                         f"model {model!r}{version_phrase(None, label)}")
    if not response.model_spec.HasField("version") or response.model_spec.version.value < 1:
        raise PredictError(f"unexpected metadata answer from {target}: no model_spec.version")
    return response.model_spec.version.value


def wait_until_available(status_of: Callable[[int], List[VersionStatus]], versions: Sequence[int],
                         wait_seconds: float, clock: Callable[[], float] = time.monotonic,
                         sleep: Callable[[float], None] = time.sleep, every: float = 2.0) -> None:
    """Return once the server reports each of ``versions`` ``AVAILABLE`` (``status_of(v)`` asks it), asking
    every ``every`` seconds for at most ``wait_seconds``; a version not known yet (404) or loading is waited
    for, a failed load or the end of the wait is one :class:`PredictError`."""
    deadline = clock() + wait_seconds
    pending = sorted(set(versions))
    while True:
        seen = {}
        for version in pending:
            try:
                states = [s for s in status_of(version) if s.version == version]
            except NotFound:
                states = []
            if states and states[0].state == "END" and states[0].error:
                raise PredictError(f"version {version} did not load: {states[0].error}")
            seen[version] = states[0].state if states else "not known yet"
        pending = [v for v in pending if seen[v] != "AVAILABLE"]
        if not pending:
            return
        if clock() >= deadline:
            states = ", ".join(f"{v} {seen[v]}" for v in pending)
            raise PredictError(f"the server did not make version(s) {', '.join(map(str, pending))} AVAILABLE "
                               f"within {wait_seconds:g} s ({states}); does it poll this models.config?")
        sleep(max(0.0, min(every, deadline - clock())))
