"""Checks of the code a config names: every import path resolves, each function takes what it is called with.

Signatures are read with ``inspect``; nothing is called except an ``estimator`` factory, whose Estimator
is built in a throw-away folder (building an Estimator builds no graph).
"""

from __future__ import annotations

import inspect
import tempfile
from collections.abc import Callable, Mapping
from typing import Any

from components.config.schema import PipelineConfig
from components.imports import ImportPath
from components.preflight.errors import Problem

#: Arguments tf.estimator passes to a model_fn that declares them (``features`` is required).
MODEL_FN_ARGS = frozenset({"features", "labels", "mode", "params", "config"})
#: Arguments the Estimator passes to an input_fn that declares them.
INPUT_FN_SUPPLIED = frozenset({"mode", "params", "config", "input_context"})
ESTIMATOR_HINT = (
    "a function that returns a tf.estimator.Estimator (a canned one such as LinearRegressor) goes under "
    "`estimator:` instead of `model_fn:`"
)


def check_code(config: PipelineConfig) -> list[Problem]:
    """The model (model_fn or estimator), receivers, eval input_fn and strategies, each checked."""
    problems: list[Problem] = []
    if config.model_fn is not None:
        problems += _check_model_fn(config)
    if config.estimator is not None:
        problems += _check_estimator(config)
    if config.keras is not None and config.keras.builder is not None:
        _resolve("keras.builder", config.keras.builder, problems)  # called in the Keras runtime only
    receivers = config.receivers
    for mode in ("predict", "train", "eval"):
        path = getattr(receivers, mode) if receivers is not None else None
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
