"""A stand-in for the KFP 2 API server on 127.0.0.1: records requests, answers like the real one.

Only the calls ``cifar-tfx kubeflow submit`` makes are served (the v2beta1 REST
paths of ``backend/api/v2beta1``): list and create experiments, create a run, get a
run. Run states follow ``states`` (one per ``GET``, the last repeated); a finished run
carries task details as the API server gives them (``PipelineTaskDetail`` of run.proto:
state, display name, output artifact ids). ML Metadata is served as the KFP UI's
address serves it (``/ml_metadata.*`` proxied to Envoy, frontend/server/app.ts):
gRPC-Web, ``GetArtifactsByID`` only, the Pusher's output with the custom properties
the launcher records (metadata numbers as doubles, backend/src/v2/metadata/converter.go).
"""

from __future__ import annotations

import http.server
import json
import threading
import urllib.parse
from typing import Dict, List, Optional, Sequence

PUSHED_ARTIFACT_ID = 17


class KfpStandIn:
    """Context manager: ``with KfpStandIn(["RUNNING", "SUCCEEDED"]) as server: server.url``."""

    def __init__(self, states: Sequence[str] = ("SUCCEEDED",), refuse_runs_with: str = "", *,
                 pushed: Optional[int] = 1, failed_task: str = "Trainer", serve_metadata: bool = True,
                 answer_gets: Optional[int] = None) -> None:
        self.states = list(states)
        self.refuse_runs_with = refuse_runs_with  # answer POST /runs with HTTP 400 and this message
        self.pushed = pushed                      # the Pusher output's `pushed` (None: no such property)
        self.failed_task = failed_task            # the task that failed in a FAILED run
        self.serve_metadata = serve_metadata      # False: the API server's own address (no /ml_metadata)
        self.answer_gets = answer_gets            # after this many run GETs, drop every connection
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

    run_gets = 0

    def task_details(self, state: str) -> List[Dict]:
        """The root DAG and the ten tasks; in a FAILED run ``failed_task`` failed and later ones never ran."""
        if state not in ("SUCCEEDED", "FAILED"):
            return []
        details = [{"display_name": "root", "state": state, "task_id": "t0"}]
        for index, name in enumerate(("CifarExampleGen", "Trainer", "Evaluator", "Pusher")):
            task_state = "SUCCEEDED" if state == "SUCCEEDED" else ("FAILED" if name == self.failed_task else "SKIPPED")
            task = {"display_name": name, "state": task_state, "task_id": f"t{index + 1}", "parent_task_id": "t0"}
            if name == "Pusher" and task_state == "SUCCEEDED":
                task["outputs"] = {"pushed_model": {"artifact_ids": [str(PUSHED_ARTIFACT_ID)]}}
            details.append(task)
        return details

    def vertex_pusher_detail(self) -> Dict:
        metadata = {} if self.pushed is None else {"pushed": self.pushed, "pushed_version": "3",
                                                   "pushed_destination": "gs://b/models/cifar10/3"}
        return {"taskName": "Pusher", "state": "SUCCEEDED", "taskId": "5",
                "outputs": {"pushed_model": {"artifacts": [{"uri": "gs://b/root/Pusher/pushed_model",
                                                            "metadata": metadata}]}}}

    def artifacts_by_id(self, body: bytes) -> bytes:
        from ml_metadata.proto import metadata_store_pb2, metadata_store_service_pb2 as service

        request = service.GetArtifactsByIDRequest.FromString(body[5:5 + int.from_bytes(body[1:5], "big")])
        response = service.GetArtifactsByIDResponse()
        if list(request.artifact_ids) == [PUSHED_ARTIFACT_ID]:
            artifact = metadata_store_pb2.Artifact(id=PUSHED_ARTIFACT_ID, uri="minio://mlpipeline/v2/Pusher/9/pushed_model")
            if self.pushed is not None:
                artifact.custom_properties["pushed"].double_value = float(self.pushed)
                if self.pushed:
                    artifact.custom_properties["pushed_version"].string_value = "3"
                    artifact.custom_properties["pushed_destination"].string_value = "/mnt/models/cifar10/3"
            response.artifacts.append(artifact)
        return response.SerializeToString()

    def _handler(self):
        standin = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _reply_grpc_web(self, message: bytes) -> None:
                trailer = b"grpc-status:0\r\ngrpc-message:OK\r\n"
                data = (b"\x00" + len(message).to_bytes(4, "big") + message
                        + b"\x80" + len(trailer).to_bytes(4, "big") + trailer)
                self.send_response(200)
                self.send_header("Content-Type", "application/grpc-web+proto")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

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
                binary = self.headers.get("Content-Type", "").startswith("application/grpc-web")
                record = {"method": self.command, "path": url.path, "query": urllib.parse.parse_qs(url.query),
                          "body": raw if binary else (json.loads(raw) if raw else None),
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
                    job = {"name": record["path"].split("/v1/", 1)[1], "state": state}
                    if state == "PIPELINE_STATE_SUCCEEDED":  # PipelineTaskDetail: artifacts with their metadata
                        job["jobDetail"] = {"taskDetails": [standin.vertex_pusher_detail()]}
                    self._reply(200, job)
                elif record["path"].startswith("/apis/v2beta1/runs/"):
                    standin.run_gets += 1
                    if standin.answer_gets is not None and standin.run_gets > standin.answer_gets:
                        self.close_connection = True  # a dropped port-forward: no answer at all
                        return
                    state = standin.states.pop(0) if len(standin.states) > 1 else standin.states[0]
                    self._reply(200, {"run_id": record["path"].rsplit("/", 1)[1], "state": state,
                                      "run_details": {"task_details": standin.task_details(state)}})
                else:
                    self._reply(404, {"error": "not found", "code": 5})

            def do_POST(self) -> None:  # noqa: N802
                record = self._record()
                if record["path"] == "/ml_metadata.MetadataStoreService/GetArtifactsByID" and standin.serve_metadata:
                    self._reply_grpc_web(standin.artifacts_by_id(record["body"]))
                elif record["path"] == "/apis/v2beta1/experiments":
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
