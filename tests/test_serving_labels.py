"""Label moves on real published versions: two-phase against a TF Serving status stand-in, rollback,
concurrent promotions, pins, the history, and bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from components.ledger.label_history import LabelHistory
from components.serving import control, model_config
from components.serving.availability import status_wait
from components.serving.errors import (
    ServingConflict,
    ServingError,
    ServingModeOff,
    UnknownLabel,
    VersionNotAvailable,
    VersionNotPublished,
)
from components.storage import storage_for
from tests.support.serving import config_path, entry, publish_versions, serving_config
from tests.support.tf_serving_status import status_server


def history(tmp_path: Path):
    return LabelHistory(storage_for(str(tmp_path)), str(tmp_path / "published"), "example").load()


def test_promotion_lists_the_version_first_and_labels_it_once_tf_serving_reports_it_available(tmp_path: Path) -> None:
    with status_server(str(config_path(tmp_path)), loading_polls=2) as server:
        config = serving_config(tmp_path, status_url=server.url, label_wait_seconds=30)
        publish_versions(config, tmp_path, 100, 200)
        first = control.promote(config, 100, "stable", who="alice", reason="first")
        second = control.promote(config, 200, "stable", who="bob", run_id="manual__1", reason="better auc")

    assert server.violations == []  # no label ever pointed at a version the server had not loaded
    # the server saw 200 listed beside the labelled 100 (phase 1) before the label moved (phase 2)
    assert ((100, 200), {"stable": 100}) in [s.get("example") for s in server.seen]
    assert entry(tmp_path) == model_config.ServableEntry(
        "example", str(tmp_path / "published" / "example"), (200,), {"stable": 200}, "specific"
    )
    assert first is not None and (first.from_version, first.to_version, first.who) == (None, 100, "alice")
    assert second is not None and (second.from_version, second.to_version, second.who, second.run_id, second.reason) == (
        100, 200, "bob", "manual__1", "better auc"
    )
    assert history(tmp_path).moves == (first, second)
    assert control.promote(config, 200, "stable", who="bob") is None  # already there: nothing written


def test_a_version_never_available_is_not_labelled_and_is_taken_back_out(tmp_path: Path) -> None:
    config = serving_config(tmp_path)
    publish_versions(config, tmp_path, 100, 200)
    control.promote(config, 100, "stable", who="alice")
    with status_server(str(config_path(tmp_path)), loading_polls=10**6) as server, pytest.raises(VersionNotAvailable) as caught:
        control.promote(config, 200, "stable", who="alice", wait=status_wait(server.url, 0.3, poll_seconds=0.02))
    assert "did not report example version 200 AVAILABLE within 0.3 s" in str(caught.value)
    assert "the label was not moved" in str(caught.value)
    assert entry(tmp_path).labels == {"stable": 100} and entry(tmp_path).versions == (100,)
    assert len(history(tmp_path).moves) == 1


def test_rollback_returns_the_label_to_its_previous_version_and_twice_walks_further_back(tmp_path: Path) -> None:
    config = serving_config(tmp_path)
    publish_versions(config, tmp_path, 100, 200, 300)
    for version in (100, 200, 300):
        control.promote(config, version, "stable", who="alice")

    back = control.rollback(config, "stable", who="carol", reason="latency regression")
    assert (back.from_version, back.to_version, back.action, back.reason) == (300, 200, "rollback", "latency regression")
    assert entry(tmp_path).labels == {"stable": 200} and entry(tmp_path).versions == (200,)
    control.rollback(config, "stable", who="carol")
    assert entry(tmp_path).labels == {"stable": 100}
    with pytest.raises(ServingError, match=r"label 'stable' of 'example' has no earlier version to roll back to \(it only held 100\)"):
        control.rollback(config, "stable", who="carol")
    assert [m.to_version for m in history(tmp_path).moves] == [100, 200, 300, 200, 100]  # append-only


def test_two_labels_share_versions_and_a_move_keeps_what_the_other_label_needs(tmp_path: Path) -> None:
    config = serving_config(tmp_path)
    publish_versions(config, tmp_path, 100, 200)
    control.promote(config, 100, "stable", who="a")
    control.promote(config, 100, "canary", who="a")
    control.promote(config, 200, "canary", who="a")
    assert entry(tmp_path).versions == (100, 200)
    assert entry(tmp_path).labels == {"stable": 100, "canary": 200}
    control.promote(config, 200, "stable", who="a")
    assert entry(tmp_path).versions == (200,)


def test_two_concurrent_promotions_one_wins_the_other_gets_a_conflict_and_leaves_nothing(tmp_path: Path) -> None:
    config = serving_config(tmp_path)
    publish_versions(config, tmp_path, 100, 200, 300)
    control.promote(config, 100, "stable", who="alice")

    def meanwhile(servable: str, version: int) -> None:
        # while alice waits for 300 to load, bob promotes 200 all the way
        assert entry(tmp_path).versions == (100, 300)
        control.promote(config, 200, "stable", who="bob")

    with pytest.raises(ServingConflict) as caught:
        control.promote(config, 300, "stable", who="alice", wait=meanwhile)
    assert str(caught.value).startswith(
        "label 'stable' of 'example' moved from 100 to 200 while this promotion waited (another promotion won); "
        "this one changed nothing"
    )
    assert entry(tmp_path).labels == {"stable": 200} and entry(tmp_path).versions == (200,)  # 300 taken back out
    assert [(m.who, m.to_version) for m in history(tmp_path).moves] == [("alice", 100), ("bob", 200)]


def test_pin_keeps_a_version_listed_through_label_moves_and_unpin_releases_it(tmp_path: Path) -> None:
    config = serving_config(tmp_path)
    publish_versions(config, tmp_path, 100, 200)
    control.promote(config, 100, "stable", who="a")
    assert control.pin(config, 100) is True
    assert control.pin(config, 100) is False
    control.promote(config, 200, "stable", who="a")
    assert entry(tmp_path).versions == (100, 200)
    control.unpin(config, 100)
    assert entry(tmp_path).versions == (200,)
    with pytest.raises(ServingError, match=r"^version 100 of 'example' is not pinned; pinned versions: none$"):
        control.unpin(config, 100)


def test_bad_input_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    config = serving_config(tmp_path)
    publish_versions(config, tmp_path, 100)
    with pytest.raises(VersionNotPublished) as caught:
        control.promote(config, 999, "stable", who="a")
    assert str(caught.value) == (
        f"version 999 of 'example' is not published at {tmp_path / 'published'} (no commit marker); published versions: [100]"
    )
    with pytest.raises(UnknownLabel, match=r"^label 'Stable!' must be lowercase letters, digits, '_' or '-', e.g. stable or canary$"):
        control.promote(config, 100, "Stable!", who="a")
    control.promote(config, 100, "stable", who="a")
    with pytest.raises(UnknownLabel, match=r"^servable 'example' has no label 'canary'; its labels: \['stable'\]$"):
        control.rollback(config, "canary", who="a")
    with pytest.raises(ServingError, match=r"^servable 'other' is not published by model 'example'; its servables: \['example'\]$"):
        control.promote(config, 100, "stable", servable="other", who="a")
    assert entry(tmp_path).labels == {"stable": 100}


def test_a_malformed_config_is_refused_by_promote_and_left_untouched(tmp_path: Path) -> None:
    config = serving_config(tmp_path)
    publish_versions(config, tmp_path, 100)
    config_path(tmp_path).write_text("model_config_list {\n  config {\n    name: 'example'\n")
    with pytest.raises(ServingError, match=r'is malformed at line 3, column 11: Expected "\}"\.; exportflow left it untouched'):
        control.promote(config, 100, "stable", who="a")
    assert config_path(tmp_path).read_text() == "model_config_list {\n  config {\n    name: 'example'\n"
    assert history(tmp_path).moves == ()


def test_mode_latest_writes_no_config(tmp_path: Path) -> None:
    config = serving_config(tmp_path, mode="latest")
    publish_versions(config, tmp_path, 100)
    with pytest.raises(ServingModeOff, match="serving.mode is 'latest', so exportflow writes no model server config"):
        control.promote(config, 100, "stable", who="a")
    assert not config_path(tmp_path).exists()


def test_unlabel_removes_a_label_and_unloads_its_version_only_when_nothing_else_needs_it(tmp_path: Path) -> None:
    config = serving_config(tmp_path)
    publish_versions(config, tmp_path, 100, 200, 300)
    control.promote(config, 100, "stable", who="a")
    control.promote(config, 100, "canary", who="a")  # canary shares stable's version
    removed = control.unlabel(config, "canary", who="bob", reason="shared")
    assert (removed.from_version, removed.to_version, removed.action, removed.who) == (100, None, "remove", "bob")
    assert entry(tmp_path).labels == {"stable": 100} and entry(tmp_path).versions == (100,)  # stable needs 100

    control.promote(config, 200, "canary", who="a")
    control.pin(config, 200)
    control.unlabel(config, "canary", who="a")
    assert entry(tmp_path).labels == {"stable": 100} and entry(tmp_path).versions == (100, 200)  # the pin needs 200

    control.promote(config, 300, "canary", who="a")
    control.unlabel(config, "canary", who="a")
    assert entry(tmp_path).versions == (100, 200)  # 300 was loaded only for canary: unloaded with it
    assert [(m.label, m.to_version) for m in history(tmp_path).moves][-2:] == [("canary", 300), ("canary", None)]

    control.promote(config, 300, "canary", who="a")  # added again: no rollback to before the removal
    with pytest.raises(ServingError, match="has no earlier version to roll back to"):
        control.rollback(config, "canary", who="a")


def test_unlabel_removes_a_label_added_by_hand_and_refuses_what_would_leave_nothing_served(tmp_path: Path) -> None:
    config = serving_config(tmp_path)
    publish_versions(config, tmp_path, 100, 200)
    control.promote(config, 100, "stable", who="a")
    # someone added a misspelt label to the file by hand, listing version 200 for it
    config_path(tmp_path).write_text(
        "model_config_list {\n  config {\n    name: 'example'\n"
        f"    base_path: '{tmp_path / 'published' / 'example'}'\n    model_platform: 'tensorflow'\n"
        "    model_version_policy { specific { versions: 100 versions: 200 } }\n"
        "    version_labels { key: 'stable' value: 100 }\n    version_labels { key: 'stabel' value: 200 }\n  }\n}\n"
    )
    assert entry(tmp_path).labels == {"stable": 100, "stabel": 200}, config_path(tmp_path).read_text()
    control.unlabel(config, "stabel", who="a", reason="typo")
    assert entry(tmp_path).labels == {"stable": 100} and entry(tmp_path).versions == (100,)

    before = config_path(tmp_path).read_text()
    target = control.target_for(config)
    for attempt in (lambda: control.unlabel(config, "stable", who="a"), lambda: control.check_unlabel(target, "example", "stable")):
        with pytest.raises(ServingError, match=r"^removing label 'stable' of 'example' would unload version 100, the only"):
            attempt()  # the promote DAG's check refuses it as unlabel would, before anyone approves
    with pytest.raises(UnknownLabel, match=r"^servable 'example' has no label 'canary'; its labels: \['stable'\]$"):
        control.unlabel(config, "canary", who="a")
    with pytest.raises(UnknownLabel, match=r"must be lowercase letters"):
        control.unlabel(config, "Canary!", who="a")
    assert config_path(tmp_path).read_text() == before
    assert [m.action for m in history(tmp_path).moves] == ["promote", "remove"]
    control.pin(config, 200)
    assert control.check_unlabel(target, "example", "stable") == 100  # the pinned 200 would still be served
