"""``exportflow serving status|promote|rollback|unlabel|pin|unpin``: what it prints, and its exact errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from components.cli import main
from components.config import load_config
from components.publish.executor import publish
from tests.support.example_pipeline import write_config
from tests.support.publishing import make_export, params_for
from tests.support.serving import config_path, publish_versions, serving_config_dict


def config_file_for(tmp_path: Path, **serving: object) -> str:
    """The serving config of ``example`` written where ``--config`` can name it."""
    return str(write_config(serving_config_dict(tmp_path, **serving), tmp_path / "example.yaml"))


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_promote_rollback_pin_and_status(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = config_file_for(tmp_path)
    publish_versions(load_config(path), tmp_path, 100, 200)

    code, out, _ = run(capsys, "serving", "promote", "--config", path, "--version", "100", "--who", "alice")
    assert code == 0 and out.rstrip().endswith("promote   stable (new) -> 100  by alice")
    code, out, _ = run(capsys, "serving", "promote", "--config", path, "--version", "200", "--who", "bob", "--reason", "auc up")
    assert code == 0 and out.rstrip().endswith("promote   stable 100 -> 200  by bob: auc up")
    code, out, _ = run(capsys, "serving", "promote", "--config", path, "--version", "200", "--who", "bob")
    assert out == "stable already points at version 200\n"
    assert run(capsys, "serving", "pin", "--config", path, "--version", "100")[1] == "pinned version 100\n"

    code, out, _ = run(capsys, "serving", "status", "--config", path)
    lines = out.splitlines()
    assert lines[:5] == [
        f"serving mode: labels; model server config: {config_path(tmp_path)}",
        "example:",
        "  loaded versions: 100, 200",
        "  stable     -> 200  (rollback: 100)",
        "  pinned: 100",
    ]
    assert len(lines) == 7  # and the two moves

    code, out, _ = run(capsys, "serving", "rollback", "--config", path, "--who", "carol")
    assert code == 0 and out.rstrip().endswith("rollback  stable 200 -> 100  by carol")
    assert run(capsys, "serving", "unpin", "--config", path, "--version", "100")[1] == "unpinned version 100\n"


def test_unlabel_removes_a_label_and_status_shows_it_in_the_history(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = config_file_for(tmp_path)
    publish_versions(load_config(path), tmp_path, 100, 200)
    assert run(capsys, "serving", "promote", "--config", path, "--version", "100", "--who", "a")[0] == 0
    assert run(capsys, "serving", "promote", "--config", path, "--version", "200", "--label", "canary", "--who", "a")[0] == 0

    code, out, _ = run(capsys, "serving", "unlabel", "--config", path, "--label", "canary", "--who", "bob", "--reason", "canary over")
    assert code == 0 and out.rstrip().endswith("remove    canary 200 -> (removed)  by bob: canary over")
    code, out, _ = run(capsys, "serving", "status", "--config", path)
    assert out.splitlines()[:4] == [
        f"serving mode: labels; model server config: {config_path(tmp_path)}",
        "example:",
        "  loaded versions: 100",  # 200 was loaded only for canary
        "  stable     -> 100",
    ]
    assert out.splitlines()[-1].endswith("remove    canary 200 -> (removed)  by bob: canary over")

    code, _, err = run(capsys, "serving", "unlabel", "--config", path, "--label", "stable")
    assert code == 1 and err == (
        "exportflow: error: removing label 'stable' of 'example' would unload version 100, the only version it "
        "serves, and leave TF Serving nothing to serve; promote another label or pin a version first "
        "(nothing was changed)\n"
    )
    code, _, err = run(capsys, "serving", "unlabel", "--config", path, "--label", "canary")
    assert code == 1 and err == "exportflow: error: servable 'example' has no label 'canary'; its labels: ['stable']\n"


def test_bad_input_exact_messages(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = config_file_for(tmp_path)
    publish_versions(load_config(path), tmp_path, 100)

    code, _, err = run(capsys, "serving", "promote", "--config", path, "--version", "7")
    assert code == 1
    assert err == (
        f"exportflow: error: version 7 of 'example' is not published at {tmp_path / 'published'} "
        "(no commit marker); published versions: [100]\n"
    )
    code, _, err = run(capsys, "serving", "rollback", "--config", path, "--label", "canary")
    assert code == 1 and err == "exportflow: error: servable 'example' has no label 'canary'; its labels: none\n"

    config_path(tmp_path).write_text("model_config_list {\n  config { name: 'example' }\n  nonsense\n}\n")
    code, _, err = run(capsys, "serving", "promote", "--config", path, "--version", "100")
    assert code == 1
    assert err == (
        f"exportflow: error: model server config {config_path(tmp_path)} is malformed at line 3, column 3: "
        'Message type "tensorflow.serving.ModelConfigList" has no field named "nonsense".; '
        "exportflow left it untouched — fix it (it must parse as TF Serving's "
        "ModelServerConfig text proto) or remove it\n"
    )
    assert config_path(tmp_path).read_text() == "model_config_list {\n  config { name: 'example' }\n  nonsense\n}\n"


def test_mode_latest_refuses_label_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = config_file_for(tmp_path, mode="latest")
    code, _, err = run(capsys, "serving", "pin", "--config", path, "--version", "1")
    assert code == 1
    assert err == (
        f"exportflow: error: {path}: serving.mode is 'latest', so exportflow writes no model server config for "
        "this model; set serving.mode: labels to use labels, pins and rollbacks\n"
    )
    code, out, _ = run(capsys, "serving", "status", "--config", path)
    assert code == 0 and out.splitlines() == [
        "serving mode: latest (no model server config: TF Serving serves each servable's highest version)",
        "example:",
        "  no published version",
    ]


def test_status_in_mode_latest_names_the_version_tf_serving_serves(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Under the latest policy the highest number serves, which after a forced republish is not the
    checkpoint's step: status says which one, instead of 'not in the model server config'. No model server
    config is read in this mode: a file at its place (someone else's, or half-edited) does not matter."""
    path = config_file_for(tmp_path, mode="latest")
    publish_versions(load_config(path), tmp_path, 100, 300, 200)
    config_path(tmp_path).write_text("not a model server config {")
    code, out, _ = run(capsys, "serving", "status", "--config", path)
    assert code == 0 and out.splitlines() == [
        "serving mode: latest (no model server config: TF Serving serves each servable's highest version)",
        "example:",
        "  serving: 300 (highest published version; published: 300, 200, 100)",
    ]


def test_labels_and_pins_of_a_multi_graph_set_are_refused_naming_the_model_and_what_to_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = config_file_for(tmp_path)
    publish(params_for(load_config(path)), make_export(tmp_path / "exports", step=100, graphs=("entry", "ps_0")))
    expected = (
        f"exportflow: error: model 'example': version 100 of 'example' is a multi-graph set (graphs ['entry', "
        f"'ps_0']), each graph its own TF Serving model with base path {tmp_path / 'published' / 'example'}/<graph>; "
        "a label cannot move all of them at once, so labels, promotions and pins of a set are refused and the "
        "model server config was not changed. Serve a set with serving.mode: latest (hosts load each graph's "
        "highest version; the entry graph is published last), or export this servable with a single-graph "
        "strategy to use labels\n"
    )
    for command in ("promote", "pin"):
        code, out, err = run(capsys, "serving", command, "--config", path, "--version", "100")
        assert (code, out, err) == (1, "", expected), command
    assert not config_path(tmp_path).exists()


def test_a_misspelt_label_is_refused_before_anything_is_written(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A typo would stay in the model server config until someone noticed, keeping its version loaded and
    out of retention's reach."""
    path = config_file_for(tmp_path, publish_label="shadow")
    publish_versions(load_config(path), tmp_path, 100, 200)
    code, _, err = run(capsys, "serving", "promote", "--config", path, "--version", "100", "--label", "stabel")
    assert code == 1
    assert err == (
        "exportflow: error: label 'stabel' is not a label of servable 'example' (known: canary, shadow, stable); "
        "check its spelling. A new label is refused so that a typo cannot keep a version loaded: to use one, set "
        "it as serving.publish_label or add it to the model server config by hand (`exportflow serving unlabel` "
        "removes a label)\n"
    )
    assert not config_path(tmp_path).exists()
    assert run(capsys, "serving", "promote", "--config", path, "--version", "100", "--label", "shadow")[0] == 0
    assert run(capsys, "serving", "promote", "--config", path, "--version", "100", "--label", "canary")[0] == 0
