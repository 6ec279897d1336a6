"""The model page's "Serving" panel: what TF Serving is told to serve, label history, promote / roll back /
remove links, and the model's recent DAG runs (dry runs and failures included).

Built from ``components.serving.control.status`` (the model server config and the serving history beside
the ledger) and from DAG-run rows the app reads from Airflow's public REST API (``RunRow``). Pure functions, no I/O: the page and the JSON
endpoint render the same ``ServingView``. The promote / roll back entries are links to the promote DAG's
trigger form, never actions: the page changes nothing, and Airflow's run history is the audit trail.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping
from typing import Any, Literal
from urllib.parse import quote, urlencode

from components.config.schema import PipelineConfig
from components.ledger.label_history import LabelMove
from components.serving.control import ServableStatus
from plugins.promote_dag import labels_of, promote_dag_id

LATEST_NOTE = "TF Serving serves the highest version"


@dataclasses.dataclass(frozen=True)
class ActionLink:
    """A link to the promote DAG's page with the trigger form's values (see ``trigger_url``)."""

    action: Literal["promote", "rollback", "unlabel"]
    label: str
    version: int | None  # the version the label would point at (None: promote's choice, or a removal)
    conf: Mapping[str, Any]  # the promote DAG's Params, as its form takes them
    url: str


@dataclasses.dataclass(frozen=True)
class LabelView:
    label: str
    version: int | None  # None: the label is in the history but not in the config any more
    rollback_to: int | None  # where a rollback takes it; None: no earlier version
    rollback: ActionLink | None
    remove: ActionLink | None = None  # the promote DAG's unlabel; None when the label is not in the config


@dataclasses.dataclass(frozen=True)
class MoveView:
    label: str
    from_version: int | None
    to_version: int | None  # None: the label was removed
    action: str
    who: str
    at: str
    run_id: str | None
    run_url: str | None  # the promote DAG run's page in the Airflow UI
    reason: str


@dataclasses.dataclass(frozen=True)
class ServableView:
    servable: str
    in_config: bool  # listed in the model server config
    loaded_versions: tuple[int, ...]  # the config's specific versions
    published_versions: tuple[int, ...]  # committed at the destination, newest first
    labels: tuple[LabelView, ...]
    pins: tuple[int, ...]
    promote: tuple[ActionLink, ...]  # one per label the promote DAG offers, for the newest published version
    history: tuple[MoveView, ...]  # newest first


@dataclasses.dataclass(frozen=True)
class RunView:
    """One DAG run of the model (export or promote DAG)."""

    dag_id: str
    run_id: str
    state: str
    dry_run: bool
    conf: Mapping[str, Any]
    run_type: str | None
    started: str | None  # ISO 8601 UTC
    ended: str | None
    url: str


@dataclasses.dataclass(frozen=True)
class ServingView:
    mode: Literal["latest", "labels"]
    note: str | None  # for ``latest``: what TF Serving serves without a config
    config_uri: str | None
    promote_dag_id: str | None
    promote_dag_url: str | None
    servables: tuple[ServableView, ...]
    runs: tuple[RunView, ...]
    runs_error: str | None  # the runs could not be read from Airflow
    error: str | None  # the config or the history could not be read


def trigger_url(airflow_root: str, dag_id: str, conf: Mapping[str, Any]) -> str:
    """The DAG's page with the trigger form's values as ``conf`` (JSON) in the query.

    Airflow 3.3's UI opens the form from the DAG page's Trigger button and does not read the query
    (apache/airflow#54800; the prefill of #59231 reads ``conf`` once released), so the page shows the
    same values beside the link.
    """
    query = urlencode({"conf": json.dumps(dict(conf), sort_keys=True, separators=(",", ":"))})
    return f"{airflow_root}dags/{quote(dag_id, safe='')}?{query}"


def run_url(airflow_root: str, dag_id: str, run_id: str) -> str:
    return f"{airflow_root}dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"


def serving_view(
    config: PipelineConfig,
    statuses: Iterable[ServableStatus] | None,
    runs: Iterable[RunView],
    published: Mapping[str, Iterable[int]] | None = None,
    *,
    airflow_root: str,
    config_uri: str | None = None,
    error: str | None = None,
    runs_error: str | None = None,
) -> ServingView:
    """``statuses``: ``control.status(config)``; None for ``serving.mode: latest`` (or when unreadable)."""
    if config.serving.mode != "labels":
        return ServingView("latest", LATEST_NOTE, None, None, None, (), tuple(runs), runs_error, error)
    dag_id = promote_dag_id(config.name)
    published = published or {}
    servables = tuple(
        _servable_view(config, s, tuple(published.get(s.servable, ())), airflow_root, dag_id) for s in statuses or ()
    )
    return ServingView(
        "labels", None, config_uri, dag_id, f"{airflow_root}dags/{quote(dag_id, safe='')}",
        servables, tuple(runs), runs_error, error,
    )


def _servable_view(
    config: PipelineConfig, status: ServableStatus, published: tuple[int, ...], root: str, dag_id: str
) -> ServableView:
    entry = status.entry
    current = dict(entry.labels) if entry else {}
    names = sorted(set(current) | {m.label for m in status.moves})

    def link(action: Literal["promote", "rollback", "unlabel"], label: str, version: int | None, reason: str) -> ActionLink:
        conf = {"action": action, "label": label, "servable": status.servable, "version": version, "reason": reason}
        return ActionLink(action, label, version, conf, trigger_url(root, dag_id, conf))

    labels = []
    for name in names:
        back = status.rollback_targets.get(name)
        rollback = None
        if back is not None and name in current:
            rollback = link("rollback", name, back, f"roll {name} back from {current[name]} to {back}")
        remove = link("unlabel", name, None, f"remove {name} (was {current[name]})") if name in current else None
        labels.append(LabelView(name, current.get(name), back, rollback, remove))
    loaded = tuple(entry.versions) if entry else ()
    newest = max(published) if published else None
    promote = tuple(
        link("promote", name, newest, f"promote {newest} to {name}" if newest is not None else "")
        for name in labels_of(config)
    )
    history = tuple(_move_view(m, root, dag_id) for m in reversed(status.moves))
    return ServableView(
        status.servable, entry is not None, loaded, tuple(sorted(published, reverse=True)), tuple(labels),
        tuple(status.pins), promote, history,
    )


def _move_view(move: LabelMove, root: str, dag_id: str) -> MoveView:
    return MoveView(
        label=move.label,
        from_version=move.from_version,
        to_version=move.to_version,
        action=move.action,
        who=move.who,
        at=move.at,
        run_id=move.run_id,
        run_url=run_url(root, dag_id, move.run_id) if move.run_id else None,
        reason=move.reason,
    )


@dataclasses.dataclass(frozen=True)
class RunRow:
    """One DAG run as Airflow's public REST API answers it (``DAGRunResponse``: the fields the panel reads)."""

    dag_id: str
    run_id: str
    state: str | None
    conf: dict[str, Any]
    run_type: str | None = None
    start_date: str | None = None  # ISO 8601, as the API sends it
    end_date: str | None = None
    queued_at: str | None = None

    @classmethod
    def from_api(cls, item: Mapping[str, Any]) -> RunRow:
        return cls(
            dag_id=str(item["dag_id"]),
            run_id=str(item["dag_run_id"]),
            state=item.get("state"),
            conf=dict(item.get("conf") or {}),
            run_type=item.get("run_type"),
            start_date=item.get("start_date"),
            end_date=item.get("end_date"),
            queued_at=item.get("queued_at"),
        )


def run_view(row: Any, airflow_root: str) -> RunView:
    """A DAG-run row (a ``RunRow``, or anything with its fields) as the page shows it."""
    conf = dict(getattr(row, "conf", None) or {})
    state = getattr(row, "state", None)
    return RunView(
        dag_id=row.dag_id,
        run_id=row.run_id,
        state=str(getattr(state, "value", state) or "none"),
        dry_run=bool(conf.get("dry_run")),
        conf=conf,
        run_type=str(getattr(row.run_type, "value", row.run_type)) if getattr(row, "run_type", None) else None,
        started=_iso(getattr(row, "start_date", None) or getattr(row, "queued_at", None)),
        ended=_iso(getattr(row, "end_date", None)),
        url=run_url(airflow_root, row.dag_id, row.run_id),
    )


def _iso(value: Any) -> str | None:
    """A time as ISO 8601: a string from the REST API as it came, a datetime formatted."""
    if value is None or isinstance(value, str):
        return value
    return value.isoformat()
