"""Config validation: every error names the file, the field and what was expected."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from components.config import ConfigError, load_config, load_configs_dir
from components.imports import ImportPath
from tests.support.example_pipeline import write_config

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "pipeline.yaml"


def example() -> dict:
    return yaml.safe_load(EXAMPLE.read_text())


def test_example_config_loads_with_paths_resolved_against_its_folder() -> None:
    config = load_config(EXAMPLE)
    assert config.name == "example"
    assert config.model_dir == str((EXAMPLE.parent / "../model").resolve())
    assert config.destination.uri == str((EXAMPLE.parent / "../published").resolve())
    assert config.evaluation.input_fn_kwargs["path"].startswith(str(EXAMPLE.parent.resolve()))
    assert isinstance(config.model_fn, ImportPath)
    assert config.strategies[0].kind == "all_modes"
    assert config.source == str(EXAMPLE)


def test_the_shipped_dags_config_is_valid() -> None:
    config = load_config(EXAMPLE.parent.parent / "dags" / "configs" / "example.yaml")
    assert config.model_dir.endswith(".exportflow-demo/model")


@pytest.mark.parametrize(
    ("mutate", "field", "message"),
    [
        (
            lambda d: d.pop("model_fn"),
            "model_fn",
            (
                "required field is missing: set model_fn (a function returning a tf.estimator.EstimatorSpec) or "
                "estimator (a function of model_dir and config returning a tf.estimator.Estimator)"
            ),
        ),
        (lambda d: d.update(surprise=1), "surprise", "unknown field"),
        (lambda d: d["evaluation"].update(stepz=3), "evaluation.stepz", "unknown field"),
        (lambda d: d["evaluation"].update(steps="ten"), "evaluation.steps", "expected an integer, got 'ten'"),
        (lambda d: d["evaluation"].update(steps=0), "evaluation.steps", "positive"),
        (lambda d: d.update(model_fn="examples/model.py"), "model_fn", "is not an import path"),
        (lambda d: d["discovery"].update(policy="newest"), "discovery.policy", "expected one of"),
        (lambda d: d.update(strategies=[]), "strategies", "at least one export strategy"),
        (lambda d: d["strategies"].append(dict(d["strategies"][0])), "strategies[1].name", "duplicate"),
        (
            lambda d: d["strategies"].append({"name": "other", "kind": "all_modes"}),
            "strategies[1].servable",
            "would both publish",
        ),
        (lambda d: d["strategies"][0].update(name="../escape"), "strategies[0].name", "becomes a directory"),
        (lambda d: d.update(name="Bad Name"), "name", "lowercase"),
        (lambda d: d["evaluation"]["thresholds"][0].pop("lower"), "evaluation.thresholds[0]", "at least one of"),
        (lambda d: d["warmup"].pop("path"), "warmup.path", "needs a path"),
        (lambda d: d["destination"].update(keep=True), "destination.keep", "expected an integer"),
        (lambda d: d.update(receivers="x"), "receivers", "expected a mapping"),
        (
            lambda d: d.update(estimator="examples.canned:linear_regressor"),
            "estimator",
            "set either model_fn or estimator, not both",
        ),
        (
            lambda d: d.update(model_fn=None, estimator="examples.canned:linear_regressor"),
            "params",
            "params are passed to a model_fn, and estimator has none",
        ),
        (lambda d: d.update(model_fn=None, params={}, estimator="linear_regressor"), "estimator", "import path"),
    ],
)
def test_errors_name_file_field_and_expectation(tmp_path: Path, mutate, field: str, message: str) -> None:
    data = example()
    mutate(data)
    path = write_config(data, tmp_path / "model.yaml")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.source == str(path)
    assert info.value.field == field
    assert message in str(info.value)
    assert str(info.value).startswith(f"{path}: {field}: ")


def test_not_yaml_and_not_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write_config("name: [unclosed", tmp_path / "model.yaml"))
    with pytest.raises(ConfigError, match="expected a mapping of fields at the top level, got a list"):
        load_config(write_config("- a\n- b\n", tmp_path / "model.yaml"))
    with pytest.raises(ConfigError, match="cannot read the file"):
        load_config(tmp_path / "absent.yaml")


def test_a_broken_file_does_not_hide_the_good_ones(tmp_path: Path) -> None:
    write_config(example(), tmp_path / "good.yaml")
    write_config({"name": "broken"}, tmp_path / "broken.yaml")
    loaded = load_configs_dir(tmp_path)
    assert not isinstance(loaded[str(tmp_path / "good.yaml")], ConfigError)
    assert isinstance(loaded[str(tmp_path / "broken.yaml")], ConfigError)


def test_import_paths_resolve_lazily_and_fail_clearly() -> None:
    assert callable(ImportPath("examples.model:model_fn").resolve())
    with pytest.raises(ValueError, match="cannot import module 'examples.nope'"):
        ImportPath("examples.nope:model_fn").resolve()
    with pytest.raises(ValueError, match="has no attribute 'nope'"):
        ImportPath("examples.model:nope").resolve()


def test_an_estimator_factory_instead_of_a_model_fn(tmp_path: Path) -> None:
    from components.evaluation.digest import metrics_digest

    data = example()
    del data["model_fn"], data["params"]
    data["estimator"] = "examples.canned:linear_regressor"
    regressor = load_config(write_config(data, tmp_path / "model.yaml"))
    assert (regressor.model_fn, regressor.estimator) == (None, "examples.canned:linear_regressor")
    data["estimator"] = "examples.canned:linear_classifier"
    classifier = load_config(write_config(data, tmp_path / "model.yaml"))
    # Another model is another evaluation; a model_fn config keeps the digest it always had (key "model_fn").
    digests = {metrics_digest(c) for c in (regressor, classifier, load_config(EXAMPLE))}
    assert len(digests) == 3
