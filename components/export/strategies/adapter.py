"""Run a user's ``ExportStrategy(name, export_fn)`` or ``Exporter`` as a pipeline strategy.

Used by the built-in kind ``custom`` (param ``target``: import path of the object, or of a factory called
with ``target_kwargs``) and by the registry for entry points that name such objects. The user's code
gets a scratch ``export_path`` inside the staging folder, the pinned checkpoint and the evaluation
metrics (``eval_result``); for an Exporter, ``is_the_final_export`` follows the pipeline's definition of
final (see ``strategies/exporter_kinds.py``). Whatever folder it returns becomes the version folder (it must
be inside the scratch folder), and is then verified like every other export. ``None`` means it declined.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Mapping
from typing import Any

from components.estimator import build_estimator
from components.export.compat.export_strategy import ExportStrategy
from components.export.compat.exporters import Exporter
from components.export.errors import ExportError, StrategyConfigError
from components.export.savedmodel.versions import Written, written_from_folder
from components.export.strategies.base import Decision, OptionsStrategy, StrategyContext
from components.export.strategies.exporter_kinds import is_final
from components.export.strategies.options import AdapterOptions
from components.imports import ImportPath
from components.version_folders import temp_dir_name

log = logging.getLogger(__name__)
Adaptable = ExportStrategy | Exporter


def is_adaptable(target: Any) -> bool:
    return isinstance(target, (ExportStrategy, Exporter))


class ExportStrategyAdapter(OptionsStrategy):
    """A pipeline strategy around an ``ExportStrategy`` or an ``Exporter``."""

    options_class = AdapterOptions

    def __init__(self, name: str, params: Mapping[str, Any], target: Adaptable | None = None) -> None:
        super().__init__(name, params)
        options: AdapterOptions = self.options
        if target is None:
            if not options.target:
                raise StrategyConfigError(
                    f"strategy {name!r}: kind 'custom' needs params.target, the import path of an "
                    "ExportStrategy, an Exporter or a factory of one (e.g. 'mypkg.export:latest')"
                )
            target = ImportPath(options.target).resolve()
            if not is_adaptable(target) and callable(target):
                try:
                    target = target(**options.target_kwargs)
                except Exception as exc:  # the user's factory; its error is the config's fault
                    raise StrategyConfigError(
                        f"strategy {name!r}: factory {options.target} failed with target_kwargs "
                        f"{options.target_kwargs}: {type(exc).__name__}: {exc}"
                    ) from exc
        elif options.target:
            raise StrategyConfigError(
                f"strategy {name!r}: params.target is not allowed for a registered kind"
            )
        if not is_adaptable(target):
            raise StrategyConfigError(
                f"strategy {name!r}: {type(target).__name__} {target!r} is neither an ExportStrategy nor an Exporter"
            )
        self.target = target
        if target.name != name:
            log.info("strategy %r runs %s %r", name, type(target).__name__, target.name)

    def decide(self, ctx: StrategyContext) -> Decision:
        return Decision(True, f"{type(self.target).__name__} {self.target.name!r} decides while exporting")

    def write(self, ctx: StrategyContext, export_dir: str, model: Any = None) -> Written:
        # ``model``: what the target exports instead of the config's Estimator (a Keras model)
        estimator = model if model is not None else build_estimator(ctx.config, ctx.work_dir)
        scratch = os.path.join(os.path.dirname(export_dir), temp_dir_name(f"{ctx.version or 'export'}-work"))
        shutil.rmtree(scratch, ignore_errors=True)
        os.makedirs(scratch)
        try:
            eval_result = dict(ctx.evaluation.metrics) or None
            if isinstance(self.target, ExportStrategy):
                path = self.target.export(estimator, scratch, ctx.checkpoint_path, eval_result)
            else:
                final, _ = is_final(ctx, self.options.max_steps)
                path = self.target.export(estimator, scratch, ctx.checkpoint_path, eval_result, final)
                if isinstance(path, bytes):
                    path = path.decode()
            if path is None:
                return Written(declined=f"{type(self.target).__name__} {self.target.name!r} exported nothing")
            source = os.path.realpath(os.fspath(path))
            root = os.path.realpath(scratch)
            if source != root and not source.startswith(root + os.sep):
                raise ExportError(
                    f"strategy {self.name!r}: {type(self.target).__name__} wrote {source}, outside the "
                    f"export_path it was given ({scratch}); it must export below export_path"
                )
            if not os.path.isdir(source):
                raise ExportError(
                    f"strategy {self.name!r}: {type(self.target).__name__} returned {source}, not a folder"
                )
            os.replace(source, export_dir)
            return written_from_folder(export_dir)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
