"""Load and validate model configs: YAML → typed dataclasses, with errors that name the field.

Validation is driven by the dataclass annotations in ``schema.py`` so the reference and the checks
cannot drift apart. Unknown keys are errors (a typo must not silently fall back to a default).
Relative paths in path fields resolve against the config file's folder; ``${config_dir}`` in any
string is replaced by that folder. Nothing here touches the model directory or the destination:
loading a config does no I/O beyond reading the file itself (the DAG factory calls it at parse time).
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Any

import yaml

from components.config.errors import ConfigError
from components.config.schema import (
    DEFAULT_KERAS_ENV,
    KERAS_PYTHON_ENV,
    MAX_WARMUP_RECORDS,
    PipelineConfig,
)
from components.decoding import LIST, MAPPING, DecodeError, decode
from components.imports import ImportPath
from components.layout import ENTRY_GRAPH

# libyaml's C parser: DAG parsing loads every config on every dag-processor loop.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_NAME = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,62}$")
_PATH_FIELDS = {
    "model_dir", "destination.uri", "destination.credentials_path", "warmup.path", "staging_dir",
    "staging", "scratch_dir", "serving.config_path",
}


def load_config(path: str | os.PathLike[str]) -> PipelineConfig:
    """Read one YAML config file and validate it."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(source, "", f"cannot read the file: {exc.strerror or exc}") from exc
    try:
        data = yaml.load(text, Loader=_YAML_LOADER)
    except yaml.YAMLError as exc:
        raise ConfigError(source, "", f"not valid YAML: {exc}") from exc
    config = parse_config(data, source=source, base_dir=Path(path).resolve().parent)
    return dataclasses.replace(config, source_text=text)


def load_configs_dir(folder: str | os.PathLike[str]) -> dict[str, PipelineConfig | ConfigError]:
    """Every ``*.yaml``/``*.yml`` in ``folder`` by file path; a broken file maps to its error."""
    results: dict[str, PipelineConfig | ConfigError] = {}
    for path in sorted(Path(folder).glob("*.y*ml")):
        try:
            results[str(path)] = load_config(path)
        except ConfigError as exc:
            results[str(path)] = exc
    return results


def parse_config(data: Any, *, source: str = "<memory>", base_dir: Path | None = None) -> PipelineConfig:
    """Validate already-parsed YAML/JSON data."""
    base = (base_dir or Path.cwd()).resolve()
    if not isinstance(data, dict):
        raise ConfigError(source, "", f"expected a mapping of fields at the top level, got {_kind(data)}")
    data = _substitute(data, str(base))
    if data.get("framework") == "keras":
        data = _keras_runtime_defaults(data, source)
    config = _build(PipelineConfig, data, "", source, base, skip={"source", "source_text"})
    config = dataclasses.replace(config, source=source)
    _check_semantics(config)
    return config


def _build(cls: type, data: Any, prefix: str, source: str, base: Path, skip: set[str] = frozenset()) -> Any:
    """``data`` as ``cls`` by ``components.decoding``'s rule, plus the config's own: strings are not
    empty, path fields resolve against ``base``; errors name the file and the field."""

    def check(path: str, tp: Any, value: Any) -> Any:
        if tp is str and value == "":
            raise DecodeError(path, value, expected="a non-empty string", annotation=tp)
        if path in _PATH_FIELDS and isinstance(value, str):
            return _resolve_path(value, base)
        return value

    try:
        return decode(cls, data, path=prefix, converters={ImportPath: ImportPath}, check=check, skip=frozenset(skip))
    except DecodeError as exc:
        raise _config_error(source, exc) from exc


def _config_error(source: str, exc: DecodeError) -> ConfigError:
    if exc.unknown:
        return ConfigError(source, _join(exc.path, exc.unknown[0]), f"unknown field; expected one of {list(exc.known)}")
    if exc.missing is not None:
        return ConfigError(source, exc.path, "required field is missing")
    if exc.expected in (LIST, MAPPING):
        return ConfigError(source, exc.path, f"expected {exc.expected}, got {_kind(exc.value)}")
    if exc.annotation is str:
        return ConfigError(source, exc.path, f"expected a non-empty string, got {exc.value!r}")
    return ConfigError(source, exc.path, exc.problem)


def _check_semantics(config: PipelineConfig) -> None:
    source = config.source
    if not _NAME.match(config.name):
        raise ConfigError(
            source, "name", f"{config.name!r} must be lowercase letters, digits, '_' or '-' (at most 63)"
        )
    _check_model(config)
    if not config.strategies:
        raise ConfigError(source, "strategies", "at least one export strategy is required")
    seen: set[str] = set()
    servables: dict[str, str] = {}
    for i, strategy in enumerate(config.strategies):
        if not _NAME.match(strategy.name):
            raise ConfigError(
                source,
                f"strategies[{i}].name",
                f"{strategy.name!r} becomes a directory and a task id: use lowercase letters, digits, '_' or '-'",
            )
        if strategy.name in seen:
            raise ConfigError(source, f"strategies[{i}].name", f"duplicate strategy name {strategy.name!r}")
        seen.add(strategy.name)
        servable = strategy.servable or config.name
        if not _NAME.match(servable):
            raise ConfigError(source, f"strategies[{i}].servable", f"{servable!r} is not a valid folder name")
        if servable in servables:
            raise ConfigError(
                source,
                f"strategies[{i}].servable",
                f"strategies {servables[servable]!r} and {strategy.name!r} would both publish to "
                f"<destination>/{servable}/; give one of them its own servable name",
            )
        servables[servable] = strategy.name
    evaluation = config.evaluation
    if evaluation.source == "evaluate" and evaluation.input_fn is None and evaluation.thresholds:
        raise ConfigError(
            source, "evaluation.input_fn", "thresholds need metrics: set input_fn, or source: logged"
        )
    if evaluation.steps is not None and evaluation.steps <= 0:
        raise ConfigError(source, "evaluation.steps", f"expected a positive integer, got {evaluation.steps}")
    for i, threshold in enumerate(evaluation.thresholds):
        if threshold.lower is None and threshold.upper is None and threshold.change is None:
            raise ConfigError(
                source, f"evaluation.thresholds[{i}]", "set at least one of lower, upper or change"
            )
    discovery = config.discovery
    if discovery.policy == "every_nth" and not discovery.every_n_steps:
        raise ConfigError(source, "discovery.every_n_steps", "policy every_nth needs a positive every_n_steps")
    if discovery.max_per_run <= 0:
        raise ConfigError(source, "discovery.max_per_run", "expected a positive integer")
    _check_warmup(config)
    _check_airflow(config)
    _check_serving(config)
    if config.destination.keep <= 0:
        raise ConfigError(source, "destination.keep", "expected a positive integer")
    if config.staging is not None and config.staging_dir is not None:
        raise ConfigError(
            source, "staging_dir", "set staging (a URI) or its old spelling staging_dir (a local folder), not both"
        )
    if config.staging is not None:
        _check_scheme(source, "staging", config.staging)


def _check_scheme(source: str, field: str, uri: str) -> None:
    """A URI whose scheme has a storage back-end (built in, or from the exportflow.storage entry points)."""
    from importlib.metadata import entry_points

    from components.storage.registry import ENTRY_POINT_GROUP, scheme_of

    known = {"file", "gs", *(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))}
    if scheme_of(uri) not in known:
        raise ConfigError(
            source, field, f"no storage back-end for scheme {scheme_of(uri)!r} in {uri!r}; known schemes: {sorted(known)}"
        )


def _check_ranged_reads(source: str, model_dir: str) -> None:
    """Keras checkpoints are judged by a few bytes of each new file (``Storage.read_range``): local disk
    and gs:// have it; a storage plug-in must implement it too."""
    from importlib.metadata import entry_points

    from components.storage.registry import ENTRY_POINT_GROUP, scheme_of

    _check_scheme(source, "model_dir", model_dir)
    scheme = scheme_of(model_dir)
    if scheme in ("file", "gs"):
        return
    plugin = next((ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == scheme), None)
    if plugin is not None and not callable(getattr(plugin.load(), "read_range", None)):
        raise ConfigError(
            source,
            "model_dir",
            f"{model_dir}: a Keras model's checkpoint files are judged whole by a ranged read of their first or "
            f"last bytes, and the {scheme}:// storage back-end ({plugin.value}) has no read_range; implement "
            "it, or put model_dir on local disk or gs://",
        )


def keras_python() -> str:
    """Where a Keras model's stages run by default: $EXPORTFLOW_KERAS_PYTHON, else the project's Keras runtime."""
    return os.environ.get(KERAS_PYTHON_ENV) or os.path.join(DEFAULT_KERAS_ENV, "bin", "python")


def _keras_runtime_defaults(data: dict[str, Any], source: str) -> dict[str, Any]:
    """A Keras model runs its stages in the Keras runtime: ``airflow.runtime`` defaults to
    external_python there; in_process (the Airflow interpreter, TF 2.15) is refused."""
    airflow = data.get("airflow") if data.get("airflow") is not None else {}
    if not isinstance(airflow, dict):
        return data  # the decoder names the wrong type
    if airflow.get("runtime", "external_python") != "external_python":
        raise ConfigError(
            source,
            "airflow.runtime",
            f"{airflow['runtime']!r} runs the stages in Airflow's interpreter, which has the Estimator runtime "
            "(TF 2.15, no Keras 3); a framework: keras model needs runtime external_python (its default) "
            f"with airflow.python the Keras runtime's interpreter (default {keras_python()})",
        )
    airflow = {**airflow, "runtime": "external_python"}
    airflow.setdefault("python", keras_python())
    return {**data, "airflow": airflow}


# Strategy kinds that build tf.estimator graphs: nothing a Keras model can export.
ESTIMATOR_ONLY_KINDS = {
    "all_modes": "exports Estimator modes (train/eval/serve graphs) from a model_fn",
    "standalone": "is a Monolith exporter built on tf.estimator",
    "distributed": "is a Monolith exporter built on tf.estimator",
}


def _check_keras(config: PipelineConfig) -> None:
    """A Keras model: its own section, no Estimator fields, kinds and warmup it can use."""
    from components.config.checkpoint_pattern import FilePattern, PatternError

    source, keras = config.source, config.keras
    if keras is None:
        raise ConfigError(
            source,
            "keras",
            "required field is missing: framework keras needs a keras section, e.g. keras: {checkpoints: "
            "'ckpt-{epoch:03d}.weights.h5', builder: 'my_package.model:build_model'}",
        )
    for field in ("model_fn", "estimator", "receivers"):
        if getattr(config, field) is not None:
            raise ConfigError(
                source, field, f"a framework: keras model has no {field} (that is the Estimator contract); remove it"
            )
    if config.params:
        raise ConfigError(source, "params", "params go to a model_fn; for a Keras builder use keras.builder_kwargs")
    _check_ranged_reads(source, config.model_dir)
    try:
        pattern = FilePattern.parse(keras.checkpoints)
    except PatternError as exc:
        raise ConfigError(source, "keras.checkpoints", str(exc)) from exc
    if pattern.kind == "weights" and keras.builder is None:
        raise ConfigError(
            source,
            "keras.builder",
            f"required field is missing: checkpoints {keras.checkpoints!r} hold weights only, so name a "
            "function that builds and compiles the keras.Model (e.g. my_package.model:build_model), or "
            "save whole models (ModelCheckpoint with a .keras filepath)",
        )
    if pattern.kind == "model" and keras.builder is not None:
        raise ConfigError(
            source,
            "keras.builder",
            f"checkpoints {keras.checkpoints!r} are whole .keras models, loaded as saved; remove builder "
            "(or save weights only: a .weights.h5 pattern)",
        )
    if keras.builder_kwargs and keras.builder is None:
        raise ConfigError(source, "keras.builder_kwargs", "builder_kwargs need a builder")
    names: set[str] = set()
    for i, endpoint in enumerate(keras.endpoints):
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", endpoint.name) or endpoint.name == "serving_default":
            raise ConfigError(
                source,
                f"keras.endpoints[{i}].name",
                f"{endpoint.name!r} must be an identifier other than serving_default (the first endpoint "
                "gets that alias)",
            )
        if endpoint.name in names:
            raise ConfigError(source, f"keras.endpoints[{i}].name", f"duplicate endpoint name {endpoint.name!r}")
        names.add(endpoint.name)
        for input_name, spec in endpoint.input_signature.items():
            if spec.dtype not in _TF_DTYPES:
                raise ConfigError(
                    source,
                    f"keras.endpoints[{i}].input_signature.{input_name}.dtype",
                    f"{spec.dtype!r} is not a dtype; use one of {sorted(_TF_DTYPES)}",
                )
    for i, strategy in enumerate(config.strategies):
        if strategy.kind in ESTIMATOR_ONLY_KINDS:
            raise ConfigError(
                source,
                f"strategies[{i}].kind",
                f"kind {strategy.kind!r} {ESTIMATOR_ONLY_KINDS[strategy.kind]}, which a framework: keras model "
                "does not have; use latest, best, final or custom",
            )
    if config.evaluation.source == "logged":
        raise ConfigError(
            source, "evaluation.source", "logged reads an Estimator's eval event files; a Keras model is evaluated "
            "with model.evaluate on evaluation.input_fn (source: evaluate)"
        )
    if config.warmup.source == "examples":
        raise ConfigError(
            source,
            "warmup.source",
            "examples builds tf.Example requests for an Estimator's parsing receiver; a Keras endpoint takes "
            "raw tensors: use source json (TF Serving REST instances) or file",
        )


_TF_DTYPES = {
    "float16", "bfloat16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "uint16",
    "uint32", "uint64", "bool", "string",
}


def _check_model(config: PipelineConfig) -> None:
    """Exactly one of ``model_fn`` and ``estimator``; ``params`` only go to a model_fn. Keras: ``keras``."""
    source = config.source
    if config.framework == "keras":
        _check_keras(config)
        return
    if config.keras is not None:
        raise ConfigError(source, "keras", "the keras section is for framework: keras; set it, or remove the section")
    if config.receivers is None:
        raise ConfigError(
            source,
            "receivers",
            "required field is missing: an Estimator export needs receivers.predict (a serving_input_receiver_fn)",
        )
    if config.model_fn is None and config.estimator is None:
        raise ConfigError(
            source,
            "model_fn",
            "required field is missing: set model_fn (a function returning a tf.estimator.EstimatorSpec) "
            "or estimator (a function of model_dir and config returning a tf.estimator.Estimator)",
        )
    if config.model_fn is not None and config.estimator is not None:
        raise ConfigError(
            source,
            "estimator",
            "set either model_fn or estimator, not both: estimator builds the whole Estimator, "
            "model_fn only its model",
        )
    if config.estimator is not None and config.params:
        raise ConfigError(
            source,
            "params",
            "params are passed to a model_fn, and estimator has none: set the estimator's options inside "
            "the factory (or bind them with functools.partial) and remove params",
        )


def _check_warmup(config: PipelineConfig) -> None:
    source, warmup = config.source, config.warmup
    if warmup.source != "none" and not warmup.path:
        raise ConfigError(source, "warmup.path", f"warmup source {warmup.source!r} needs a path")
    if warmup.num_records <= 0:
        raise ConfigError(source, "warmup.num_records", "expected a positive integer")
    if warmup.num_records > MAX_WARMUP_RECORDS and not warmup.truncate:
        raise ConfigError(
            source,
            "warmup.num_records",
            f"{warmup.num_records} is more than TF Serving's {MAX_WARMUP_RECORDS} warmup records (the "
            "model would fail to load); lower it, or set warmup.truncate: true to keep the first "
            f"{MAX_WARMUP_RECORDS}",
        )
    if warmup.heads and (len(warmup.heads) < 2 or len(set(warmup.heads)) != len(warmup.heads)):
        raise ConfigError(
            source,
            "warmup.heads",
            "expected two or more distinct signature names for MultiInference, got "
            f"{list(warmup.heads)}; for one signature set warmup.signature instead",
        )
    for name, signature in warmup.graphs.items():
        if not isinstance(name, str) or not name or name == ENTRY_GRAPH:
            raise ConfigError(
                source, "warmup.graphs", f"{name!r}: name another graph of the export (entry is always warm)"
            )
        if not isinstance(signature, str) or not signature:
            raise ConfigError(
                source, f"warmup.graphs.{name}", f"expected a signature name, got {signature!r}"
            )
    if warmup.source == "file" and (warmup.heads or warmup.graphs):
        field = "warmup.heads" if warmup.heads else "warmup.graphs"
        raise ConfigError(
            source, field, "a warmup file is copied as it is; heads and graphs need source examples or json"
        )


def _substitute(value: Any, config_dir: str) -> Any:
    if isinstance(value, str):
        return value.replace("${config_dir}", config_dir)
    if isinstance(value, list):
        return [_substitute(v, config_dir) for v in value]
    if isinstance(value, dict):
        return {k: _substitute(v, config_dir) for k, v in value.items()}
    return value


def _resolve_path(value: str, base: Path) -> str:
    if "://" in value:
        return value
    return str((base / value).resolve()) if not os.path.isabs(value) else os.path.normpath(value)


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _kind(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", type(None): "nothing"}.get(
        type(value), type(value).__name__
    )


_PRESETS = {"@once", "@continuous", "@hourly", "@daily", "@weekly", "@monthly", "@quarterly", "@yearly"}
_CRON_FIELD = re.compile(r"^[0-9A-Za-z*,/\-?LW#]+$")


_LABEL = re.compile(r"^[a-z][a-z0-9_\-]{0,62}$")


def _check_serving(config: PipelineConfig) -> None:
    source, serving = config.source, config.serving
    if serving.publish_label is not None and not _LABEL.match(serving.publish_label):
        raise ConfigError(
            source, "serving.publish_label", f"{serving.publish_label!r} must be a lowercase label name such as canary"
        )
    if serving.label_wait_seconds < 0:
        raise ConfigError(source, "serving.label_wait_seconds", "expected zero or a positive number of seconds")
    if serving.status_url is not None and not re.match(r"^https?://[^/\s]+", serving.status_url):
        raise ConfigError(
            source, "serving.status_url", f"{serving.status_url!r} must be TF Serving's REST address, e.g. http://host:8501"
        )
    if serving.config_path is not None:
        _check_scheme(source, "serving.config_path", serving.config_path)
    if serving.mode == "latest" and (serving.publish_label is not None or serving.approval):
        field = "serving.publish_label" if serving.publish_label is not None else "serving.approval"
        raise ConfigError(source, field, "labels need serving.mode: labels (mode latest serves the highest version)")


def _check_airflow(config: PipelineConfig) -> None:
    source, airflow = config.source, config.airflow
    schedule = airflow.schedule
    if schedule is not None and schedule != "asset" and schedule not in _PRESETS:
        fields = schedule.split()
        if len(fields) not in (5, 6) or not all(_CRON_FIELD.match(f) for f in fields):
            raise ConfigError(
                source,
                "airflow.schedule",
                f"{schedule!r} is not a cron expression (e.g. '0 */6 * * *'), a preset "
                f"({', '.join(sorted(_PRESETS))}), 'asset' or null",
            )
    for name in ("retries", "retry_delay_seconds"):
        if getattr(airflow, name) < 0:
            raise ConfigError(source, f"airflow.{name}", "expected zero or a positive integer")
    for name in ("max_active_runs", "max_active_tf_tasks"):
        if getattr(airflow, name) <= 0:
            raise ConfigError(source, f"airflow.{name}", "expected a positive integer")
    for field in dataclasses.fields(airflow.timeouts):
        if getattr(airflow.timeouts, field.name) <= 0:
            raise ConfigError(source, f"airflow.timeouts.{field.name}", "expected a positive number of minutes")
    if airflow.wait_for_checkpoint_minutes is not None and airflow.wait_for_checkpoint_minutes <= 0:
        raise ConfigError(source, "airflow.wait_for_checkpoint_minutes", "expected a positive number of minutes or null")
    if airflow.wait_poll_seconds <= 0:
        raise ConfigError(source, "airflow.wait_poll_seconds", "expected a positive number of seconds")
    if airflow.runtime == "external_python" and not airflow.python:
        raise ConfigError(
            source, "airflow.python", "runtime external_python needs the interpreter path, e.g. /opt/venv/bin/python"
        )
