"""One way to reach storage: every entry point builds its clients with the model's credentials.

The model's checkpoints and its destination are on the GCS emulator, reached through a recording proxy,
and the model names an Airflow connection (``airflow.gcp_conn_id``). The google provider is not installed
here, so the connection → credentials step (``plugins.credentials.connection_credentials``, our seam) is
replaced by one that hands out a token only that connection has; the worker's ambient credentials are
the emulator's anonymous ones. The emulator checks no key, so the proofs are: the credentials object each
client was built with, and the ``Authorization`` header of every connection the emulator received.
Nothing of the token may reach a log line, an XCom value or a UI response.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.config import load_config
from components.model_storage import ModelStorage
from components.storage import registry
from tests.support.example_pipeline import TrainedModel, example_config_dict, write_config
from tests.support.faultproxy import FaultProxy

CONN_ID = "exportflow_gcs"
TOKEN = "ya29.token-only-the-connection-has"


class RecordingProxy:
    """Forwards to the emulator and keeps the head of the first request on every connection."""

    def __init__(self, upstream: str) -> None:
        host, port = upstream.split(":")
        self.heads: list[str] = []
        self.proxy = FaultProxy((host, int(port)), self._record)

    def _record(self, number: int, head: bytes) -> None:
        self.heads.append(head.decode("latin-1"))

    def authorizations(self) -> set[str]:
        found = set()
        for head in self.heads:
            lines = [line for line in head.split("\r\n") if line.lower().startswith("authorization:")]
            found.add(lines[0].split(":", 1)[1].strip() if lines else "<none>")
        return found


@pytest.fixture
def connection(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The connection → credentials seam: ``CONN_ID`` gives a bearer token; records each lookup."""
    from google.oauth2.credentials import Credentials

    from plugins import credentials

    looked_up: list[str] = []

    def connection_credentials(conn_id: str) -> Any:
        looked_up.append(conn_id)
        assert conn_id == CONN_ID
        return Credentials(token=TOKEN)

    monkeypatch.setattr(credentials, "require_google_provider", lambda conn_id: None)
    monkeypatch.setattr(credentials, "connection_credentials", connection_credentials)
    return looked_up


@pytest.fixture
def proxied(gcs, monkeypatch: pytest.MonkeyPatch):
    recorder = RecordingProxy(gcs.host)
    with recorder.proxy:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://{recorder.proxy.address}")
        registry._instances.clear()
        yield recorder
        registry._instances.clear()


@pytest.fixture
def gcs_model(gcs_bucket: str, trained_model: TrainedModel, tmp_path: Path) -> Path:
    """The trained model's checkpoints in the bucket; a config publishing there through ``CONN_ID``."""
    from components.storage import storage_for

    model_dir = f"gs://{gcs_bucket}/model"
    for path in sorted(trained_model.model_dir.iterdir()):
        if path.is_file():
            storage_for(model_dir).upload_file(str(path), f"{model_dir}/{path.name}")
    data = example_config_dict(
        trained_model, f"gs://{gcs_bucket}/published", model_dir=model_dir, airflow={"gcp_conn_id": CONN_ID}
    )
    return write_config(data, tmp_path / "configs" / "example.yaml")


def logged(operator_class: type, **kwargs: Any) -> Any:
    """The operator logging through a stdlib logger, so ``caplog`` sees every line it writes."""
    logger = logging.getLogger(f"test.{kwargs['task_id']}")
    return type(operator_class.__name__, (operator_class,), {"log": property(lambda self: logger)})(**kwargs)


def assert_only_the_connection_reached_gcs(proxy: RecordingProxy) -> None:
    assert proxy.heads, "nothing reached the emulator"
    assert proxy.authorizations() == {f"Bearer {TOKEN}"}


def assert_clients_built_with_the_connection() -> None:
    clients = [s for s in registry._instances.values() if type(s).__name__ == "GCSStorage" and s._client]
    assert clients
    for storage in clients:
        assert storage.client._credentials.token == TOKEN, storage


def test_stage_task_in_process_uses_the_connection_for_the_ledger_model_dir_and_leases(
    gcs_model, connection, proxied, caplog
) -> None:
    from plugins.operators import StageOperator

    caplog.set_level(logging.DEBUG)
    operator = logged(StageOperator, task_id="discover", stage="discover", config_path=str(gcs_model))
    checkpoints = operator.execute({"params": {"checkpoint": 300}, "run_id": "manual__1"})

    assert [c["step"] for c in checkpoints] == [300]
    assert checkpoints[0]["pinned_uri"].startswith("gs://")  # the lease was written with storage_for(uri)
    assert connection == [CONN_ID]
    assert_clients_built_with_the_connection()
    assert_only_the_connection_reached_gcs(proxied)
    assert TOKEN not in json.dumps(checkpoints)
    assert caplog.records and TOKEN not in caplog.text


def test_stage_task_in_another_interpreter_gets_a_token_not_the_connection(
    gcs_model, connection, proxied, caplog
) -> None:
    data = yaml.safe_load(gcs_model.read_text())
    data["airflow"].update(runtime="external_python", python=sys.executable)
    write_config(data, gcs_model)
    from plugins.operators import StageOperator

    caplog.set_level(logging.DEBUG)
    operator = logged(StageOperator, task_id="discover", stage="discover", config_path=str(gcs_model))
    checkpoints = operator.execute({"params": {"checkpoint": 300}, "run_id": "manual__1"})

    assert [c["step"] for c in checkpoints] == [300]
    assert connection == [CONN_ID]
    # every request the child sent (ledger, listing, lease) carried the connection's token
    assert_only_the_connection_reached_gcs(proxied)
    assert "running stage discover in" in caplog.text
    assert TOKEN not in caplog.text and TOKEN not in json.dumps(checkpoints)


def test_report_task_reads_the_ledger_with_the_connection(gcs_model, connection, proxied, caplog) -> None:
    from plugins.operators import ReportRunOperator

    class OutletEvents(dict):
        def __missing__(self, key: Any) -> Any:
            self[key] = Added()
            return self[key]

    class Added(list):
        def add(self, asset: Any, extra: dict) -> None:
            self.append(extra)

    pushed = {"uri": "gs://b/published/example/300", "destination": "gs://b/published", "model_name": "example",
              "version": "300", "step": 300, "strategy": "all_modes", "manifest_uri": "gs://b/m.json"}
    outlet_events = OutletEvents()
    caplog.set_level(logging.DEBUG)
    operator = logged(ReportRunOperator, task_id="report", config_path=str(gcs_model), pushed=[pushed])
    result = operator.execute({"params": {}, "outlet_events": outlet_events})

    assert [p["version"] for p in result] == ["300"]
    assert [e["version"] for events in outlet_events.values() for e in events] == ["300"]
    assert connection == [CONN_ID]
    assert_clients_built_with_the_connection()
    assert_only_the_connection_reached_gcs(proxied)
    assert TOKEN not in json.dumps(result) + json.dumps(list(outlet_events.values()))
    assert caplog.records and TOKEN not in caplog.text


def test_sensor_and_trigger_poll_with_the_connection(gcs_model, connection, proxied) -> None:
    from plugins.triggers import NewCheckpointTrigger, check_for_new_checkpoints

    event = check_for_new_checkpoints(str(gcs_model))
    assert (event.status, event.steps) == ("found", (0, 100, 200, 300)), event.message

    async def first_event() -> Any:
        trigger = NewCheckpointTrigger(str(gcs_model), poll_interval=60, deadline=2**40)
        async for fired in trigger.run():
            return fired

    fired = asyncio.run(first_event())
    assert fired.payload["status"] == "found" and TOKEN not in json.dumps(fired.payload)
    assert connection == [CONN_ID]  # one client per connection per process
    assert_clients_built_with_the_connection()
    assert_only_the_connection_reached_gcs(proxied)


def test_ui_reads_the_ledger_with_the_connection(gcs_model, connection, proxied) -> None:
    from fastapi.testclient import TestClient

    from components.pipeline.stages import ledger_of
    from plugins.ui.app import ModelCatalog, create_app

    config = load_config(gcs_model)
    from plugins.credentials import credentials_for

    ledger_of(config, credentials_for(config)).update(lambda state: state)  # the ledger exists
    app = create_app(ModelCatalog(lambda: str(gcs_model.parent)), lambda: "someone", lambda *args: None)
    client = TestClient(app)
    for path in ("/api/models", "/api/models/example"):
        response = client.get(path)
        assert response.status_code == 200, response.text
        assert TOKEN not in response.text
    assert json.loads(client.get("/api/models").text)["models"][0]["error"] is None
    assert_clients_built_with_the_connection()
    assert_only_the_connection_reached_gcs(proxied)


def test_without_the_google_provider_every_entry_point_says_how_to_fix(gcs_model, proxied) -> None:
    from airflow.sdk.exceptions import AirflowFailException
    from fastapi.testclient import TestClient

    from plugins.operators import StageOperator
    from plugins.triggers import check_for_new_checkpoints
    from plugins.ui.app import ModelCatalog, create_app

    fix = "install exportflow with the `google` extra"
    with pytest.raises(AirflowFailException, match=f"'{CONN_ID}' but the Google provider is not installed.*{fix}"):
        StageOperator(task_id="discover", stage="discover", config_path=str(gcs_model)).execute({"params": {}})
    event = check_for_new_checkpoints(str(gcs_model))
    assert event.status == "error" and fix in event.message
    app = create_app(ModelCatalog(lambda: str(gcs_model.parent)), lambda: "someone", lambda *args: None)
    response = TestClient(app).get("/api/models/example")
    assert response.status_code == 502 and fix in response.text
    assert proxied.heads == []  # nothing went to storage with the worker's own credentials


def test_the_factory_applies_one_rule(gcs, tmp_path: Path, trained_model: TrainedModel, monkeypatch) -> None:
    from google.auth.credentials import AnonymousCredentials

    from plugins.credentials import ConnectionCredentials

    key = {"credentials_path": str(tmp_path / "key.json")}
    data = example_config_dict(trained_model, "gs://bucket/published", merge={"destination": key}, model_dir="gs://bucket/model")
    config = load_config(write_config(data, tmp_path / "example.yaml"))
    source = ConnectionCredentials(CONN_ID)
    storage = ModelStorage(config, source)

    destination = storage.destination()
    assert destination.options.credentials_path == str(tmp_path / "key.json")  # the destination's own key
    assert storage.for_uri("gs://bucket/published/example/1/saved_model.pb") is destination
    model_dir = storage.for_uri("gs://bucket/model")
    assert model_dir.options.credentials == source and model_dir.options.credentials_path is None
    assert repr(model_dir) == "GCSStorage(project=None, credentials=Airflow connection 'exportflow_gcs')"
    assert isinstance(destination.client_credentials(), AnonymousCredentials)  # a key file: not on an emulator

    monkeypatch.delenv("STORAGE_EMULATOR_HOST")
    from components.storage import StorageError

    with pytest.raises(StorageError, match=r"service-account key file .*key.json does not exist"):
        destination.client_credentials()
    assert ModelStorage(config).for_uri("gs://bucket/model").client_credentials() is None  # ADC


def test_cli_reads_the_ledger_with_the_destinations_key_file(trained_model, tmp_path, capsys, monkeypatch) -> None:
    """Before the factory the CLI read the ledger with ADC whatever ``credentials_path`` said."""
    from components.cli import main

    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    registry._instances.clear()
    key = {"credentials_path": str(tmp_path / "missing-key.json")}
    data = example_config_dict(trained_model, "gs://exportflow-nowhere/published", merge={"destination": key})
    path = write_config(data, tmp_path / "example.yaml")

    assert main(["run", "--config", str(path)]) == 1
    assert f"service-account key file {tmp_path / 'missing-key.json'} does not exist" in capsys.readouterr().err
    registry._instances.clear()
