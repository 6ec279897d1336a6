"""Retention at the destination: keep the N newest published versions, the best, the pinned and the
current one; never touch a version another run is publishing.

A version's state comes from the destination itself (the publish protocol's bookkeeping), not from the
ledger, so retention is right even when several pipelines or a human touched the folder:

* **published** — its commit marker exists and every graph holds ``saved_model.pb``. These are the
  candidates: the ``keep`` newest (by version number), the best by the configured metric, every pinned
  version and the current one stay; the rest go.
* **publishing** — a live lock (not expired; on this host, its process is alive): skipped, whatever it is.
* **loadable, unmarked** — ``saved_model.pb`` but no marker (published by another tool, or a run died
  between its last graph and its marker): kept and reported; a publish rerun commits it.
* **not loadable** — no ``saved_model.pb`` and no live lock: an abandoned partial upload, or a removal
  that was interrupted. Nothing can serve it; it is deleted.

Versions serving control needs (labelled, listed in the model server config, or a label's rollback
target) come in as ``serving`` and are kept: serving sits above publish, so
``components.serving.protection`` works them out and runs retention with them (``retire_old_versions``
after a publish, ``retention_for_config`` for the CLI); when the model server config cannot be read,
retention deletes nothing. The *current* version is named by ``<base>/.exportflow/current`` (written by whatever rolls serving
forward or back, see ``mark_current``) and is never deleted. *Best* is judged by ``components.ranking``'s
rule for the config (the first ``change`` threshold's metric and direction, else lower ``loss``) among
the versions whose markers carry that metric.

Deleting takes the version's lock first (so a publisher of the same version waits or fails fast), then
removes ``saved_model.pb`` (entry graph first) so no host can newly load it, then everything else, then
the marker. A dry run lists the decisions and deletes nothing.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from components.config.schema import PipelineConfig
from components.layout import (
    BOOKKEEPING,
    CURRENT_PATH,
    GRAPH_FILES,
    LEASE_SUFFIX,
    PUBLISHED_SUFFIX,
    version_of,
)
from components.publish.errors import PublishInProgress
from components.publish.layout import (
    check_segment,
    lock_uri,
    version_dir,
)
from components.publish.marker import CommitMarker, read_marker
from components.publish.removal import collect_abandoned_builds, unpublish
from components.ranking import RankingRule, rule_for
from components.storage import PreconditionFailed, Storage, StorageError
from components.transfer.lock import VersionLock, json_object, lock_is_live

log = logging.getLogger(__name__)
RETIRE_LOCK_TTL = 300.0


@dataclasses.dataclass(frozen=True)
class RetentionPolicy:
    keep: int
    pinned: frozenset[str] = frozenset()
    best: RankingRule | None = None  # components.ranking's rule for the config

    def __post_init__(self) -> None:
        if self.keep <= 0:
            raise ValueError(f"keep must be a positive number of versions, got {self.keep}")


@dataclasses.dataclass(frozen=True)
class VersionView:
    """What the destination holds for one version number."""

    version: str
    graphs: tuple[str | None, ...]  # graph folders that hold the version (None: <base>/<version>)
    loadable: tuple[str | None, ...]  # those of them with saved_model.pb
    marker: CommitMarker | None = None
    lock: dict[str, Any] | None = None  # only a live one

    @property
    def marked_graphs(self) -> tuple[str | None, ...]:
        return self.marker.graph_names if self.marker is not None else ()

    @property
    def complete(self) -> bool:
        """Marked, and every graph the marker lists holds saved_model.pb."""
        return self.marker is not None and set(self.marked_graphs) <= set(self.loadable)


@dataclasses.dataclass(frozen=True)
class RetentionDecision:
    """What retention does with one published version, and why (shown by ``exportflow retention``)."""

    version: str
    action: Literal["keep", "delete", "skip"]
    reason: str


@dataclasses.dataclass(frozen=True)
class RetentionReport:
    servable: str
    base: str
    decisions: tuple[RetentionDecision, ...]
    dry_run: bool
    deleted: tuple[str, ...] = ()

    @property
    def doomed(self) -> tuple[str, ...]:
        return tuple(d.version for d in self.decisions if d.action == "delete")


@dataclasses.dataclass(frozen=True)
class Survey:
    views: dict[str, VersionView]
    current: str | None
    stale_locks: tuple[tuple[str, int], ...]  # (uri, generation) of locks whose holder is gone


def survey(storage: Storage, base: str, now: float | None = None) -> Survey:
    """Every version under ``base``, the current one, and locks left behind by killed runs."""
    graphs_of: dict[str, list[str | None]] = {}
    names = storage.list_names(base)
    for name in names:
        if name.isdigit():
            graphs_of.setdefault(name, []).append(None)
        elif not name.startswith("."):
            try:
                children = storage.list_names(storage.join(base, name))
            except StorageError:
                continue  # a plain file beside the versions
            for child in children:
                if child.isdigit():
                    graphs_of.setdefault(child, []).append(name)
    markers: dict[str, CommitMarker | None] = {}
    locks: dict[str, dict[str, Any]] = {}
    stale: list[tuple[str, int]] = []
    bookkeeping = storage.join(base, BOOKKEEPING)
    for name in storage.list_names(bookkeeping):
        if (version := version_of(name, PUBLISHED_SUFFIX)) is not None:
            markers[version] = read_marker(storage, storage.join(bookkeeping, name))
        elif (version := version_of(name, LEASE_SUFFIX)) is not None:
            found = storage.read_versioned(storage.join(bookkeeping, name))
            if found is None:
                continue
            lock = json_object(found[0])
            if lock is not None and lock_is_live(lock, now):
                locks[version] = lock
            else:
                stale.append((storage.join(bookkeeping, name), found[1]))
    views = {}
    for version in set(graphs_of) | set(markers) | set(locks):
        graphs = tuple(graphs_of.get(version, ()))
        loadable = tuple(g for g in graphs if _has_graph_file(storage, base, g, version))
        views[version] = VersionView(version, graphs, loadable, markers.get(version), locks.get(version))
    return Survey(views, read_current(storage, base), tuple(stale))


def decide(
    views: dict[str, VersionView],
    policy: RetentionPolicy,
    current: str | None,
    serving: Mapping[str, str] | None = None,
) -> list[RetentionDecision]:
    """What to do with each version (newest first). Pure: no I/O. ``serving`` maps versions that serving
    control needs (labelled, listed in the model server config, a label's rollback target) to why: kept,
    and still counted among the newest and ranked for best (a forced republish is the newest and labelled)."""
    decisions: dict[str, RetentionDecision] = {}
    published: list[VersionView] = []
    for view in views.values():
        if view.lock is not None:
            decisions[view.version] = RetentionDecision(
                view.version, "skip", f"{view.lock.get('purpose', 'publish')} in progress by {view.lock.get('owner')}"
            )
        elif view.complete:
            published.append(view)  # ranked with the others even when serving needs it: it may be the newest
        elif serving and view.version in serving:
            decisions[view.version] = RetentionDecision(view.version, "keep", serving[view.version])
        elif view.version == current:
            decisions[view.version] = RetentionDecision(view.version, "keep", "current (marked as served)")
        elif view.marker is None and view.loadable:
            decisions[view.version] = RetentionDecision(
                view.version, "keep", "loadable but not committed: rerun publish to commit it, or remove it by hand"
            )
        elif view.marker is not None:
            decisions[view.version] = RetentionDecision(view.version, "delete", "marked but not loadable (an interrupted removal)")
        else:
            decisions[view.version] = RetentionDecision(
                view.version, "delete", "abandoned partial upload (no saved_model.pb, no marker, no live lock)"
            )
    published.sort(key=lambda v: int(v.version), reverse=True)
    best = _best(published, policy.best)
    for rank, view in enumerate(published):
        reasons = [serving[view.version]] if serving and view.version in serving else []
        if rank < policy.keep:
            reasons.append(f"one of the {policy.keep} newest")
        if best is not None and view.version == best:
            reasons.append(f"best by {policy.best.metric}")  # type: ignore[union-attr]
        if view.version in policy.pinned:
            reasons.append("pinned")
        if view.version == current:
            reasons.append("current (marked as served)")
        if reasons:
            decisions[view.version] = RetentionDecision(view.version, "keep", ", ".join(reasons))
        else:
            decisions[view.version] = RetentionDecision(
                view.version, "delete", f"older than the {policy.keep} newest published versions"
            )
    return sorted(decisions.values(), key=lambda d: int(d.version), reverse=True)


def prune_published_versions(
    storage: Storage,
    destination: str,
    servable: str,
    policy: RetentionPolicy,
    *,
    dry_run: bool = False,
    serving: Mapping[str, str] | None = None,
) -> RetentionReport:
    """Delete the versions of ``servable`` at ``destination`` that ``policy`` does not keep, each under its
    version lock, plus the locks and building folders killed runs left behind; ``dry_run`` only decides."""
    check_segment("servable", servable)
    base = storage.join(destination, servable)
    found = survey(storage, base)
    views = found.views
    decisions = decide(views, policy, found.current, serving)
    deleted = []
    final = []
    if not dry_run:
        for uri, generation in found.stale_locks:
            try:
                storage.delete(uri, if_generation_match=generation)  # left by a killed run
            except PreconditionFailed:
                pass  # renewed or taken over meanwhile: someone is alive
        collect_abandoned_builds(storage, base)  # a killed publish's .exportflow/building folder
    for decision in decisions:
        if decision.action != "delete" or dry_run:
            final.append(decision)
            continue
        view = views[decision.version]
        try:
            lock = VersionLock.acquire(storage, lock_uri(storage, base, view.version), RETIRE_LOCK_TTL, "retire")
        except PublishInProgress as exc:
            final.append(RetentionDecision(view.version, "skip", f"became busy: {exc}"))
            continue
        try:
            graphs = set(view.graphs) | set(view.marked_graphs)
            unpublish(storage, base, view.version, sorted(graphs, key=lambda g: g or ""))
        finally:
            lock.release()
        deleted.append(view.version)
        final.append(decision)
        log.info("retention: deleted %s version %s (%s)", base, view.version, decision.reason)
    return RetentionReport(servable, base, tuple(final), dry_run, tuple(deleted))


def policy_for(config: PipelineConfig) -> RetentionPolicy:
    destination = config.destination
    return RetentionPolicy(
        keep=destination.keep, pinned=frozenset(str(v) for v in destination.pinned), best=rule_for(config.evaluation.thresholds)
    )


def servables_of(config: PipelineConfig) -> list[str]:
    return sorted({s.servable or config.name for s in config.strategies})


def mark_current(storage: Storage, destination: str, servable: str, version: str | None) -> None:
    """Record which version serving uses (None clears it); retention never deletes it."""
    uri = storage.join(destination, check_segment("servable", servable), CURRENT_PATH)
    if version is None:
        storage.delete(uri)
    else:
        storage.write_bytes(uri, f"{int(version)}\n".encode())


def read_current(storage: Storage, base: str) -> str | None:
    found = storage.read_versioned(storage.join(base, CURRENT_PATH))
    if found is None:
        return None
    text = found[0].decode("utf-8", "replace").strip()
    return text if text.isdigit() else None


def format_reports(reports: Iterable[RetentionReport]) -> str:
    lines = []
    for report in reports:
        verb = "would delete" if report.dry_run else "deleted"
        lines.append(f"{report.base}:")
        for decision in report.decisions:
            action = {"keep": "keep", "skip": "skip", "delete": verb}[decision.action]
            lines.append(f"  {decision.version:>12}  {action:<12}  {decision.reason}")
        if not report.decisions:
            lines.append("  (no versions)")
    return "\n".join(lines)


def _best(published: list[VersionView], rule: RankingRule | None) -> str | None:
    if rule is None:
        return None
    return rule.best((v.version, int(v.version), v.marker.metrics if v.marker else None) for v in published)


def _has_graph_file(storage: Storage, base: str, graph: str | None, version: str) -> bool:
    folder = version_dir(storage, base, version, graph)
    return any(storage.stat(storage.join(folder, name)) is not None for name in GRAPH_FILES)
