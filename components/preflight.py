"""Checks a config against the world before any work: code it names, places it reads and writes.

Loading a config checks its shape without I/O (the DAG factory loads configs at parse time). These
checks go further and are cheap (seconds, no TF graph is built): every import path resolves and each
function takes what it will be called with; the destination, the staging folder and the lease folder
take a write (a probe object written and deleted); the model_dir can be listed. ``exportflow validate``
prints them, and every run calls ``preflight`` before it pins any checkpoint, so a read-only destination
fails the run in seconds and is blamed on the destination instead of on a later stage.

Every problem is collected (not just the first) with the field, what is wrong and the fix.
"""

from __future__ import annotations

import dataclasses
import errno
import inspect
import os
import tempfile
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from components.config.schema import PipelineConfig
from components.errors import ExportflowError
from components.imports import ImportPath

#: Arguments tf.estimator passes to a model_fn that declares them (``features`` is required).
MODEL_FN_ARGS = frozenset({"features", "labels", "mode", "params", "config"})
#: Arguments the Estimator passes to an input_fn that declares them.
INPUT_FN_SUPPLIED = frozenset({"mode", "params", "config", "input_context"})
ESTIMATOR_HINT = (
    "a function that returns a tf.estimator.Estimator (a canned one such as LinearRegressor) goes under "
    "`estimator:` instead of `model_fn:`"
)


@dataclasses.dataclass(frozen=True)
class Problem:
    """One thing wrong with a config: the field, what is wrong, how to fix it."""

    field: str
    problem: str
    fix: str
    transient: bool = False  # a storage error a retry may not meet (network, 5xx)

    def __str__(self) -> str:
        return f"{self.field}: {self.problem}; fix: {self.fix}"


class PreflightError(ExportflowError):
    """Base of the preflight family."""


class PreflightFailed(PreflightError):
    """A config's code or storage is not usable; ``problems`` lists every one found."""

    def __init__(self, source: str, problems: Iterable[Problem]) -> None:
        self.source = source
        self.problems = tuple(problems)
        lines = "".join(f"\n  - {p}" for p in self.problems)
        super().__init__(f"{source}: {len(self.problems)} problem(s) found before any work:{lines}")

    @property
    def retryable(self) -> bool:  # type: ignore[override]
        return all(p.transient for p in self.problems)


def preflight(config: PipelineConfig, *, locations: bool = True) -> None:
    """Raise ``PreflightFailed`` listing every problem; nothing is left behind either way."""
    problems = find_problems(config, locations=locations)
    if problems:
        raise PreflightFailed(config.source, problems)


def find_problems(config: PipelineConfig, *, locations: bool = True) -> list[Problem]:
    """Every problem with the config's code and (with ``locations``) the files and folders it names."""
    problems = check_code(config)
    if locations:
        problems += check_locations(config)
    return problems


# --- code ---------------------------------------------------------------------------------------


def check_code(config: PipelineConfig) -> list[Problem]:
    problems: list[Problem] = []
    if config.model_fn is not None:
        problems += _check_model_fn(config)
    if config.estimator is not None:
        problems += _check_estimator(config)
    receivers = config.receivers
    for mode in ("predict", "train", "eval"):
        path = getattr(receivers, mode)
        if path is not None:
            problems += _check_receiver(f"receivers.{mode}", path)
    evaluation = config.evaluation
    if evaluation.input_fn is not None:
        problems += _check_input_fn(evaluation.input_fn, evaluation.input_fn_kwargs)
    problems += _check_strategies(config)
    return problems


def _resolve(field: str, path: ImportPath, problems: list[Problem]) -> Any:
    """The object, or None with a problem appended (missing module, missing attribute, import error)."""
    from components.imports import ImportPathError

    try:
        target = path.resolve()
    except ImportPathError as exc:
        problems.append(
            Problem(field, str(exc), "check the spelling, and that the package is installed or on PYTHONPATH")
        )
        return None
    except Exception as exc:  # noqa: BLE001 - the user's module raised while importing: a problem to report
        problems.append(
            Problem(
                field,
                f"importing {path} raised {type(exc).__name__}: {exc}",
                "fix the module so it imports cleanly",
            )
        )
        return None
    if not callable(target):
        problems.append(
            Problem(
                field, f"{path} is not a function (its type is {type(target).__name__})", "name a function"
            )
        )
        return None
    return target


def _parameters(fn: Callable[..., Any]) -> list[inspect.Parameter] | None:
    """The declared parameters (None when Python cannot tell, e.g. some builtins)."""
    try:
        return list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return None


def _named(parameters: list[inspect.Parameter]) -> list[inspect.Parameter]:
    return [p for p in parameters if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def _required(parameters: list[inspect.Parameter]) -> list[str]:
    return [p.name for p in _named(parameters) if p.default is inspect.Parameter.empty]


def _takes(parameters: list[inspect.Parameter]) -> str:
    return f"({', '.join(p.name for p in _named(parameters))})"


def _check_model_fn(config: PipelineConfig) -> list[Problem]:
    problems: list[Problem] = []
    fn = _resolve("model_fn", config.model_fn, problems)
    parameters = _parameters(fn) if fn is not None else None
    if parameters is None:
        return problems
    names = {p.name for p in _named(parameters)} - {"self"}
    if "features" not in names:
        problems.append(
            Problem(
                "model_fn",
                f"{config.model_fn} takes {_takes(parameters)}, but tf.estimator calls a model_fn with "
                "features, labels, mode (and params, config when declared) and needs features",
                f"make it model_fn(features, labels, mode, params, config) returning an EstimatorSpec; "
                f"{ESTIMATOR_HINT}",
            )
        )
        return problems
    unexpected = sorted(names - MODEL_FN_ARGS)
    if unexpected:
        problems.append(
            Problem(
                "model_fn",
                f"{config.model_fn} takes {unexpected}, which tf.estimator never passes "
                f"(it passes only {sorted(MODEL_FN_ARGS)})",
                "remove them, or read them from params",
            )
        )
    if config.params and "params" not in names:
        problems.append(
            Problem(
                "params",
                f"params are set but {config.model_fn} takes no params argument (tf.estimator refuses this)",
                "add a params argument to the model_fn, or remove params from the config",
            )
        )
    return problems


def _check_estimator(config: PipelineConfig) -> list[Problem]:
    problems: list[Problem] = []
    factory = _resolve("estimator", config.estimator, problems)
    parameters = _parameters(factory) if factory is not None else None
    if parameters is None:
        return problems
    names = {p.name for p in _named(parameters)}
    takes_any = any(p.kind == p.VAR_KEYWORD for p in parameters)
    if "features" in names:
        problems.append(
            Problem(
                "estimator",
                f"{config.estimator} takes {_takes(parameters)}: it looks like a model_fn",
                "name it under `model_fn:`; `estimator:` is a function(model_dir, config) returning a "
                "tf.estimator.Estimator",
            )
        )
        return problems
    missing = [] if takes_any else [n for n in ("model_dir", "config") if n not in names]
    extra = [n for n in _required(parameters) if n not in ("model_dir", "config")]
    if missing or extra:
        wrong = f"does not accept {missing}" if missing else f"also requires {extra}"
        problems.append(
            Problem(
                "estimator",
                f"{config.estimator} takes {_takes(parameters)} and {wrong}; it is called as "
                "factory(model_dir=..., config=...)",
                "define it as def make_estimator(model_dir, config) and pass both to the Estimator",
            )
        )
        return problems
    problems += _try_estimator_factory(config)
    return problems


def _try_estimator_factory(config: PipelineConfig) -> list[Problem]:
    """Call the factory with a throw-away model_dir: building an Estimator builds no graph."""
    import tensorflow as tf

    from components.estimator import EstimatorFactoryError, call_estimator_factory

    with tempfile.TemporaryDirectory(prefix="exportflow-preflight-") as scratch:
        run_config = tf.estimator.RunConfig(model_dir=scratch, log_step_count_steps=None)
        try:
            call_estimator_factory(config, scratch, run_config)
        except EstimatorFactoryError as exc:
            return [Problem("estimator", exc.what, exc.fix)]
    return []


def _check_receiver(field: str, path: ImportPath) -> list[Problem]:
    problems: list[Problem] = []
    fn = _resolve(field, path, problems)
    parameters = _parameters(fn) if fn is not None else None
    if parameters is None:
        return problems
    required = _required(parameters)
    if required:
        problems.append(
            Problem(
                field,
                f"{path} requires arguments {required}, but a receiver function is called with none",
                "give them defaults, or bind them with functools.partial in your module",
            )
        )
    return problems


def _check_input_fn(path: ImportPath, kwargs: Mapping[str, Any]) -> list[Problem]:
    field = "evaluation.input_fn"
    problems: list[Problem] = []
    fn = _resolve(field, path, problems)
    parameters = _parameters(fn) if fn is not None else None
    if parameters is None:
        return problems
    names = {p.name for p in _named(parameters) if p.kind != p.POSITIONAL_ONLY}
    takes_any = any(p.kind == p.VAR_KEYWORD for p in parameters)
    unknown = [] if takes_any else sorted(set(kwargs) - names)
    if unknown:
        problems.append(
            Problem(
                "evaluation.input_fn_kwargs",
                f"{path} takes {_takes(parameters)} and has no argument {unknown}",
                f"remove {unknown} from input_fn_kwargs, or add them to the input_fn",
            )
        )
    missing = [n for n in _required(parameters) if n not in kwargs and n not in INPUT_FN_SUPPLIED]
    if missing:
        problems.append(
            Problem(
                "evaluation.input_fn_kwargs",
                f"{path} requires {missing}, which input_fn_kwargs does not give",
                f"add {missing} to evaluation.input_fn_kwargs",
            )
        )
    return problems


def _check_strategies(config: PipelineConfig) -> list[Problem]:
    """Each strategy built through the registry: its kind exists, its params parse, its imports resolve."""
    from components.export.errors import StrategyRegistryError, UnknownStrategyError
    from components.export.strategies.registry import create_strategy

    problems: list[Problem] = []
    for i, strategy in enumerate(config.strategies):
        try:
            built = create_strategy(strategy.kind, strategy.name, strategy.params)
        except (UnknownStrategyError, StrategyRegistryError) as exc:
            problems.append(Problem(f"strategies[{i}].kind", str(exc), "use one of the kinds listed"))
            continue
        except Exception as exc:  # noqa: BLE001 - bad params, a target that does not import, a plugin's error
            problems.append(
                Problem(
                    f"strategies[{i}].params",
                    f"{type(exc).__name__}: {exc}",
                    "correct the strategy's params (see components/export/strategies/options.py)",
                )
            )
            continue
        options = getattr(built, "options", None)
        compare_fn = getattr(options, "compare_fn", None)
        if compare_fn:
            try:
                _resolve(f"strategies[{i}].params.compare_fn", ImportPath(compare_fn), problems)
            except ValueError as exc:
                problems.append(
                    Problem(f"strategies[{i}].params.compare_fn", str(exc), "fix the import path")
                )
    return problems


def _check_source_files(config: PipelineConfig) -> list[Problem]:
    """Files the run copies in: the warmup source, and strategies' warmup files and extra assets."""

    problems: list[Problem] = []
    warmup = config.warmup
    if warmup.source != "none" and warmup.path:
        problems += _check_readable_file("warmup.path", warmup.path)
    for i, strategy in enumerate(config.strategies):
        params = strategy.params if isinstance(strategy.params, Mapping) else {}
        if params.get("warmup_file"):
            problems += _check_readable_file(
                f"strategies[{i}].params.warmup_file", str(params["warmup_file"])
            )
        assets = params.get("assets_extra")
        for key, source in assets.items() if isinstance(assets, Mapping) else ():
            problems += _check_readable_file(f"strategies[{i}].params.assets_extra.{key}", str(source))
    return problems


def _check_readable_file(field: str, path: str) -> list[Problem]:
    from components.storage import StorageError, TransientStorageError, scheme_of, storage_for

    if scheme_of(path) == "file":
        local = path.removeprefix("file://")
        try:
            with open(local, "rb") as handle:
                handle.read(1)
        except IsADirectoryError:
            return [Problem(field, f"{path} is a folder", "point it at a file")]
        except OSError as exc:
            return [
                Problem(
                    field, f"cannot read {path}: {exc.strerror}", "point it at an existing, readable file"
                )
            ]
        return []
    try:
        found = storage_for(path).stat(path)
    except StorageError as exc:
        transient = isinstance(exc, TransientStorageError)
        return [Problem(field, f"cannot read {path}: {exc}", "check the path and the credentials", transient)]
    if found is None:
        return [Problem(field, f"{path} does not exist", "point it at an existing object")]
    return []


# --- locations ----------------------------------------------------------------------------------


def check_locations(config: PipelineConfig) -> list[Problem]:
    """The model_dir can be listed, source files read; destination, staging and lease folders take a write."""
    from components.config.errors import ConfigError
    from components.discovery import lease
    from components.paths import state_dir
    from components.publish.executor import destination_storage

    model_dir_problems = _check_model_dir(config.model_dir)
    problems = model_dir_problems + _check_source_files(config)
    destination = config.destination.uri
    problems += _check_writable(
        "destination.uri",
        destination,
        lambda: destination_storage(config.destination),
        "give the job write access to it, or point destination.uri at a place it can write",
    )
    staging = state_dir(config)
    problems += _check_writable(
        "staging_dir",
        staging,
        None,
        f"exports are staged in {staging}: give the job write access, or set staging_dir to a writable folder",
    )
    try:
        leases, _ = lease.lease_settings(config)
    except ConfigError as exc:
        return [*problems, Problem(exc.field, exc.problem, "correct the field")]
    if model_dir_problems and leases.startswith(config.model_dir):
        return problems  # the lease folder is inside the model_dir, whose problem is already reported
    problems += _check_writable(
        "discovery.lease_dir",
        leases,
        None,
        f"checkpoints are pinned in {leases} while a run reads them: give the job write access there, or "
        "set discovery.lease_dir to a writable folder on the model_dir's filesystem or bucket",
    )
    return problems


def _check_model_dir(model_dir: str) -> list[Problem]:
    from components.storage import StorageError, TransientStorageError, scheme_of, storage_for

    field = "model_dir"
    if scheme_of(model_dir) == "file":
        local = model_dir.removeprefix("file://")
        if not os.path.exists(local):
            return [
                Problem(
                    field, f"{model_dir} does not exist", "point model_dir at the trainer's checkpoint folder"
                )
            ]
        if not os.path.isdir(local):
            return [
                Problem(
                    field,
                    f"{model_dir} is not a folder",
                    "point model_dir at the trainer's checkpoint folder",
                )
            ]
        try:
            with os.scandir(local) as entries:
                next(entries, None)
        except OSError as exc:
            return [
                Problem(
                    field,
                    f"cannot list {model_dir}: {exc.strerror}",
                    "give the job read access to the folder",
                )
            ]
        return []
    try:
        storage_for(model_dir).list_names(model_dir)
    except StorageError as exc:
        transient = isinstance(exc, TransientStorageError)
        return [
            Problem(
                field, f"cannot list {model_dir}: {exc}", "check the bucket and the credentials", transient
            )
        ]
    return []


def _check_writable(field: str, uri: str, storage_of: Callable[[], Any] | None, fix: str) -> list[Problem]:
    from components.storage import scheme_of

    if scheme_of(uri) == "file":
        return _check_local_writable(field, uri.removeprefix("file://"), fix)
    return _probe_object_store(field, uri, storage_of, fix)


def _check_local_writable(field: str, path: str, fix: str) -> list[Problem]:
    """Write and delete a probe in ``path``, or in its nearest existing ancestor when ``path`` does not exist
    yet (what a run would create there): nothing is left behind, not even a folder."""
    folder = os.path.abspath(path)
    while not os.path.lexists(folder):
        folder = os.path.dirname(folder)
    if not os.path.isdir(folder):
        return [Problem(field, f"{path} cannot be created: {folder} is a file, not a folder", fix)]
    probe = os.path.join(folder, f".exportflow-preflight-{uuid.uuid4().hex}")
    try:
        descriptor = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        where = path if folder == os.path.abspath(path) else f"{path} (its existing parent {folder})"
        reason = "read-only" if exc.errno in (errno.EROFS, errno.EPERM, errno.EACCES) else "not writable"
        return [Problem(field, f"{where} is {reason}: {exc.strerror}", fix)]
    os.close(descriptor)
    os.unlink(probe)
    return []


def _probe_object_store(
    field: str, uri: str, storage_of: Callable[[], Any] | None, fix: str
) -> list[Problem]:
    from components.storage import StorageError, TransientStorageError, storage_for

    try:
        store = storage_of() if storage_of is not None else storage_for(uri)
        probe = store.join(uri, f".exportflow-preflight-{uuid.uuid4().hex}")
        store.write_bytes(probe, b"exportflow preflight probe\n", if_generation_match=0)
        store.delete(probe)
    except StorageError as exc:
        transient = isinstance(exc, TransientStorageError)
        return [Problem(field, f"cannot write a probe object under {uri}: {exc}", fix, transient)]
    return []
