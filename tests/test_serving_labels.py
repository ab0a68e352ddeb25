"""Version labels against a stand-in of tensorflow_model_server 2.16.1: the start rule, the policy-then-label
wedge, `serving label --server` waiting for AVAILABLE, and `serving status --label`.

`TFServing216` is written from tensorflow/serving at tag 2.16.1 (the same code at 2.15.1 to 2.20.0):

* model_servers/server.cc, PollFilesystemAndReloadConfig: each poll parses the file and calls ReloadConfig;
  a refused reload is only logged (``LOG(ERROR)``): nothing tells a client, so the stand-in tells nothing either.
* model_servers/server_core.cc, ReloadConfig: ``config_ = new_config`` comes first, then
  UpdateModelVersionLabelMap, then AddModelsViaModelConfigList. A label on a version not kAvailable fails the
  reload ("Request to assign label to version N of model M, which is not currently available for inference")
  unless --allow_version_labels_for_unavailable_models is set and the label is new or keeps its version. At
  start (ServerCore::Create) the same failure ends the server: main.cc prints "Failed to start server".
* Versions load at once here (a real server takes seconds): what matters is which reload adds them.

Its REST API (http_rest_api_handler.cc, http_rest_api_util.cc, get_model_status_impl.cc,
get_model_metadata_impl.cc, core/manager.h at 2.16.1): status ignores a label; metadata resolves it and answers
``model_spec`` with the version as a string; the metadata's signature defs are left empty (this client does
not read them); errors are ``{"error": message}`` with 404 for NotFound and 400 for InvalidArgument.
"""

import http.server
import json
import re
import threading

import pytest

pytest.importorskip("tensorflow_serving")

from google.protobuf import text_format  # noqa: E402
from tensorflow_serving.config import model_server_config_pb2  # noqa: E402

from cifar_tfx.cli import EXIT_BAD_INPUT, EXIT_NOT_PUSHED, main  # noqa: E402
from cifar_tfx.serving import client, versions  # noqa: E402

CONFIG = 'model_config_list { config { name: "cifar10" base_path: "%s" model_platform: "tensorflow" } }\n'


class TFServing216:
    """The model server's handling of a polled models.config (see the module's docstring)."""

    def __init__(self, config_path, allow_version_labels_for_unavailable_models=False):
        self.path = config_path
        self.allow_unavailable = allow_version_labels_for_unavailable_models
        self.config = None        # ServerCore::config_
        self.labels = None        # model_labels_to_versions_ (null until a label map was built)
        self.states = {}          # (model, version) -> ManagerState, as ServableStateMonitor keeps them
        self.log = []
        self.lock = threading.Lock()
        self.polling = True  # whether the fixture's thread polls the file

    def start(self):
        """ServerCore::Create: the first ReloadConfig; main.cc exits when it fails."""
        error = self.poll()
        if error:
            raise RuntimeError(f"Failed to start server. Error: {error}")

    def poll(self):
        with self.lock:
            config = model_server_config_pb2.ModelServerConfig()
            text_format.Parse(open(self.path).read(), config)
            self.config = config                   # config_ = new_config;
            error = self._update_label_map()       # TF_RETURN_IF_ERROR(UpdateModelVersionLabelMap());
            if error:
                self.log.append(f"PollFilesystemAndReloadConfig failed to ReloadConfig: {error}")
                return error
            self._add_models()                     # AddModelsViaModelConfigList()
            return None

    def _update_label_map(self):
        new_map = {}
        for entry in self.config.model_config_list.config:
            for label, version in entry.version_labels.items():
                existing = (self.labels or {}).get(entry.name, {}).get(label)
                allowed = self.allow_unavailable and existing in (None, version)
                if not allowed and self.states.get((entry.name, version)) != "AVAILABLE":
                    return (f"Request to assign label to version {version} of model {entry.name}, which is not "
                            "currently available for inference")
                new_map.setdefault(entry.name, {})[label] = version
        self.labels = new_map
        return None

    def _add_models(self):
        import os

        for entry in self.config.model_config_list.config:
            on_disk = sorted(int(name) for name in os.listdir(entry.base_path) if name.isdigit())
            policy = entry.model_version_policy
            choice = policy.WhichOneof("policy_choice")
            if choice == "specific":
                aspired = [v for v in on_disk if v in policy.specific.versions]
            elif choice == "all":
                aspired = on_disk
            else:
                aspired = on_disk[-(policy.latest.num_versions or 1):]
            for (name, version), state in list(self.states.items()):
                if name == entry.name and version not in aspired and state == "AVAILABLE":
                    self.states[(name, version)] = "END"
            for version in aspired:
                self.states[(entry.name, version)] = "AVAILABLE"

    # --- the REST API ------------------------------------------------------------------------------------

    PATH = re.compile(r"/v1/models/([^/:]+)(?:/versions/(\d+)|/labels/([^/:]+))?(/metadata)?")

    def answer_get(self, path):
        match = self.PATH.fullmatch(path)
        if not match:
            return 400, {"error": f"Malformed request: GET {path}"}
        model, version, label, metadata = match.groups()
        with self.lock:
            if metadata:
                return self._metadata(model, version and int(version), label)
            return self._status(model, version and int(version))  # the label is not looked at

    def _status(self, model, version):
        def row(v, state):
            return {"version": str(v), "state": state, "status": {"error_code": "OK", "error_message": ""}}

        if version is not None:
            if (model, version) not in self.states:
                return 404, {"error": f"Could not find version {version} of model {model}"}
            return 200, {"model_version_status": [row(version, self.states[(model, version)])]}
        rows = [row(v, s) for (m, v), s in sorted(self.states.items()) if m == model]
        if not rows:
            return 404, {"error": f"Could not find any versions of model {model}"}
        return 200, {"model_version_status": rows}

    def _metadata(self, model, version, label):
        if label is not None:
            if self.labels is None:
                return 503, {"error": f"Model labels does not init yet.{label}"}
            if label not in self.labels.get(model, {}):
                return 400, {"error": f"Unrecognized servable version label: {label}"}
            version = self.labels[model][label]
        available = [v for (m, v), s in self.states.items() if m == model and s == "AVAILABLE"]
        request = f"Specific({model}, {version})" if version is not None else f"Latest({model})"
        if (version is None and not available) or (version is not None and version not in available):
            return 404, {"error": f"Servable not found for request: {request}"}
        version = max(available) if version is None else version
        return 200, {"model_spec": {"name": model, "signature_name": "", "version": str(version)},
                     "metadata": {"signature_def": {"signature_def": {}}}}


@pytest.fixture
def serving(tmp_path):
    for version in (2, 3, 4):
        (tmp_path / "cifar10" / str(version)).mkdir(parents=True)
    (tmp_path / "models.config").write_text(CONFIG % (tmp_path / "cifar10"))
    return tmp_path


@pytest.fixture
def rest(serving):
    """The stand-in behind an HTTP port, polling models.config every 0.05 s as --model_config_file_poll_wait_seconds
    would (in seconds, on a real server)."""
    server_core = TFServing216(str(serving / "models.config"), allow_version_labels_for_unavailable_models=True)
    server_core.start()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            code, payload = server_core.answer_get(self.path)
            data = json.dumps(payload, indent=1).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    http_server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    stop = threading.Event()

    def poll():
        while not stop.wait(0.05):
            if server_core.polling:
                server_core.poll()

    threads = [threading.Thread(target=http_server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True), threading.Thread(target=poll, daemon=True)]
    for thread in threads:
        thread.start()
    yield server_core, f"http://127.0.0.1:{http_server.server_address[1]}"
    stop.set()
    http_server.shutdown()
    http_server.server_close()


def test_a_labelled_models_config_does_not_start_a_server_without_the_label_flag(serving):
    assert main(["serving", "label", str(serving), "--model", "cifar10", "stable=4"]) == 0
    with pytest.raises(RuntimeError, match="Failed to start server.*version 4 of model cifar10, which is not"):
        TFServing216(str(serving / "models.config")).start()
    TFServing216(str(serving / "models.config"), allow_version_labels_for_unavailable_models=True).start()


def test_policy_then_label_read_by_one_poll_wedges_the_server(serving, capsys):
    """Why `serving label` must not write a label before the server has loaded its version."""
    server_core = TFServing216(str(serving / "models.config"), allow_version_labels_for_unavailable_models=True)
    server_core.start()
    assert main(["serving", "label", str(serving), "--model", "cifar10", "stable=4"]) == 0
    server_core.poll()
    assert main(["serving", "policy", str(serving), "--model", "cifar10", "specific", "3", "4"]) == 0
    assert "label version(s) 3 only once TF Serving has loaded them" in capsys.readouterr().out
    assert main(["serving", "label", str(serving), "--model", "cifar10", "stable=3", "canary=4"]) == 0
    assert "note: written without asking TF Serving" in capsys.readouterr().err
    for _ in range(3):  # every later poll fails the same way: version 3 is never added
        assert "version 3 of model cifar10, which is not currently available" in server_core.poll()
    assert server_core.states.get(("cifar10", 3)) is None and server_core.labels == {"cifar10": {"stable": 4}}


def test_label_with_server_waits_until_the_version_is_available_and_cannot_wedge(serving, rest, capsys, monkeypatch):
    from cifar_tfx import cli_serving

    monkeypatch.setattr(cli_serving, "WAIT_EVERY_SECONDS", 0.02)
    server_core, url = rest
    assert main(["serving", "label", str(serving), "--model", "cifar10", "stable=4", "--server", url]) == 0
    assert main(["serving", "policy", str(serving), "--model", "cifar10", "specific", "3", "4"]) == 0
    assert main(["serving", "label", str(serving), "--model", "cifar10", "stable=3", "canary=4", "--server", url,
                 "--wait-seconds", "20"]) == 0
    assert "note:" not in capsys.readouterr().err
    server_core.poll()
    assert server_core.labels == {"cifar10": {"stable": 3, "canary": 4}}
    assert server_core.states[("cifar10", 3)] == "AVAILABLE" and not server_core.log


def test_label_with_server_gives_up_in_one_line_when_the_version_never_loads(serving, rest, capsys, monkeypatch):
    from cifar_tfx import cli_serving

    monkeypatch.setattr(cli_serving, "WAIT_EVERY_SECONDS", 0.02)
    server_core, url = rest
    assert main(["serving", "policy", str(serving), "--model", "cifar10", "specific", "3", "4"]) == 0
    server_core.polling = False  # it never reads the edit (a server started without polling)
    before = (serving / "models.config").read_text()
    assert main(["serving", "label", str(serving), "--model", "cifar10", "stable=3", "--server", url,
                 "--wait-seconds", "0.3", "--timeout", "5"]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "did not make version(s) 3 AVAILABLE within 0.3 s" in err
    assert "no label written" in err and (serving / "models.config").read_text() == before


def test_status_by_label_resolves_it_as_the_server_does(serving, rest, capsys):
    server_core, url = rest
    assert main(["serving", "label", str(serving), "--model", "cifar10", "stable=4", "--server", url]) == 0
    server_core.poll()
    capsys.readouterr()
    assert main(["serving", "status", "--server", url, "--label", "stable"]) == 0
    assert capsys.readouterr().out.splitlines() == ["cifar10 version 4: AVAILABLE"]
    assert main(["serving", "status", "--server", url, "--label", "nope"]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Unrecognized servable version label: nope" in err
    assert main(["serving", "status", "--server", url]) == 0  # no label: every version the server knows
    assert capsys.readouterr().out.splitlines() == ["cifar10 version 4: AVAILABLE"]


def test_status_answers_are_those_of_the_server_without_a_label(serving, rest, capsys):
    """get_model_status_impl.cc: a status request with a label lists every version (the label is ignored)."""
    server_core, url = rest
    assert main(["serving", "policy", str(serving), "--model", "cifar10", "all"]) == 0
    server_core.poll()
    capsys.readouterr()
    assert server_core.answer_get("/v1/models/cifar10/labels/nope")[0] == 200
    assert main(["serving", "status", "--server", url, "--version", "3"]) == 0
    assert capsys.readouterr().out.splitlines() == ["cifar10 version 3: AVAILABLE"]
    assert main(["serving", "status", "--server", url, "--model", "other"]) == EXIT_BAD_INPUT
    assert "Could not find any versions of model other" in capsys.readouterr().err
    assert main(["serving", "rollback", str(serving), "--model", "cifar10", "--to", "2"]) == 0
    server_core.poll()
    capsys.readouterr()
    assert main(["serving", "status", "--server", url, "--version", "3"]) == EXIT_NOT_PUSHED
    assert capsys.readouterr().out.splitlines() == ["cifar10 version 3: END"]


class _Clock:
    def __init__(self):
        self.now = 100.0
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def test_waiting_for_available_asks_until_it_is_and_no_longer():
    clock = _Clock()
    answers = iter([client.NotFound("Could not find version 3 of model cifar10"), [versions.VersionStatus(3, "LOADING")],
                    [versions.VersionStatus(3, "AVAILABLE")]])

    def status_of(version):
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    versions.wait_until_available(status_of, [3], 10.0, clock=clock, sleep=clock.sleep, every=1.5)
    assert clock.sleeps == [1.5, 1.5]


def test_waiting_ends_at_its_bound_or_at_a_failed_load():
    clock = _Clock()
    with pytest.raises(client.PredictError, match=r"did not make version\(s\) 3 AVAILABLE within 4 s \(3 LOADING\)"):
        versions.wait_until_available(lambda v: [versions.VersionStatus(v, "LOADING")], [3], 4.0,
                                    clock=clock, sleep=clock.sleep, every=1.5)
    assert clock.sleeps == [1.5, 1.5, 1.0] and clock.now == 104.0
    with pytest.raises(client.PredictError, match="version 3 did not load: NOT_FOUND: no saved_model.pb"):
        versions.wait_until_available(lambda v: [versions.VersionStatus(v, "END", "NOT_FOUND: no saved_model.pb")], [3],
                                    4.0, clock=clock, sleep=clock.sleep)
    with pytest.raises(client.PredictError, match="cannot connect"):  # not a 404: no point asking again
        versions.wait_until_available(lambda v: (_ for _ in ()).throw(client.PredictError("cannot connect")), [3],
                                    4.0, clock=clock, sleep=clock.sleep)


def test_the_serving_check_waits_for_its_server_on_an_injected_clock(tmp_path, monkeypatch):
    from cifar_tfx.serving import server_check

    class Running:
        returncode = None

        def poll(self):
            return None

    log = tmp_path / "server.log"
    log.write_text("loading\nstill loading the SavedModel\n")
    answers = iter([client.PredictError("cannot connect"), [versions.VersionStatus(1, "LOADING")],
                    [versions.VersionStatus(1, "AVAILABLE")]])

    def status(*args, **kwargs):
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setattr(versions, "model_status_rest", status)
    clock = _Clock()
    server_check._wait_until_available(Running(), "http://h", 30.0, str(log), clock=clock, sleep=clock.sleep)
    assert clock.sleeps == [0.5, 0.5]
    monkeypatch.setattr(versions, "model_status_rest", lambda *a, **k: [versions.VersionStatus(1, "LOADING")])
    with pytest.raises(client.PredictError, match="AVAILABLE within 2 s: still loading the SavedModel"):
        server_check._wait_until_available(Running(), "http://h", 2.0, str(log), clock=clock, sleep=clock.sleep)
