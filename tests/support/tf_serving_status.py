"""A stand-in for TF Serving's model status REST API (our availability seam), on a loopback port.

Like TF Serving with ``--model_config_file``, it re-reads the model server config on every request:
a version newly listed answers ``LOADING`` on the first ``loading_polls`` requests, then ``AVAILABLE``
if its folder holds ``saved_model.pb`` (else ``END`` with an error, as a failed load). It also checks
the rule TF Serving enforces: every label must point at a version that is AVAILABLE when the config is
read; each breach is recorded in ``violations``.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2


class StatusServer:
    def __init__(self, config_path: str, loading_polls: int = 1) -> None:
        self.config_path = config_path
        self.loading_polls = loading_polls
        self.polls: dict[tuple[str, int], int] = {}
        self.available: set[tuple[str, int]] = set()
        self.violations: list[str] = []
        self.seen: list[dict[str, object]] = []  # each config read: {name: (versions, labels)}
        self.lock = threading.Lock()
        self.url = ""

    def answer(self, name: str) -> tuple[int, dict]:
        with self.lock:
            config = model_server_config_pb2.ModelServerConfig()
            if os.path.exists(self.config_path):
                with open(self.config_path) as handle:
                    text_format.Parse(handle.read(), config)
            snapshot = {}
            for entry in config.model_config_list.config:
                versions = tuple(sorted(entry.model_version_policy.specific.versions))
                snapshot[entry.name] = (versions, dict(entry.version_labels))
                for label, version in entry.version_labels.items():
                    if (entry.name, version) not in self.available:
                        self.violations.append(f"{entry.name}: label {label} -> {version} before it was AVAILABLE")
            self.seen.append(snapshot)
            entry = next((e for e in config.model_config_list.config if e.name == name), None)
            if entry is None:
                return 404, {"error": f"Could not find any versions of model {name}"}
            statuses = []
            for version in entry.model_version_policy.specific.versions:
                key = (name, version)
                if key not in self.available:
                    self.polls[key] = self.polls.get(key, 0) + 1
                    if self.polls[key] > self.loading_polls:
                        folder = os.path.join(entry.base_path, str(version))
                        if os.path.exists(os.path.join(folder, "saved_model.pb")):
                            self.available.add(key)
                        else:
                            statuses.append({"version": str(version), "state": "END",
                                             "status": {"error_code": "NOT_FOUND", "error_message": folder}})
                            continue
                state = "AVAILABLE" if key in self.available else "LOADING"
                statuses.append({"version": str(version), "state": state, "status": {"error_code": "OK", "error_message": ""}})
            return 200, {"model_version_status": statuses}


@contextmanager
def status_server(config_path: str, loading_polls: int = 1) -> Iterator[StatusServer]:
    state = StatusServer(config_path, loading_polls)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            prefix = "/v1/models/"
            if not self.path.startswith(prefix):
                code, body = 404, {"error": "not found"}
            else:
                code, body = state.answer(self.path[len(prefix):])
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
