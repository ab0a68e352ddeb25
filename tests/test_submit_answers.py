"""Property tests: whatever ML Metadata's gRPC-Web answer or a spec file holds, `kubeflow submit` reads it or
says in one line why not (``MetadataUnavailable`` / ``SubmitError``), never a traceback, in bounded time."""

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

pytest.importorskip("ml_metadata")

from cifar_tfx.kubeflow.run_metadata import GrpcWebMetadata, MetadataUnavailable, task_output_properties  # noqa: E402
from cifar_tfx.kubeflow.run_request import SubmitError, load_documents  # noqa: E402

QUICK = settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture])


class Answer:
    def __init__(self, status_code, content, headers):
        self.status_code, self.content, self.headers = status_code, content, headers


def _frame(flag: int, payload: bytes) -> bytes:
    return bytes([flag]) + len(payload).to_bytes(4, "big") + payload


answers = st.one_of(
    st.binary(max_size=300),
    st.builds(lambda message, trailer: _frame(0, message) + _frame(0x80, trailer),
              st.binary(max_size=200), st.binary(max_size=60)),
    st.builds(lambda declared, rest: bytes([0]) + declared.to_bytes(4, "big") + rest,
              st.integers(0, 2**32 - 1), st.binary(max_size=50)),
)


@QUICK
@given(body=answers, status=st.sampled_from([200, 200, 200, 404, 503]),
       headers=st.dictionaries(st.sampled_from(["grpc-status", "grpc-message", "content-type"]),
                               st.text(max_size=20), max_size=3))
def test_any_grpc_web_answer_is_read_or_refused_in_one_line(body, status, headers):
    metadata = GrpcWebMetadata("http://ui", post=lambda *args, **kwargs: Answer(status, body, headers))
    try:
        properties = task_output_properties(metadata, "run-1", "Pusher", "pushed_model")
    except MetadataUnavailable as err:
        assert "\n" not in str(err) and len(str(err)) < 400
    else:  # only a well-formed chain of answers gets here
        assert isinstance(properties, dict)


@QUICK
@given(text=st.one_of(st.text(max_size=400), st.binary(max_size=400)))
def test_any_spec_file_is_read_or_refused_in_one_line(tmp_path, text):
    path = tmp_path / "spec.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass"))
    try:
        spec, platform = load_documents(str(path))
    except SubmitError as err:
        assert "\n" not in str(err)
    else:
        assert spec["root"]["dag"]["tasks"] and isinstance(platform, dict)
