"""Operator seams that need no running Airflow: run options from params and events, credentials."""

from __future__ import annotations

import dataclasses
import sys

import pytest

from plugins.operators import gcp_credentials
from plugins.params import refuse_unknown_params, run_options_from_params, steps_from_asset_events


@dataclasses.dataclass
class Event:
    extra: dict


def test_every_coalesced_event_is_taken_and_final_flags_kept() -> None:
    events = {
        "asset-a": [Event({"step": 100, "final": False}), Event({"step": 300, "final": True})],
        "asset-b": [Event({"step": 200}), Event({"step": 100}), Event({"nothing": 1}), Event({"step": "x"})],
    }
    assert steps_from_asset_events(events) == ((100, 200, 300), (300,))
    assert steps_from_asset_events({}) == ((), ())


def test_run_options_from_the_form() -> None:
    options = run_options_from_params(
        {"checkpoint": 200, "strategies": ["b"], "force": True, "dry_run": False, "max_checkpoints": 3}, ["a", "b"]
    )
    assert (options.checkpoint, options.strategies, options.force, options.dry_run, options.max_checkpoints) == (
        200, ("b",), True, False, 3
    )
    with pytest.raises(ValueError, match=r"unknown strategies \['c'\]; configured: \['a', 'b'\]"):
        run_options_from_params({"strategies": ["c"]}, ["a", "b"])


def test_trigger_conf_may_only_fill_the_form() -> None:
    refuse_unknown_params({"checkpoint": None, "force": False})
    with pytest.raises(ValueError, match=r"\['destination', 'model_dir'\] that this DAG does not accept"):
        refuse_unknown_params({"destination": "/etc", "model_dir": "/", "force": True})


def test_no_gcp_conn_id_means_adc_untouched(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", "/adc/key.json")
    with gcp_credentials(None):
        import os

        assert os.environ["GOOGLE_APPLICATION_CREDENTIALS"] == "/adc/key.json"


def test_gcp_conn_id_without_the_google_provider_says_how_to_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    monkeypatch.setitem(sys.modules, "airflow.providers.google.common.hooks.base_google", None)
    with (
        pytest.raises(AirflowFailException, match="install exportflow with the `google` extra"),
        gcp_credentials("my_gcp"),
    ):
        pass


def test_the_refusal_list_is_exactly_the_forms_fields() -> None:
    from plugins.params import FORM_FIELDS, build_params

    assert set(build_params(["a", "b"])) == FORM_FIELDS
