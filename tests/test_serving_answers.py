"""Answers no TF Serving would send, and command-line values that cannot work: one line, exit 2, no traceback.

Every REST answer goes through `client.decode_answer` (`bounded_input.parse_json`: size, depth, finite numbers of
sane length), then through a parser of its shape (`parse_status_answer`, `parse_metadata_version`,
`checked_predictions`). A TF Serving 2.16.1 status answer is
``{"model_version_status": [{"version": "2", "state": "AVAILABLE", "status": {"error_code": "OK",
"error_message": ""}}]}`` (http_rest_api_util.cc, ToJsonString with always_print_primitive_fields).
"""

import http.server
import io
import json
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cifar_tfx.cli import EXIT_BAD_INPUT, main
from cifar_tfx.serving import client, versions

NAMES = [f"class{i}" for i in range(10)]
DEEP = "[" * 200_000 + "]" * 200_000


def _status(**row):
    good = {"version": "2", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
    return json.dumps({"model_version_status": [{**good, **row}]})


class _Canned(http.server.BaseHTTPRequestHandler):
    """Answers every request with ``code`` and ``body`` as they are set."""

    code, body = 200, b"{}"

    def _answer(self):
        if self.command == "POST":
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = self.body.encode() if isinstance(self.body, str) else self.body
        self.send_response(self.code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except ConnectionError:
            pass

    do_GET = do_POST = _answer

    def log_message(self, *args):
        pass


class _Quiet(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):  # a client that stops reading is not news here
        pass


@pytest.fixture
def canned():
    handler = type("Handler", (_Canned,), {})
    server = _Quiet(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield handler, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _one_line(capsys, needle):
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1 and len(captured.err) < 500, captured.err[:1000]
    assert needle in captured.err, captured.err
    return captured.err


@pytest.mark.parametrize("code, body, says", [
    (200, _status(status="broken"), "the status of version 2 is 'broken'"),
    (200, _status(status=["OK"]), "the status of version 2 is ['OK']"),
    (200, _status(status={"error_code": ["x"]}), "not an error_code and error_message"),
    (200, _status(version="Infinity"), "version 'Infinity' is no version number"),
    (200, _status(version=1e300), "version 1e+300 is no version number"),
    (200, _status(version=True), "version True is no version number"),
    (200, _status(version="9" * 60), "is no version number"),
    (200, _status(version=2).replace('"version": 2', '"version": Infinity'), "Infinity is not a number"),
    (200, _status(state=["AVAILABLE"]), "state ['AVAILABLE'] of version 2 is none of"),
    (200, json.dumps({"model_version_status": "AVAILABLE"}), "unexpected status answer"),
    (200, json.dumps([1, 2]), "unexpected status answer"),
    (200, DEEP, "nests 200000 levels deep"),
    (200, "200 not json", "did not answer JSON"),
    (404, '{"error": ' + DEEP[:100_000] + "}", "not found at"),
    (404, '{"error": ["no"]}', "not found at"),
    (503, '{"error": "' + "x" * 60_000 + '"}', "answered HTTP 503: " + "x" * 100),
])
def test_a_status_answer_no_tf_serving_sends_is_one_line(canned, capsys, code, body, says):
    handler, url = canned
    handler.code, handler.body = code, body
    assert main(["serving", "status", "--server", url, "--timeout", "5"]) == EXIT_BAD_INPUT
    _one_line(capsys, says)


def test_a_label_resolved_to_no_version_is_one_line(canned, capsys):
    handler, url = canned
    handler.body = json.dumps({"model_spec": {"name": "cifar10", "signature_name": "", "version": "1e9"}})
    assert main(["serving", "status", "--server", url, "--label", "stable"]) == EXIT_BAD_INPUT
    _one_line(capsys, "model_spec.version is '1e9'")


@pytest.fixture
def png(tmp_path):
    from PIL import Image

    path = tmp_path / "cat.png"
    Image.new("RGB", (32, 32), (200, 10, 10)).save(path)
    return str(path)


@pytest.mark.parametrize("body, says", [
    ('{"predictions": [{"probabilities": [0.' + "1" * 400 + "]}]}", "a number of 402 characters"),
    ('{"predictions": [{"probabilities": [' + "1" * 400 + "]}]}", "a number of 400 digits"),
    ('{"predictions": ' + DEEP + "}", "nests 200001 levels deep"),
    ('{"predictions": "truck"}', "answered str predictions for 1 images"),
    ('{"predictions": [{"probabilities": [true, 0, 0, 0, 0, 0, 0, 0, 0, 0]}]}', "10 numbers"),
    ('{"predictions": [{"probabilities": [1, 0, 0, 0, 0, 0, 0, 0, 0, 0], "class_name": "' + "z" * 9000 + '"}]}',
     "(9,002 characters) where this client's classes say 'airplane'"),
])
def test_a_predict_answer_no_tf_serving_sends_is_one_line(canned, capsys, png, body, says):
    handler, url = canned
    handler.body = body
    assert main(["predict", png, "--server", url, "--timeout", "5"]) == EXIT_BAD_INPUT
    _one_line(capsys, says)


@pytest.mark.parametrize("argv", [
    ["serving", "status", "--timeout", "inf"], ["serving", "status", "--timeout", "1e300"],
    ["serving", "status", "--timeout", "-1"], ["serving", "status", "--timeout", "nan"],
    ["serving", "status", "--timeout", "0"], ["serving", "status", "--grpc", ""], ["serving", "status", "--server", " "],
    ["predict", "x.png", "--timeout", "inf"], ["predict", "x.png", "--grpc", ""], ["predict", "x.png", "--server", ""],
    ["serving", "label", "dir", "a=1", "--server", "http://h", "--wait-seconds", "1e300"],
    ["serving", "status", "--version", "²"],
])
def test_a_value_that_cannot_work_is_refused_while_parsing(capsys, argv):
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert any(says in err for says in ("must be above 0 and at most 86400 seconds", "is no server address",
                                        "is not a version number")), err


# --- properties: whatever the server answers, a parser returns what it promises or raises PredictError ------

_JSON = st.recursive(st.none() | st.booleans() | st.integers(-10**30, 10**30) | st.floats(allow_nan=False)
                     | st.text(max_size=12),
                     lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
                         st.sampled_from(["version", "state", "status", "error_code", "error_message",
                                          "model_version_status", "model_spec", "predictions", "probabilities",
                                          "class_name"]) | st.text(max_size=6), inner, max_size=5),
                     max_leaves=25)
_STATUS_ROW = st.fixed_dictionaries({}, optional={"version": _JSON | st.sampled_from(["2", "0", "-1", "٣"]),
                                                  "state": _JSON | st.sampled_from(versions.STATES),
                                                  "status": _JSON | st.just({"error_code": "OK"})})
_FAST = settings(max_examples=200, deadline=1000, suppress_health_check=[HealthCheck.too_slow])


def _encoded(value):
    text = json.dumps(value)
    return text.encode()


@_FAST
@given(answer=_JSON | st.lists(_STATUS_ROW, max_size=3).map(lambda rows: {"model_version_status": rows}))
def test_the_status_parser_returns_versions_or_one_predict_error(answer):
    try:
        statuses = versions.parse_status_answer(client.decode_answer(_encoded(answer), "http://h/s", 1 << 20), "http://h/s")
    except client.PredictError as err:
        assert "\n" not in str(err) and len(str(err)) < 600
    else:
        assert all(v.version >= 1 and v.state in versions.STATES and "\n" not in v.error for v in statuses)


@_FAST
@given(answer=_JSON, spec=_JSON)
def test_the_metadata_parser_returns_a_version_or_one_predict_error(answer, spec):
    for value in (answer, {"model_spec": spec}, {"model_spec": {"version": spec}}):
        try:
            version = versions.parse_metadata_version(client.decode_answer(_encoded(value), "u", 1 << 20), "u")
        except client.PredictError as err:
            assert "\n" not in str(err) and len(str(err)) < 600
        else:
            assert 1 <= version < 2 ** 63


_ROW = st.fixed_dictionaries({}, optional={
    "probabilities": st.lists(st.floats(allow_nan=False) | st.integers(-2, 2) | st.booleans() | st.text(max_size=3),
                              min_size=9, max_size=11) | _JSON,
    "class_name": st.sampled_from(NAMES) | _JSON})


@_FAST
@given(raw=st.binary(max_size=200) | st.lists(_ROW, max_size=3).map(lambda rows: _encoded({"predictions": rows}))
       | _JSON.map(_encoded), count=st.integers(1, 3))
def test_the_predict_parser_returns_distributions_or_one_predict_error(raw, count):
    try:
        answer = client.decode_answer(raw, "u", 1 << 20)
        rows = answer.get("predictions") if isinstance(answer, dict) else answer
        predictions = client.checked_predictions(rows, NAMES, count, "u")
    except client.PredictError as err:
        assert "\n" not in str(err) and len(str(err)) < 600
    else:
        assert len(predictions) == count
        assert all(abs(sum(p.probabilities) - 1) <= client.SUM_TOLERANCE for p in predictions)


def test_an_error_answer_deep_or_huge_gives_the_http_reason():
    import urllib.error

    for body in (DEEP.encode(), b'{"error": "' + b"y" * 100_000 + b'"}', b"\xff" * 10):
        err = urllib.error.HTTPError("http://h", 404, "Not Found", {}, io.BytesIO(body))
        assert client._error_text(err) == "Not Found"
    err = urllib.error.HTTPError("http://h", 400, "Bad Request", {}, io.BytesIO(b'{"error": "bad\\n\\nthing"}'))
    assert client._error_text(err) == "bad thing"


@pytest.mark.parametrize("line, says", [
    ('{"ok": true, "reason": ' + DEEP[:20_000] + "}", "nests 20001 levels deep"),
    ('{"ok": "yes"}', "printed no verdict"),
    ('{"Infinity": Infinity}', "Infinity is not a number"),
    ('{TF log line', "is not JSON"),
])
def test_a_check_process_line_that_is_no_verdict_is_a_failed_check(monkeypatch, line, says):
    import subprocess

    from cifar_tfx.serving import check

    monkeypatch.setattr(check.subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(a, 0, line + "\n", ""))
    verdict = check.run_check("/nowhere", NAMES, 5000.0)
    assert verdict["ok"] is False and says in verdict["reason"] and "\n" not in verdict["reason"]
    monkeypatch.setattr(check.subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(a, 0, '{"ok": true}', ""))
    assert check.run_check("/nowhere", NAMES, 5000.0) == {"ok": True, "reason": "", "latency_ms": {}}
