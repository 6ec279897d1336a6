"""The model server config file: round trip through TF Serving's own proto parser, other servables kept,
malformed files refused untouched with line and column, compare-and-swap writes, and the `serving:`
config section."""

from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from components.config import ConfigError
from components.config.loader import parse_config
from components.serving import config_file, model_config
from components.serving.errors import MalformedServingConfig, ServingConflict, ServingError
from components.storage import storage_for
from tests.support.example_pipeline import example_config_dict

FOREIGN = """\
model_config_list {
  config {
    name: "other-team"
    base_path: "/models/other"
    model_platform: "tensorflow"
    logging_config { sampling_config { sampling_rate: 0.5 } }
  }
  config {
    name: "example"
    base_path: "/old/example"
    model_platform: "tensorflow"
    logging_config { sampling_config { sampling_rate: 0.25 } }
  }
}
"""


def parsed(text: str) -> model_server_config_pb2.ModelServerConfig:
    return text_format.Parse(text, model_server_config_pb2.ModelServerConfig())


def test_written_config_parses_with_tf_serving_proto_and_keeps_other_servables(tmp_path: Path) -> None:
    storage = storage_for(str(tmp_path))
    uri = str(tmp_path / "models.config")
    (tmp_path / "models.config").write_text(FOREIGN)

    config_file.update(
        storage, uri, lambda c: model_config.with_servable(c, "example", "/dest/example", {5, 3}, {"stable": 3, "canary": 5})
    )

    written = parsed((tmp_path / "models.config").read_text())
    by_name = {e.name: e for e in written.model_config_list.config}
    assert list(by_name) == ["other-team", "example"]
    assert by_name["other-team"] == parsed(FOREIGN).model_config_list.config[0]  # untouched
    example = by_name["example"]
    assert example.base_path == "/dest/example" and example.model_platform == "tensorflow"
    assert list(example.model_version_policy.specific.versions) == [3, 5]
    assert dict(example.version_labels) == {"canary": 5, "stable": 3}
    assert example.logging_config.sampling_config.sampling_rate == 0.25  # a field exportflow does not own
    view = model_config.find(written, "example")
    assert view is not None and view.versions == (3, 5) and view.policy == "specific"


def test_a_fresh_config_is_created_and_an_unchanged_one_is_not_rewritten(tmp_path: Path) -> None:
    storage = storage_for(str(tmp_path))
    uri = str(tmp_path / "sub" / "models.config")
    config_file.update(storage, uri, lambda c: c)
    assert storage.read_versioned(uri) is None  # no change: no empty config appears
    config_file.update(storage, uri, lambda c: model_config.with_servable(c, "example", "/d/example", {7}, {}))
    first = storage.read_versioned(uri)
    assert first is not None
    config_file.update(storage, uri, lambda c: model_config.with_servable(c, "example", "/d/example", {7}, {}))
    assert storage.read_versioned(uri) == first  # same generation: nothing written


def test_malformed_config_is_refused_untouched_and_the_error_says_where(tmp_path: Path) -> None:
    path = tmp_path / "models.config"
    broken = 'model_config_list {\n  config {\n    name: "example"\n    versions_labels { key: "x" value: 1 }\n  }\n}\n'
    path.write_text(broken)
    with pytest.raises(MalformedServingConfig) as caught:
        config_file.update(storage_for(str(tmp_path)), str(path), lambda c: model_config.with_servable(c, "e", "/e", {1}, {}))
    assert str(caught.value) == (
        f"model server config {path} is malformed at line 4, column 5: Message type "
        '"tensorflow.serving.ModelConfig" has no field named "versions_labels".; exportflow left it untouched '
        "— fix it (it must parse as TF Serving's ModelServerConfig text proto) or remove it"
    )
    assert path.read_text() == broken


def test_custom_model_config_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "models.config"
    path.write_text("custom_model_config { }\n")
    with pytest.raises(MalformedServingConfig, match="uses custom_model_config; exportflow manages model_config_list only"):
        config_file.read(storage_for(str(tmp_path)), str(path))


def test_a_label_on_an_unlisted_version_is_never_written(tmp_path: Path) -> None:
    uri = str(tmp_path / "models.config")

    def dangling(config):
        result = model_config.with_servable(config, "example", "/d/example", {3}, {"stable": 3})
        result.model_config_list.config[0].version_labels["canary"] = 9
        return result

    with pytest.raises(ServingError, match=r"labels \{'canary': 9\} of 'example' point at versions it does not load \(\[3\]\); not written"):
        config_file.update(storage_for(str(tmp_path)), uri, dangling)
    assert not (tmp_path / "models.config").exists()


def test_two_writers_that_read_the_same_config_one_wins_the_other_gets_a_conflict(tmp_path: Path) -> None:
    storage = storage_for(str(tmp_path))
    uri = str(tmp_path / "models.config")
    config_file.update(storage, uri, lambda c: model_config.with_servable(c, "a", "/d/a", {1}, {}))

    def slow_writer(config):
        # while this writer holds its read, another one writes its change
        config_file.update(storage, uri, lambda c: model_config.with_servable(c, "b", "/d/b", {2}, {}))
        return model_config.with_servable(config, "a", "/d/a", {1, 3}, {})

    with pytest.raises(ServingConflict) as caught:
        config_file.update(storage, uri, slow_writer)
    assert "was changed by another writer while this change was made; nothing of this change was written" in str(caught.value)
    final = config_file.read(storage, uri).config
    assert model_config.find(final, "b") is not None  # the winner's change is there
    assert model_config.find(final, "a").versions == (1,)  # the loser's is not


def test_config_round_trip_on_gcs(gcs_bucket: str) -> None:
    uri = f"gs://{gcs_bucket}/published/models.config"
    storage = storage_for(uri)
    config_file.update(storage, uri, lambda c: model_config.with_servable(c, "example", f"gs://{gcs_bucket}/published/example", {4}, {"stable": 4}))
    text = storage.read_bytes(uri).decode()
    entry = parsed(text).model_config_list.config[0]
    assert entry.base_path == f"gs://{gcs_bucket}/published/example" and dict(entry.version_labels) == {"stable": 4}


def base_config(tmp_path: Path, serving: dict | None = None) -> dict:
    """The example's export-and-publish config, with ``serving`` as its serving section (none when None)."""
    sections = {"serving": serving} if serving is not None else {}
    return example_config_dict(tmp_path / "model", tmp_path / "published", **sections)


def test_serving_section_defaults_to_latest_and_reads_every_field(tmp_path: Path) -> None:
    assert parse_config(base_config(tmp_path), base_dir=tmp_path).serving.mode == "latest"
    serving = parse_config(
        base_config(tmp_path, {
            "mode": "labels", "config_path": "serving/models.config", "publish_label": "canary",
            "approval": True, "status_url": "http://localhost:8501", "label_wait_seconds": 5,
        }),
        base_dir=tmp_path,
    ).serving
    assert serving.config_path == str(tmp_path / "serving" / "models.config")  # relative to the config file
    assert (serving.publish_label, serving.approval, serving.status_url, serving.label_wait_seconds) == (
        "canary", True, "http://localhost:8501", 5.0
    )


@pytest.mark.parametrize(
    ("serving", "message"),
    [
        ({"mode": "blue-green"}, "serving.mode: expected one of ['latest', 'labels'], got 'blue-green'"),
        ({"mode": "labels", "publish_label": "Canary!"}, "serving.publish_label: 'Canary!' must be a lowercase label name such as canary"),
        ({"mode": "labels", "label_wait_seconds": -1}, "serving.label_wait_seconds: expected zero or a positive number of seconds"),
        ({"mode": "labels", "status_url": "localhost:8501"}, "serving.status_url: 'localhost:8501' must be TF Serving's REST address, e.g. http://host:8501"),
        ({"publish_label": "canary"}, "serving.publish_label: labels need serving.mode: labels (mode latest serves the highest version)"),
        ({"mode": "labels", "config_path": "s3://b/models.config"}, "serving.config_path: no storage back-end for scheme 's3'"),
    ],
)
def test_bad_serving_section_names_the_field(tmp_path: Path, serving: dict, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(base_config(tmp_path, serving), base_dir=tmp_path)
    assert message in str(caught.value)
