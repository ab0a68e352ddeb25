"""A stand-in for the KFP 2 API server on 127.0.0.1: records requests, answers like the real one.

Only the calls ``cifar-tfx kubeflow submit`` makes are served (the v2beta1 REST
paths of ``backend/api/v2beta1``): list and create experiments, create a run, get a
run. Run states follow ``states`` (one per ``GET``, the last repeated).
"""

from __future__ import annotations

import http.server
import json
import threading
import urllib.parse
from typing import Dict, List, Sequence


class KfpStandIn:
    """Context manager: ``with KfpStandIn(["RUNNING", "SUCCEEDED"]) as server: server.url``."""

    def __init__(self, states: Sequence[str] = ("SUCCEEDED",), refuse_runs_with: str = "") -> None:
        self.states = list(states)
        self.refuse_runs_with = refuse_runs_with  # answer POST /runs with HTTP 400 and this message
        self.requests: List[Dict] = []
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> "KfpStandIn":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def bodies(self, method: str, path: str) -> List[Dict]:
        return [r["body"] for r in self.requests if r["method"] == method and r["path"] == path]

    def authorizations(self) -> List[str]:
        """The ``Authorization`` header of each run created, in order."""
        return [r["authorization"] for r in self.requests if r["method"] == "POST" and r["path"] == "/apis/v2beta1/runs"]

    def _handler(self):
        standin = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _reply(self, status: int, payload: Dict) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _record(self) -> Dict:
                url = urllib.parse.urlparse(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                record = {"method": self.command, "path": url.path, "query": urllib.parse.parse_qs(url.query),
                          "body": json.loads(raw) if raw else None,
                          "authorization": self.headers.get("Authorization", "")}
                standin.requests.append(record)
                return record

            def do_GET(self) -> None:  # noqa: N802
                record = self._record()
                if record["path"] == "/apis/v2beta1/healthz":
                    self._reply(200, {"multi_user": False})
                elif record["path"] == "/apis/v2beta1/experiments":
                    self._reply(200, {"experiments": [], "total_size": 0})
                elif "/pipelineJobs/" in record["path"]:  # Vertex AI: the job's state
                    state = standin.states.pop(0) if len(standin.states) > 1 else standin.states[0]
                    self._reply(200, {"name": record["path"].split("/v1/", 1)[1], "state": state})
                elif record["path"].startswith("/apis/v2beta1/runs/"):
                    state = standin.states.pop(0) if len(standin.states) > 1 else standin.states[0]
                    self._reply(200, {"run_id": record["path"].rsplit("/", 1)[1], "state": state})
                else:
                    self._reply(404, {"error": "not found", "code": 5})

            def do_POST(self) -> None:  # noqa: N802
                record = self._record()
                if record["path"] == "/apis/v2beta1/experiments":
                    self._reply(200, {"experiment_id": "exp-1", "display_name": record["body"]["display_name"]})
                elif record["path"] == "/apis/v2beta1/runs":
                    if standin.refuse_runs_with:
                        self._reply(400, {"error": standin.refuse_runs_with, "code": 3,
                                          "message": standin.refuse_runs_with})
                        return
                    self._reply(200, {"run_id": "run-42", "display_name": record["body"].get("display_name"),
                                      "state": "PENDING"})
                elif record["path"].endswith("/pipelineJobs"):  # Vertex AI: create a pipeline job
                    job_id = record["query"].get("pipelineJobId", ["job-7"])[0]
                    name = record["path"].split("/v1/", 1)[1] + "/" + job_id
                    self._reply(200, {**record["body"], "name": name, "state": "PIPELINE_STATE_PENDING"})
                else:
                    self._reply(404, {"error": "not found", "code": 5})

        return Handler
