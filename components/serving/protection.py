"""Which versions retention must keep for serving: labelled, listed in the model server config, or a
label's rollback target (the version it held before its current one)."""

from __future__ import annotations

from components.config.schema import PipelineConfig
from components.ledger.errors import LedgerError
from components.serving import config_file, model_config
from components.serving.errors import ServingError


def serving_needs(config: PipelineConfig, servable: str) -> dict[str, str]:
    """Version -> why serving needs it. Read whatever the mode: a config written while the model was in
    ``labels`` mode still protects its versions. A malformed config raises ``MalformedServingConfig``
    (then retention deletes nothing)."""
    from components.serving.control import target_for

    target = target_for(config)
    needs: dict[int, list[str]] = {}
    entry = model_config.find(config_file.read(target.config_storage, target.config_uri).config, servable)
    if entry is not None:
        for label, version in sorted(entry.labels.items()):
            needs.setdefault(version, []).append(f"label {label}")
        for version in entry.versions:
            needs.setdefault(version, []).append("listed in the model server config")
    try:
        history = target.history.load()
    except LedgerError as exc:
        raise ServingError(f"cannot tell which versions serving needs: {exc}") from exc
    for label in history.labels_of(servable):
        back = history.rollback_target(servable, label)
        if back is not None:
            needs.setdefault(back, []).append(f"rollback target of {label}")
    for version in history.pinned(servable):
        needs.setdefault(version, []).append("pinned for serving")
    return {str(v): "serving: " + ", ".join(reasons) for v, reasons in needs.items()}
