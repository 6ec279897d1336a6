"""All-modes export (``export_all_saved_models``): TRAIN / EVAL / PREDICT graphs of one checkpoint.

Two layouts:

* ``combined`` (tf.estimator's behaviour): one SavedModel with one MetaGraph per mode, tags
  ``train`` / ``eval`` / ``serve``, variables saved once (with the first mode in the order TRAIN,
  EVAL, PREDICT), at ``<base>/<version>/``.
* ``per_mode``: one single-MetaGraph SavedModel per mode at ``<base>/<mode>/<version>/`` (``train``,
  ``eval``, ``predict``), all sharing one version name — for loaders that cannot pass tags
  (tensorflow/tensorflow#37068) and for serving the predict graph alone. Variables are saved once and
  hard-linked into the other modes' folders.

Versions are the checkpoint's global step by default. Every export is verified before it appears.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from typing import Any, Literal

from components.export.errors import EstimatorSpecError, ReceiverMismatchError
from components.export.savedmodel.assets import copy_assets_extra, normalize_assets_extra
from components.export.savedmodel.estimator_spec import mode_label
from components.export.savedmodel.mode_graphs import (
    ModelFnCall,
    build_mode_graph,
    estimator_model_fn,
    write_saved_model,
)
from components.export.savedmodel.verify import VerifyDepth, write_set_manifest
from components.export.savedmodel.versions import (
    VersionScheme,
    Written,
    choose_version,
    latest_checkpoint_or_fail,
    write_set_version,
    write_version,
)
from components.layout import VARIABLES_PREFIX, local_path

log = logging.getLogger(__name__)
Layout = Literal["combined", "per_mode"]
#: Folder of each mode in the per_mode layout.
MODE_FOLDERS = {"train": "train", "eval": "eval", "infer": "predict"}
_ORDER = ("train", "eval", "infer")


def validate_receiver_map(input_receiver_fn_map: Mapping[str, Any]) -> list[str]:
    """The modes to export in tf.estimator's order; ``ValueError`` for an empty map, None or unknown modes."""
    if not isinstance(input_receiver_fn_map, Mapping) or not input_receiver_fn_map:
        raise EstimatorSpecError(
            f"no modes to export (got {input_receiver_fn_map!r}); map tf.estimator.ModeKeys to receiver "
            "functions, e.g. {ModeKeys.PREDICT: serving_input_receiver_fn}"
        )
    unknown = sorted(set(input_receiver_fn_map) - set(_ORDER))
    if unknown:
        raise EstimatorSpecError(
            f"unknown modes {unknown} in input_receiver_fn_map; use tf.estimator.ModeKeys"
        )
    for mode, receiver in input_receiver_fn_map.items():
        if receiver is None:
            raise ReceiverMismatchError(
                f"the input receiver for mode {mode_label(mode)} is None; give a function"
            )
        if not callable(receiver):
            raise ReceiverMismatchError(
                f"the input receiver for mode {mode_label(mode)} is {receiver!r}, not a function"
            )
    return [m for m in _ORDER if m in input_receiver_fn_map]


def write_all_modes(
    call_model_fn: ModelFnCall,
    out_dir: str,
    input_receiver_fn_map: Mapping[str, Callable[[], Any]],
    checkpoint_path: str,
    *,
    layout: Layout = "combined",
    version: str = "",
    assets_extra: Mapping[str, str] | None = None,
    as_text: bool = False,
    strip_default_attrs: bool = True,
    by_reference: bool = False,
    seed: int | None = None,
) -> Written:
    """Write the all-modes export of ``checkpoint_path`` into ``out_dir`` (which must not exist)."""
    modes = validate_receiver_map(input_receiver_fn_map)
    if layout not in ("combined", "per_mode"):
        raise ValueError(f"layout must be 'combined' or 'per_mode', got {layout!r}")
    assets = normalize_assets_extra(assets_extra)
    graphs = [build_mode_graph(call_model_fn, input_receiver_fn_map[mode], mode, seed=seed) for mode in modes]
    common = {"as_text": as_text, "strip_default_attrs": strip_default_attrs}
    if layout == "combined":
        outcome = write_saved_model(out_dir, graphs, checkpoint_path, by_reference=by_reference, **common)
        copy_assets_extra(out_dir, assets)
        return Written(layout="single", variables=outcome.method, fallback_reason=outcome.fallback_reason)

    folders: dict[str, str] = {}
    methods, reasons = [], []
    first_variables: str | None = None
    for graph in graphs:
        folder = MODE_FOLDERS[graph.mode]
        target = os.path.join(out_dir, folder)
        outcome = write_saved_model(
            target,
            [graph],
            checkpoint_path,
            by_reference=by_reference,
            variables_from=first_variables,
            **common,
        )
        if first_variables is None and outcome.method == "saved":
            # Later modes link these freshly saved variables instead of saving them again.
            first_variables = local_path(target, VARIABLES_PREFIX)
        copy_assets_extra(target, assets)
        folders[folder] = folder
        methods.append(outcome.method)
        if outcome.fallback_reason:
            reasons.append(outcome.fallback_reason)
    write_set_manifest(out_dir, layout="per_mode", version=version, graphs=folders)
    # The first mode's method says how the checkpoint got in; later modes link the first one's files.
    return Written(
        layout="per_mode", graphs=folders, variables=methods[0], fallback_reason="; ".join(reasons) or None
    )


def export_all_saved_models(
    estimator: Any,
    export_dir_base: str,
    input_receiver_fn_map: Mapping[str, Callable[[], Any]],
    assets_extra: Mapping[str, str] | None = None,
    as_text: bool = False,
    checkpoint_path: str | None = None,
    strip_default_attrs: bool = True,
    *,
    layout: Layout = "combined",
    by_reference: bool = False,
    version: str | None = None,
    version_scheme: VersionScheme = "step",
    verify: VerifyDepth = "full",
    force: bool = False,
) -> str | dict[str, str]:
    """tf.estimator's ``experimental_export_all_saved_models``, checked, verified and deterministic.

    Returns the version folder (``combined``) or ``{mode folder: version folder}`` (``per_mode``).
    Raises ``ValueError`` subclasses when a receiver is None, no modes or export outputs exist, or no
    checkpoint can be found.
    """
    validate_receiver_map(input_receiver_fn_map)
    normalize_assets_extra(assets_extra)
    checkpoint = latest_checkpoint_or_fail(estimator, checkpoint_path)
    base = os.fspath(export_dir_base)
    version = version or choose_version(base, checkpoint, scheme=version_scheme)
    call = estimator_model_fn(estimator)
    seed = getattr(estimator.config, "tf_random_seed", None)

    def write(out_dir: str) -> Written:
        return write_all_modes(
            call,
            out_dir,
            input_receiver_fn_map,
            checkpoint,
            layout=layout,
            version=version,
            assets_extra=assets_extra,
            as_text=as_text,
            strip_default_attrs=strip_default_attrs,
            by_reference=by_reference,
            seed=seed,
        )

    if layout == "per_mode":
        return write_set_version(
            base, version, write, verify=verify, force=force, last=("predict",), label="all_modes"
        )
    outcome = write_version(base, version, write, verify=verify, force=force, label="all_modes")
    return outcome.path
