"""Promote, roll back, remove a label, pin and unpin: label moves on the model server config, recorded in
the history.

A label may point only at a version TF Serving has loaded, so a move is two writes of the config:

1. add the version to the servable's ``specific`` versions (the label's current version stays listed);
2. once the version is AVAILABLE (``availability``), point the label at it and stop listing the old
   version unless another label, or a pin, still needs it.

Between the two writes another promotion may move the same label: the second write then refuses with
``ServingConflict`` (the label is not where this move found it), takes back the version it listed (when
nothing else needs it) and records nothing. Every completed move is appended to the serving history
(``components.ledger.label_history``): from, to, who, when, run id, reason. A rollback moves the label
to the version it held before its current one (see ``ServingHistory.label_stack``). Removing a label
(``unlabel``) is one write: the label goes, and its version with it unless another label or a pin needs it.

Only single-graph versions (``<destination>/<servable>/<version>``) can be labelled or pinned: a
multi-graph set (``<base>/<graph>/<version>``) is several TF Serving models that no single config write
moves together, so ``check_published`` refuses it (``MultiGraphSet``, naming the model and what to do),
and a fresh set is published without a label (``publication.label_fresh_version``).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Literal, NoReturn

from components.config.schema import PipelineConfig
from components.layout import BOOKKEEPING, GRAPH_FILES, PUBLISHED_SUFFIX, version_of
from components.ledger.label_history import LabelHistory, LabelMove, ServingHistory
from components.publish.layout import marker_uri, version_dir
from components.publish.marker import read_marker
from components.serving import config_file, model_config
from components.serving.availability import AvailabilityWait, configured_wait
from components.serving.errors import (
    MultiGraphSet,
    ServingConflict,
    ServingError,
    ServingModeOff,
    UnknownLabel,
    VersionNotPublished,
)
from components.serving.model_config import ServableEntry
from components.storage import Storage, scheme_of, storage_for

CONFIG_FILE = "models.config"
STANDARD_LABELS = ("stable", "canary")  # with the config's publish_label: ``promotable_labels``
LABEL_PATTERN = re.compile(r"^[a-z][a-z0-9_\-]{0,62}$")


@dataclasses.dataclass(frozen=True)
class ServingTarget:
    """Where one model's serving state lives."""

    model: str
    destination: str
    storage: Storage  # the destination's
    config_uri: str
    config_storage: Storage
    servables: tuple[str, ...]

    def base_path(self, servable: str) -> str:
        return self.storage.join(self.destination, servable)

    @property
    def history(self) -> LabelHistory:
        return LabelHistory(self.storage, self.destination, self.model)


@dataclasses.dataclass(frozen=True)
class ServableStatus:
    servable: str
    entry: ServableEntry | None  # None: not in the model server config
    pins: tuple[int, ...]
    rollback_targets: Mapping[str, int]  # label -> the version a rollback takes it to
    moves: tuple[LabelMove, ...]
    published: tuple[int, ...] = ()  # versions with a commit marker, newest first


def target_for(config: PipelineConfig, storage: Storage | None = None) -> ServingTarget:
    """``storage``: the destination's back-end when the caller built it (the UI, with its connection's
    credentials); default: by ``components.model_storage`` with the credentials installed in this process."""
    from components.model_storage import destination_storage
    from components.publish.retention import servables_of

    storage = storage or destination_storage(config.destination)
    uri = config.serving.config_path or storage.join(config.destination.uri, CONFIG_FILE)
    same_store = scheme_of(uri) == scheme_of(config.destination.uri)
    return ServingTarget(
        config.name,
        config.destination.uri,
        storage,
        uri,
        storage if same_store else storage_for(uri),
        tuple(servables_of(config)),
    )


def published_versions(target: ServingTarget, servable: str) -> list[int]:
    """Versions with a commit marker (cheap: one listing), newest first."""
    folder = target.storage.join(target.base_path(servable), BOOKKEEPING)
    names = target.storage.list_names(folder)
    found = {version_of(n, PUBLISHED_SUFFIX) for n in names}
    return sorted((int(v) for v in found if v is not None and v.isdigit()), reverse=True)


def check_published(target: ServingTarget, servable: str, version: int) -> None:
    """A complete single-graph publication of ``version``: its commit marker and its ``saved_model.pb``."""
    base = target.base_path(servable)
    marker = read_marker(target.storage, marker_uri(target.storage, base, str(version)))
    if marker is None:
        known = published_versions(target, servable)[:10]
        raise VersionNotPublished(
            f"version {version} of {servable!r} is not published at {target.destination} (no commit marker); "
            f"published versions: {known or 'none'}"
        )
    if marker.graph_names != (None,):
        graphs = sorted(g or "" for g in marker.graph_names)
        raise MultiGraphSet(
            f"model {target.model!r}: version {version} of {servable!r} is a multi-graph set (graphs {graphs}), "
            f"each graph its own TF Serving model with base path {base}/<graph>; a label cannot move all of them "
            "at once, so labels, promotions and pins of a set are refused and the model server config was not "
            "changed. Serve a set with serving.mode: latest (hosts load each graph's highest version; the entry "
            "graph is published last), or export this servable with a single-graph strategy to use labels"
        )
    folder = version_dir(target.storage, base, str(version), None)
    if not any(target.storage.stat(target.storage.join(folder, name)) for name in GRAPH_FILES):
        raise VersionNotPublished(
            f"version {version} of {servable!r} has a commit marker but no saved_model.pb in {folder}; "
            "publish it again before labelling it"
        )


def check_mode(config: PipelineConfig) -> None:
    if config.serving.mode != "labels":
        raise ServingModeOff(
            f"{config.source}: serving.mode is {config.serving.mode!r}, so exportflow writes no model server "
            "config for this model; set serving.mode: labels to use labels, pins and rollbacks"
        )


def current_entry(target: ServingTarget, servable: str) -> ServableEntry | None:
    """``servable``'s entry in the model server config as it is now (None: not in it)."""
    return model_config.find(config_file.read(target.config_storage, target.config_uri).config, servable)


def _needed(version: int, labels: Mapping[str, int], pins: set[int]) -> bool:
    """Must ``version`` stay listed? While a label points at it or it is pinned."""
    return version in labels.values() or version in pins


def check_label(label: str) -> str:
    if not isinstance(label, str) or not LABEL_PATTERN.match(label):
        raise UnknownLabel(f"label {label!r} must be lowercase letters, digits, '_' or '-', e.g. stable or canary")
    return label


def promotable_labels(config: PipelineConfig) -> list[str]:
    """The labels any promotion of ``config`` may name, known without reading anything: ``stable``,
    ``canary`` and the configured ``publish_label`` (the promote DAG's form offers exactly these)."""
    return sorted({*STANDARD_LABELS, *([config.serving.publish_label] if config.serving.publish_label else [])})


def check_known_label(config: PipelineConfig, target: ServingTarget, servable: str, label: str) -> None:
    """A promotion may name one of ``promotable_labels`` or a label the servable already has: a misspelt
    new label would keep its version loaded, out of retention's reach, until someone noticed and removed it."""
    known = set(promotable_labels(config))
    if label in known:
        return
    entry = current_entry(target, servable)
    if entry is not None and label in entry.labels:
        return
    labels = ", ".join(sorted(known | set(entry.labels if entry else ())))
    raise UnknownLabel(
        f"label {label!r} is not a label of servable {servable!r} (known: {labels}); check its spelling. "
        "A new label is refused so that a typo cannot keep a version loaded: to use one, set it as "
        "serving.publish_label or add it to the model server config by hand (`exportflow serving unlabel` "
        "removes a label)"
    )


def _command_target(config: PipelineConfig, servable: str | None) -> tuple[ServingTarget, str]:
    """What every serving command checks first (labels mode, a servable of this model): its target and
    the servable's name."""
    check_mode(config)
    target = target_for(config)
    return target, check_servable(target, servable)


def check_servable(target: ServingTarget, servable: str | None) -> str:
    if servable is None:
        if len(target.servables) == 1:
            return target.servables[0]
        raise ServingError(f"model {target.model!r} publishes several servables {list(target.servables)}; name one")
    if servable not in target.servables:
        raise ServingError(
            f"servable {servable!r} is not published by model {target.model!r}; its servables: {list(target.servables)}"
        )
    return servable


def move_label(
    target: ServingTarget,
    servable: str,
    label: str,
    version: int,
    *,
    wait: AvailabilityWait,
    who: str,
    run_id: str | None = None,
    reason: str = "",
    action: Literal["promote", "rollback"] = "promote",
) -> LabelMove | None:
    """Point ``label`` at ``version`` in two writes (see the module docstring); None when it already does."""
    check_label(label)
    check_published(target, servable, version)
    pins = set(target.history.load().pinned(servable))
    start = config_file.read(target.config_storage, target.config_uri)
    entry = model_config.find(start.config, servable)
    previous = entry.labels.get(label) if entry else None
    if previous == version:
        return None
    was_listed = entry is not None and version in entry.versions

    def list_version(config):
        now = model_config.find(config, servable)
        if now is not None and now.labels.get(label) != previous:
            raise _label_moved(label, servable, previous, now.labels.get(label))
        versions = set(now.versions if now else ()) | {version}
        return model_config.with_servable(config, servable, target.base_path(servable), versions, now.labels if now else {})

    config_file.update(target.config_storage, target.config_uri, list_version)
    try:
        wait(servable, version)

        def point_label(config):
            now = model_config.find(config, servable)
            if now is None or now.labels.get(label) != previous:
                raise _label_moved(label, servable, previous, now.labels.get(label) if now else None)
            labels = {**now.labels, label: version}
            versions = set(now.versions) | {version}
            if previous is not None and not _needed(previous, labels, pins):
                versions.discard(previous)
            return model_config.with_servable(config, servable, target.base_path(servable), versions, labels)

        config_file.update(target.config_storage, target.config_uri, point_label)
    except BaseException:
        if not was_listed:
            _unlist_if_unneeded(target, servable, version, pins)
        raise
    return target.history.record_move(
        servable=servable,
        label=label,
        from_version=previous,
        to_version=version,
        action=action,
        who=who,
        run_id=run_id,
        reason=reason,
    )


def promote(
    config: PipelineConfig,
    version: int,
    label: str,
    *,
    servable: str | None = None,
    who: str,
    run_id: str | None = None,
    reason: str = "",
    wait: AvailabilityWait | None = None,
) -> LabelMove | None:
    target, name = _command_target(config, servable)
    check_known_label(config, target, name, check_label(label))
    return move_label(
        target, name, label, int(version), wait=wait or _wait_of(config),
        who=who, run_id=run_id, reason=reason,
    )


def rollback(
    config: PipelineConfig,
    label: str,
    *,
    servable: str | None = None,
    who: str,
    run_id: str | None = None,
    reason: str = "",
    wait: AvailabilityWait | None = None,
) -> LabelMove:
    """Move ``label`` back to the version it held before its current one."""
    target, name = _command_target(config, servable)
    check_label(label)
    history = target.history.load()
    current = labelled_version(target, name, label)
    stack = history.label_stack(name, label)
    if not stack or stack[-1] != current:
        raise ServingError(
            f"label {label!r} of {name!r} points at version {current}, which its history does not show "
            f"(last recorded: {stack[-1] if stack else 'none'}); the config was edited by hand — promote "
            "the version you want instead"
        )
    previous = history.rollback_target(name, label)
    if previous is None:
        raise ServingError(f"label {label!r} of {name!r} has no earlier version to roll back to (it only held {current})")
    move = move_label(
        target, name, label, previous, wait=wait or _wait_of(config),
        who=who, run_id=run_id, reason=reason, action="rollback",
    )
    assert move is not None  # previous != current: the stack never holds a version twice in a row
    return move


def labelled_version(target: ServingTarget, servable: str, label: str) -> int:
    """The version ``label`` points at in the model server config now; ``UnknownLabel`` when it has none."""
    entry = current_entry(target, servable)
    if entry is None or label not in entry.labels:
        _no_such_label(servable, label, entry)
    return entry.labels[label]


def _no_such_label(servable: str, label: str, entry: ServableEntry | None) -> NoReturn:
    labels = sorted(entry.labels) if entry else []
    raise UnknownLabel(f"servable {servable!r} has no label {label!r}; its labels: {labels or 'none'}")


def unlabel(
    config: PipelineConfig,
    label: str,
    *,
    servable: str | None = None,
    who: str,
    run_id: str | None = None,
    reason: str = "",
) -> LabelMove:
    """Remove ``label`` (added by mistake, or a canary that is over): TF Serving stops answering it, and
    its version is unloaded unless another label or a pin still needs it. Refused when that would leave the
    servable with no version loaded: promote another label or pin a version first."""
    target, name = _command_target(config, servable)
    check_label(label)
    pins = set(target.history.load().pinned(name))
    removed: list[int] = []

    def remove(config_proto):
        version, versions, labels = _without_label(model_config.find(config_proto, name), name, label, pins)
        removed[:] = [version]
        return model_config.with_servable(config_proto, name, target.base_path(name), versions, labels)

    config_file.update(target.config_storage, target.config_uri, remove)
    return target.history.record_move(
        servable=name, label=label, from_version=removed[0], to_version=None,
        action="remove", who=who, run_id=run_id, reason=reason,
    )


def check_unlabel(target: ServingTarget, servable: str, label: str) -> int:
    """Would ``unlabel`` be allowed now (the label exists, a version stays loaded)? Returns the label's
    version; raises what ``unlabel`` would raise. The promote DAG asks before anyone approves."""
    entry = current_entry(target, servable)
    return _without_label(entry, servable, label, set(target.history.load().pinned(servable)))[0]


def _without_label(
    entry: ServableEntry | None, servable: str, label: str, pins: set[int]
) -> tuple[int, set[int], dict[str, int]]:
    """The label's version, and the servable's versions and labels once it is removed."""
    if entry is None or label not in entry.labels:
        _no_such_label(servable, label, entry)
    version = entry.labels[label]
    labels = {other: v for other, v in entry.labels.items() if other != label}
    versions = set(entry.versions)
    if not _needed(version, labels, pins):
        versions.discard(version)
    if not versions:
        raise ServingError(
            f"removing label {label!r} of {servable!r} would unload version {version}, the only version it "
            "serves, and leave TF Serving nothing to serve; promote another label or pin a version first "
            "(nothing was changed)"
        )
    return version, versions, labels


def pin(config: PipelineConfig, version: int, *, servable: str | None = None) -> bool:
    """Keep ``version`` loaded (and out of retention's reach) without a label; False if already pinned."""
    target, name = _command_target(config, servable)
    check_published(target, name, int(version))
    if int(version) in target.history.load().pinned(name):
        return False

    def add(config_proto):
        now = model_config.find(config_proto, name)
        versions = set(now.versions if now else ()) | {int(version)}
        return model_config.with_servable(config_proto, name, target.base_path(name), versions, now.labels if now else {})

    config_file.update(target.config_storage, target.config_uri, add)
    target.history.update(lambda h: h.with_pins(name, set(h.pinned(name)) | {int(version)}))
    return True


def unpin(config: PipelineConfig, version: int, *, servable: str | None = None) -> None:
    """Stop keeping ``version`` loaded for its pin; it stays listed while a label points at it."""
    target, name = _command_target(config, servable)
    pins = set(target.history.load().pinned(name))
    if int(version) not in pins:
        raise ServingError(f"version {version} of {name!r} is not pinned; pinned versions: {sorted(pins) or 'none'}")
    target.history.update(lambda h: h.with_pins(name, set(h.pinned(name)) - {int(version)}))
    _unlist_if_unneeded(target, name, int(version), pins - {int(version)})


def status(config: PipelineConfig, storage: Storage | None = None) -> list[ServableStatus]:
    """What each servable of the model loads and labels, its pins, rollback targets and label history
    (``storage``: as for ``target_for``)."""
    target = target_for(config, storage)
    # serving.mode latest: exportflow writes no model server config, so none is read (a file there is not ours)
    server_config = config_file.read(target.config_storage, target.config_uri).config if config.serving.mode == "labels" else None
    history = target.history.load()
    return [
        _status_of(name, server_config, history, tuple(published_versions(target, name))) for name in target.servables
    ]


def _status_of(name: str, config, history: ServingHistory, published: tuple[int, ...]) -> ServableStatus:
    entry = model_config.find(config, name) if config is not None else None
    targets = {}
    for label in sorted(set(entry.labels if entry else ()) | set(history.labels_of(name))):
        back = history.rollback_target(name, label)
        if back is not None:
            targets[label] = back
    moves = tuple(m for m in history.moves if m.servable == name)
    return ServableStatus(name, entry, history.pinned(name), targets, moves, published)


def _unlist_if_unneeded(target: ServingTarget, servable: str, version: int, pins: set[int]) -> None:
    def drop(config):
        now = model_config.find(config, servable)
        if now is None or version not in now.versions or _needed(version, now.labels, pins):
            return config
        return model_config.with_servable(
            config, servable, target.base_path(servable), set(now.versions) - {version}, now.labels
        )

    config_file.update(target.config_storage, target.config_uri, drop)


def _label_moved(label: str, servable: str, expected: int | None, found: int | None) -> ServingConflict:
    return ServingConflict(
        f"label {label!r} of {servable!r} moved from {expected} to {found} while this promotion waited "
        "(another promotion won); this one changed nothing — check `exportflow serving status`, then "
        "promote again if still wanted"
    )


def _wait_of(config: PipelineConfig) -> AvailabilityWait:
    return configured_wait(config.serving.status_url, config.serving.label_wait_seconds)
