"""tf.estimator's exporter contract as a real ABC, and Final/Latest/Best exporters on our export path.

``Exporter.export(estimator, export_path, checkpoint_path, eval_result, is_the_final_export)`` returns
the path it exported to, or ``None`` when it decided not to export. Ours write one serving SavedModel
(tag ``serve``) at ``<export_path>/<global step>/`` through a verified temp folder, and apply
``exports_to_keep`` with the shared retention helper (which also removes crashed temp folders).

**Final.** ``is_the_final_export`` is the caller's statement that this is training's last checkpoint. In
the exportflow pipeline it is true when training said so (the training DAG's asset event carried
``final: true`` for the step, recorded as ``CheckpointArtifact.final``) or when the checkpoint's step
reached the ``final`` strategy's configured ``max_steps``.

**Best.** ``BestExporter`` keeps the best evaluation so far; give it ``best_so_far`` (the pipeline reads
it from the ledger) and a restart can never export a worse model, while the very first call exports.
"""

from __future__ import annotations

import abc
import functools
import inspect
import logging
import os
from collections.abc import Callable, Mapping
from typing import Any

from components.export.compat.export_all_saved_models import write_all_modes
from components.export.errors import ExportContractError
from components.export.savedmodel.assets import normalize_assets_extra
from components.export.savedmodel.folder_names import validate_name
from components.export.savedmodel.mode_graphs import estimator_model_fn
from components.export.savedmodel.verify import VerifyDepth
from components.export.savedmodel.versions import (
    VersionScheme,
    Written,
    choose_version,
    latest_checkpoint_or_fail,
    write_version,
)
from components.ranking import RankingRule
from components.version_folders import prune_export_versions

log = logging.getLogger(__name__)
EvalResult = Mapping[str, Any]


class Exporter(abc.ABC):
    """Decides whether to export a checkpoint and exports it; ``name`` names its export folder."""

    @property
    @abc.abstractmethod
    def name(self) -> str:
        """Directory name of this exporter's exports."""

    @abc.abstractmethod
    def export(
        self,
        estimator: Any,
        export_path: str,
        checkpoint_path: str | None,
        eval_result: EvalResult | None,
        is_the_final_export: bool,
    ) -> str | None:
        """Export into ``export_path`` and return the path written, or ``None`` when skipped."""


def loss_smaller(best_eval_result: EvalResult, current_eval_result: EvalResult) -> bool:
    """tf.estimator's default compare_fn: the current evaluation has the lower ``loss``."""
    key = "loss"
    if not best_eval_result or key not in best_eval_result:
        raise ValueError("best_eval_result cannot be empty or lack a 'loss'")
    if not current_eval_result or key not in current_eval_result:
        raise ValueError("current_eval_result cannot be empty or lack a 'loss'")
    return current_eval_result[key] < best_eval_result[key]


def metric_compare_fn(metric: str, direction: str = "lower_is_better") -> Callable[..., bool]:
    """A compare_fn on one metric: ``lower_is_better`` or ``higher_is_better`` (``components.ranking``'s)."""
    if direction not in ("lower_is_better", "higher_is_better"):
        raise ExportContractError(
            f"direction must be 'lower_is_better' or 'higher_is_better', got {direction!r}"
        )
    return RankingRule(metric, direction).compare_fn()  # type: ignore[arg-type]


def _check_exports_to_keep(exports_to_keep: Any) -> int | None:
    if exports_to_keep is None:
        return None
    if isinstance(exports_to_keep, bool) or not isinstance(exports_to_keep, int) or exports_to_keep <= 0:
        raise ExportContractError(
            f"exports_to_keep, if given, must be a positive integer; got {exports_to_keep!r}"
        )
    return exports_to_keep


def _check_compare_fn(compare_fn: Any) -> Callable[..., bool]:
    if not callable(compare_fn):
        raise ExportContractError(f"compare_fn must be callable, got {compare_fn!r}")
    params = inspect.signature(compare_fn).parameters
    missing = [p for p in ("best_eval_result", "current_eval_result") if p not in params]
    if missing:
        raise ExportContractError(
            f"compare_fn {getattr(compare_fn, '__name__', compare_fn)!r} must take the arguments "
            f"best_eval_result and current_eval_result (missing {missing})"
        )
    return compare_fn


class ServingExporter(Exporter):
    """Shared machinery: one serving SavedModel per exported checkpoint, versioned by global step."""

    def __init__(
        self,
        name: str,
        serving_input_receiver_fn: Callable[[], Any],
        assets_extra: Mapping[str, str] | None = None,
        as_text: bool = False,
        *,
        exports_to_keep: int | None = None,
        by_reference: bool = False,
        strip_default_attrs: bool = True,
        verify: VerifyDepth = "full",
        version_scheme: VersionScheme = "step",
    ) -> None:
        self._name = validate_name(name, f"{type(self).__name__} name")
        if not callable(serving_input_receiver_fn):
            raise ExportContractError(
                f"{type(self).__name__} {name!r}: serving_input_receiver_fn must be a function, got "
                f"{serving_input_receiver_fn!r}"
            )
        self.serving_input_receiver_fn = serving_input_receiver_fn
        self.assets_extra = normalize_assets_extra(assets_extra)
        self.as_text = bool(as_text)
        self.exports_to_keep = _check_exports_to_keep(exports_to_keep)
        self.by_reference = bool(by_reference)
        self.strip_default_attrs = bool(strip_default_attrs)
        self.verify = verify
        self.version_scheme = version_scheme

    @property
    def name(self) -> str:
        return self._name

    def write_into(
        self, estimator: Any, out_dir: str, checkpoint_path: str, call_model_fn: Any = None
    ) -> Written:
        """Write the serving SavedModel of ``checkpoint_path`` into ``out_dir`` (no versioning)."""
        import tensorflow as tf

        return write_all_modes(
            call_model_fn or estimator_model_fn(estimator),
            out_dir,
            {tf.estimator.ModeKeys.PREDICT: self.serving_input_receiver_fn},
            checkpoint_path,
            assets_extra=self.assets_extra,
            as_text=self.as_text,
            strip_default_attrs=self.strip_default_attrs,
            by_reference=self.by_reference,
            seed=getattr(estimator.config, "tf_random_seed", None) if estimator is not None else None,
        )

    def _export_now(self, estimator: Any, export_path: str, checkpoint_path: str | None) -> str:
        checkpoint = latest_checkpoint_or_fail(estimator, checkpoint_path)
        base = os.fspath(export_path)
        version = choose_version(base, checkpoint, scheme=self.version_scheme)
        outcome = write_version(
            base,
            version,
            functools.partial(self.write_into, estimator, checkpoint_path=checkpoint),
            verify=self.verify,
            label=self.name,
        )
        prune_export_versions(base, self.exports_to_keep, protect={version})
        return outcome.path


class FinalExporter(ServingExporter):
    """Exports only the final export (see the module docstring for what "final" means here)."""

    def __init__(
        self,
        name: str,
        serving_input_receiver_fn: Callable[[], Any],
        assets_extra: Mapping[str, str] | None = None,
        as_text: bool = False,
        **options: Any,
    ) -> None:
        super().__init__(name, serving_input_receiver_fn, assets_extra, as_text, **options)

    def export(self, estimator, export_path, checkpoint_path, eval_result, is_the_final_export):
        if not is_the_final_export:
            return None
        return self._export_now(estimator, export_path, checkpoint_path)


class LatestExporter(ServingExporter):
    """Exports every checkpoint it is given and keeps the newest ``exports_to_keep``."""

    def __init__(
        self,
        name: str,
        serving_input_receiver_fn: Callable[[], Any],
        assets_extra: Mapping[str, str] | None = None,
        as_text: bool = False,
        exports_to_keep: int | None = 5,
        **options: Any,
    ) -> None:
        super().__init__(
            name, serving_input_receiver_fn, assets_extra, as_text, exports_to_keep=exports_to_keep, **options
        )

    def export(self, estimator, export_path, checkpoint_path, eval_result, is_the_final_export):
        return self._export_now(estimator, export_path, checkpoint_path)


class BestExporter(ServingExporter):
    """Exports a checkpoint only when ``compare_fn`` finds it better than the best so far."""

    def __init__(
        self,
        name: str = "best_exporter",
        serving_input_receiver_fn: Callable[[], Any] | None = None,
        compare_fn: Callable[..., bool] = loss_smaller,
        assets_extra: Mapping[str, str] | None = None,
        as_text: bool = False,
        exports_to_keep: int | None = 5,
        *,
        best_so_far: Callable[[], EvalResult | None] | None = None,
        **options: Any,
    ) -> None:
        super().__init__(
            name, serving_input_receiver_fn, assets_extra, as_text, exports_to_keep=exports_to_keep, **options
        )
        self.compare_fn = _check_compare_fn(compare_fn)
        if best_so_far is not None and not callable(best_so_far):
            raise ExportContractError(
                f"best_so_far must be a function returning an eval result or None, got {best_so_far!r}"
            )
        self._best_so_far = best_so_far
        self._best_eval_result: EvalResult | None = None

    def best_eval_result(self) -> EvalResult | None:
        """The best evaluation known: from ``best_so_far`` (e.g. the ledger) and this process's exports."""
        known = [
            r for r in ((self._best_so_far() if self._best_so_far else None), self._best_eval_result) if r
        ]
        best = None
        for result in known:
            if best is None or self.compare_fn(best_eval_result=best, current_eval_result=result):
                best = result
        return best

    def is_better(self, eval_result: EvalResult | None) -> tuple[bool, str]:
        """Whether ``eval_result`` beats the best so far, and why (the first evaluation always does)."""
        if not eval_result:
            raise ExportContractError(
                f"BestExporter {self.name!r} needs the checkpoint's eval_result to compare"
            )
        best = self.best_eval_result()
        if best is None:
            return True, "no earlier export to compare with"
        if self.compare_fn(best_eval_result=best, current_eval_result=eval_result):
            return (
                True,
                f"better than the best so far by {getattr(self.compare_fn, '__name__', 'compare_fn')}",
            )
        return (
            False,
            f"not better than the best so far ({_brief(best)}) by {getattr(self.compare_fn, '__name__', 'compare_fn')}",
        )

    def export(self, estimator, export_path, checkpoint_path, eval_result, is_the_final_export):
        better, reason = self.is_better(eval_result)
        if not better:
            log.info("%s: not exporting %s: %s", self.name, checkpoint_path, reason)
            return None
        path = self._export_now(estimator, export_path, checkpoint_path)
        self._best_eval_result = dict(eval_result)
        return path


def _brief(result: EvalResult) -> str:
    return ", ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(result.items())[:4]
    )
