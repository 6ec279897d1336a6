"""The promote DAG of each model with ``serving.mode: labels``: ``exportflow__<model>__promote``.

A manual run (UI form or REST) chooses among configured things only: promote, roll back or remove
(``unlabel``) a label, which label (the form proposes ``components.serving.control.promotable_labels``:
``stable``, ``canary`` and the configured ``publish_label``; a label the servable already has is accepted
too, as control accepts it, and anything else is refused by ``check`` — parsing does no I/O, so the
servable's own labels are read at run time), which of the model's servables, a version number (checked at
run time against what is published), and a reason. Tasks:

``check`` validates the request against the destination and decides whether a person must approve it
(``serving.approval: true`` and the label ``stable``) → ``approve`` or ``no_approval_needed`` (Airflow's deferrable
``ApprovalOperator``: no worker slot while it waits; *Reject*, or no answer within
``APPROVAL_TIMEOUT``, skips the move and changes nothing) → ``move_label`` (the two-phase move of
``components.serving.control``, or the label's removal, recorded in the label history as done by the
approver, or by the user who triggered the run, with the run id and reason; it emits an event on the
model's serving asset).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from airflow.providers.standard.operators.branch import BaseBranchOperator
from airflow.sdk import DAG, Asset, BaseOperator, Param

from components.config import ConfigError, PipelineConfig, load_configs_dir

log = logging.getLogger(__name__)
APPROVAL_TIMEOUT = timedelta(hours=24)
APPROVED_LABEL = "stable"
FORM_FIELDS = frozenset({"action", "version", "label", "servable", "reason"})


def promote_dag_id(model: str) -> str:
    return f"exportflow__{model}__promote"


def serving_asset(destination: str, model: str) -> Asset:
    """Label moves of ``model`` (extra: servable, label, from, to, action): a rollout DAG can follow it."""
    location = f"{destination.rstrip('/')}/{model}"
    uri = location if "://" in location else f"file://{location}"
    return Asset(uri=f"{uri}/models.config", name=f"exportflow-serving:{location}")


def labels_of(config: PipelineConfig) -> list[str]:
    """The labels the form proposes: control's own list, so the form and the move cannot disagree."""
    from components.serving.control import promotable_labels

    return promotable_labels(config)


def servables_of(config: PipelineConfig) -> list[str]:
    return sorted({s.servable or config.name for s in config.strategies})


def build_params(config: PipelineConfig) -> dict[str, Any]:
    from components.serving.control import LABEL_PATTERN

    servables = servables_of(config)
    return {
        "action": Param("promote", type="string", enum=["promote", "rollback", "unlabel"], title="Action",
                        description="promote: point the label at the version; rollback: back to its previous "
                                    "version; unlabel: remove the label (its version stays loaded while needed)."),
        "version": Param(None, type=["null", "integer"], minimum=0, title="Version",
                         description="A published version (promote only); checked against the destination."),
        "label": Param("stable", type="string", examples=labels_of(config), pattern=LABEL_PATTERN.pattern, title="Label",
                       description="One proposed here, or a label the servable already has; checked before anything moves."),
        "servable": Param(servables[0], type="string", enum=servables, title="Servable"),
        "reason": Param("", type="string", maxLength=500, title="Reason", description="Recorded in the label history."),
    }


class CheckPromotionOperator(BaseBranchOperator):
    """Validate the request (refuses unknown fields, an unpublished version, an unknown label) and pick
    the branch: ``approve`` when a person must approve it, else ``no_approval_needed``."""

    def __init__(self, *, config_path: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.config_path = config_path

    def choose_branch(self, context: Any) -> str:
        from airflow.sdk.exceptions import AirflowFailException

        from components.config import load_config
        from components.errors import ExportflowError
        from components.serving import control

        params = dict(context["params"])
        unknown = sorted(set(params) - FORM_FIELDS)
        if unknown:
            raise AirflowFailException(f"trigger conf has fields {unknown} this DAG does not accept; allowed: {sorted(FORM_FIELDS)}")
        config = load_config(self.config_path)
        try:
            control.check_mode(config)
            target = control.target_for(config)
            servable = control.check_servable(target, params["servable"])
            control.check_label(params["label"])
            if params["action"] == "promote":
                if params.get("version") is None:
                    raise AirflowFailException("promote needs a version: fill in the form's Version field")
                control.check_known_label(config, target, servable, params["label"])  # before any approval
                control.check_published(target, servable, int(params["version"]))
            elif params["action"] == "unlabel":
                control.check_unlabel(target, servable, params["label"])  # refused before any approval
        except ExportflowError as exc:
            raise AirflowFailException(str(exc)) from exc
        needs_approval = config.serving.approval and params["label"] == APPROVED_LABEL
        return "approve" if needs_approval else "no_approval_needed"


class MoveLabelOperator(BaseOperator):
    """Promote, roll back or remove the label as the form asks; the approver (or the triggering user) is
    recorded."""

    def __init__(self, *, config_path: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.config_path = config_path

    def execute(self, context: Any) -> dict[str, Any] | None:
        from airflow.sdk.exceptions import AirflowFailException

        from components.config import load_config
        from components.errors import ExportflowError
        from components.serving import control

        params = context["params"]
        config = load_config(self.config_path)
        who = _approver(context) or _triggering_user(context)
        try:
            if params["action"] == "rollback":
                move = control.rollback(config, params["label"], servable=params["servable"], who=who,
                                        run_id=context.get("run_id"), reason=params.get("reason") or "")
            elif params["action"] == "unlabel":
                move = control.unlabel(config, params["label"], servable=params["servable"], who=who,
                                       run_id=context.get("run_id"), reason=params.get("reason") or "")
            else:
                move = control.promote(config, int(params["version"]), params["label"], servable=params["servable"],
                                       who=who, run_id=context.get("run_id"), reason=params.get("reason") or "")
        except ExportflowError as exc:
            if exc.retryable:
                raise
            raise AirflowFailException(str(exc)) from exc
        if move is None:
            log.info("%s already points at version %s; nothing moved", params["label"], params["version"])
            return None
        summary = {"servable": move.servable, "label": move.label, "from": move.from_version,
                   "to": move.to_version, "action": move.action, "who": move.who}
        for asset in self.outlets:
            context["outlet_events"][asset].extra = summary
        return summary


def _approver(context: Any) -> str | None:
    answer = context["ti"].xcom_pull(task_ids="approve")
    if isinstance(answer, dict):
        user = answer.get("responded_by_user") or {}
        return user.get("name") or user.get("id") if isinstance(user, dict) else str(user)
    return None


def _triggering_user(context: Any) -> str:
    run = context.get("dag_run")
    return getattr(run, "triggering_user_name", None) or "airflow"


def build_promote_dag(config: PipelineConfig) -> DAG:
    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.providers.standard.operators.hitl import ApprovalOperator

    with DAG(
        dag_id=promote_dag_id(config.name),
        schedule=None,
        catchup=False,
        max_active_runs=1,
        tags=["exportflow", "serving", *config.airflow.tags],
        params=build_params(config),
        description=f"exportflow: move a TF Serving label of {config.name}",
        doc_md=__doc__,
    ) as dag:
        check = CheckPromotionOperator(task_id="check", config_path=config.source)
        approve = ApprovalOperator(
            task_id="approve",
            subject=(
                f"{config.name}: {{{{ params.action }}}} {{{{ params.label }}}}"
                "{% if params.action == 'promote' %} to version {{ params.version }}{% endif %}"
            ),
            body="Reason: {{ params.reason }}\n\nRequested by run {{ run_id }}.",
            defaults="Reject",  # no answer within the timeout: nothing moves
            response_timeout=APPROVAL_TIMEOUT,
        )
        move = MoveLabelOperator(
            task_id="move_label",
            config_path=config.source,
            trigger_rule="none_failed_min_one_success",
            outlets=[serving_asset(config.destination.uri, config.name)],
        )
        check >> [approve, EmptyOperator(task_id="no_approval_needed")] >> move
    return dag


def build_promote_dags(folder: str) -> dict[str, DAG]:
    """One promote DAG per valid config in ``folder`` with ``serving.mode: labels`` (broken configs are
    reported by the export DAGs' placeholder, not twice)."""
    dags = {}
    for path, loaded in load_configs_dir(folder).items():
        if isinstance(loaded, ConfigError) or loaded.serving.mode != "labels":
            continue
        try:
            dag = build_promote_dag(loaded)
        except Exception:  # one model's DAG must not take the others down
            log.exception("cannot build the promote DAG of %s", path)
            continue
        dags[dag.dag_id] = dag
    return dags
