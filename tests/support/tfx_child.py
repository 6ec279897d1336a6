"""Runs in the TFX interop environment (``interop/tfx/.venv``), never in the main one.

``python -m tests.support.tfx_child '<json spec>'`` runs ``exportflow_tfx.example_pipeline`` under
LocalDagRunner with an SQLite MLMD store. With ``pause_at: k`` the pusher's executor reports its k-th
written object on stdout (``{"paused": {...}}``) and waits on stdin until the parent kills it.
``python -m tests.support.tfx_child --lineage DB`` prints the store's executions, artifacts (with custom
properties) and events as one JSON line.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from exportflow_tfx.executor import Executor

PAUSE_AT: int | None = None


def _emit(message: dict[str, Any]) -> None:
    os.write(1, (json.dumps(message) + "\n").encode())


class PausingExecutor(Executor):
    """The component's executor, stopped after the ``PAUSE_AT``-th object the publish protocol writes."""

    def observer(self) -> Any:
        seen = 0

        def observe(event: Any) -> None:
            nonlocal seen
            seen += 1
            if seen == PAUSE_AT:
                _emit({"paused": {"event": seen, "kind": event.kind, "uri": event.uri}})
                os.read(0, 1)  # the parent never writes: blocks until killed
                os._exit(4)  # the parent is gone

        return observe


def run(spec: dict[str, Any]) -> None:
    global PAUSE_AT
    from exportflow_tfx.example_pipeline import build_pipeline
    from tfx.dsl.components.base import executor_spec
    from tfx.orchestration.local.local_dag_runner import LocalDagRunner

    PAUSE_AT = spec.get("pause_at")
    pusher_executor = executor_spec.ExecutorClassSpec(PausingExecutor) if PAUSE_AT else None
    LocalDagRunner().run(
        build_pipeline(
            root=spec["root"],
            saved_model_dir=spec["saved_model"],
            step=spec.get("step"),
            checkpoint=spec.get("checkpoint", ""),
            config=spec["config"],
            blessed=spec.get("blessed", True),
            metrics=spec.get("metrics"),
            strategy=spec.get("strategy"),
            infra_blessed=spec.get("infra_blessed"),
            pusher_executor=pusher_executor,
        )
    )


def lineage(db: str) -> dict[str, Any]:
    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = db
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    store = metadata_store.MetadataStore(config)
    types = {t.id: t.name for t in store.get_artifact_types()}
    execution_types = {t.id: t.name for t in store.get_execution_types()}

    def value(v: Any) -> Any:
        kind = v.WhichOneof("value")
        return getattr(v, kind) if kind else None

    artifacts = [
        {"id": a.id, "type": types[a.type_id], "uri": a.uri,
         "properties": {k: value(v) for k, v in a.custom_properties.items()}}
        for a in store.get_artifacts()
    ]
    executions = [
        {"id": e.id, "type": execution_types[e.type_id], "state": metadata_store_pb2.Execution.State.Name(e.last_known_state)}
        for e in store.get_executions()
    ]
    events = [
        {"artifact": e.artifact_id, "execution": e.execution_id, "type": metadata_store_pb2.Event.Type.Name(e.type),
         "key": e.path.steps[0].key if e.path.steps else None}
        for e in store.get_events_by_execution_ids([e["id"] for e in executions])
    ]
    return {"artifacts": artifacts, "executions": executions, "events": events}


def main(argv: list[str]) -> int:
    if argv[:1] == ["--lineage"]:
        print(json.dumps(lineage(argv[1])))
        return 0
    run(json.loads(argv[0]))
    return 0


if __name__ == "__main__":
    from tests.support import tfx_child  # by its module name, so TFX records the executor's import path

    sys.exit(tfx_child.main(sys.argv[1:]))
