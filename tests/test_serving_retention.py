"""Retention never deletes what serving needs: a labelled version, one listed in the model server config,
a label's rollback target, a pinned one; and deletes nothing when the config cannot be read."""

from __future__ import annotations

from pathlib import Path

from components.publish.retention import RetentionPolicy, decide
from components.ranking import RankingRule
from components.serving import control
from components.serving.protection import retention_for_config, retire_old_versions
from components.storage import storage_for
from tests.support.publishing import loadable_versions, version_view
from tests.support.serving import config_path, publish_versions, serving_config


def test_decide_keeps_every_version_serving_needs_with_its_reason() -> None:
    views = {v: version_view(v) for v in ("100", "200", "300", "400")}
    decisions = decide(views, RetentionPolicy(keep=1), None, {"100": "serving: label stable", "200": "serving: pinned for serving"})
    assert {d.version: (d.action, d.reason) for d in decisions} == {
        "400": ("keep", "one of the 1 newest"),
        "300": ("delete", "older than the 1 newest published versions"),
        "200": ("keep", "serving: pinned for serving"),
        "100": ("keep", "serving: label stable"),
    }


def test_retention_keeps_labelled_listed_rollback_target_and_pinned_versions(tmp_path: Path) -> None:
    config = serving_config(tmp_path)  # keep: 1
    publish_versions(config, tmp_path, 100, 200, 300, 400, 500, 600, 700)
    control.promote(config, 100, "stable", who="a")
    control.promote(config, 200, "stable", who="a")  # 100 becomes stable's rollback target, unlisted
    control.pin(config, 300)
    control.promote(config, 400, "canary", who="a")
    control.promote(config, 500, "canary", who="a")
    control.rollback(config, "canary", who="a")  # canary back to 400; 500 no longer needed

    (report,) = retention_for_config(config)
    reasons = {d.version: (d.action, d.reason) for d in report.decisions}
    assert reasons["100"] == ("keep", "serving: rollback target of stable")
    assert reasons["200"] == ("keep", "serving: label stable, listed in the model server config")
    assert reasons["300"] == ("keep", "serving: listed in the model server config, pinned for serving")
    assert reasons["400"] == ("keep", "serving: label canary, listed in the model server config")
    assert reasons["500"][0] == "delete" and reasons["600"][0] == "delete"
    assert reasons["700"] == ("keep", "one of the 1 newest, best by loss")
    storage = storage_for(str(tmp_path))
    assert loadable_versions(storage, str(tmp_path / "published" / "example")) == ["100", "200", "300", "400", "700"]


def test_retention_deletes_nothing_when_the_model_server_config_is_malformed(tmp_path: Path) -> None:
    config = serving_config(tmp_path)
    publish_versions(config, tmp_path, 100, 200, 300)
    config_path(tmp_path).write_text("model_config_list { config { name: 'example' versions: 1 } }\n")
    assert retire_old_versions(config, "example") is None  # logged and skipped, never fails a publish
    storage = storage_for(str(tmp_path))
    assert loadable_versions(storage, str(tmp_path / "published" / "example")) == ["100", "200", "300"]


def test_a_serving_version_counts_among_the_newest_and_the_best() -> None:
    """A forced republish is the newest number and gets the publish label; it is still the newest (and may
    be the best), so an older, unlabelled version is not kept as 'one of the newest' or 'best' in its place."""
    views = {v: version_view(v, auc) for v, auc in [("100", 0.6), ("200", 0.7), ("300", 0.95), ("301", 0.9)]}
    serving = {"300": "serving: label stable", "301": "serving: label canary"}
    decisions = decide(views, RetentionPolicy(keep=1, best=RankingRule("auc", "higher_is_better")), None, serving)
    assert {d.version: (d.action, d.reason) for d in decisions} == {
        "301": ("keep", "serving: label canary, one of the 1 newest"),
        "300": ("keep", "serving: label stable, best by auc"),
        "200": ("delete", "older than the 1 newest published versions"),
        "100": ("delete", "older than the 1 newest published versions"),
    }
