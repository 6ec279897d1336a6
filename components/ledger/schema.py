"""The ledger's documented schema (version 3), as frozen dataclasses stored as JSON.

One JSON file per model at the destination, ``<destination>/.exportflow/<model>/ledger.json`` — not in
Airflow's database, not in memory — so a restarted process, a retried task or another worker reads the
same truth. Readers (the UI plugin, reports) should read it through ``Ledger.load`` or at least accept
unknown keys; every field added later has a default. Times are ISO 8601 UTC strings
(``2025-01-31T12:00:00+00:00``). Keys of ``checkpoints`` are global steps as strings::

    {
      "schema_version": 3,
      "model": "example",
      "updated_at": "<time of the last write>",
      "checkpoints": {
        "300": {
          "step": 300,
          "uri": "gs://bucket/model/model.ckpt-300",          # the checkpoint prefix in model_dir
          "first_seen": "<when its first outcome was recorded>",  # null for v1 records
          "evaluation": {                                      # ModelEvaluation artifact, or null
            "metrics": {"auc": 0.91, "loss": 0.32},
            "blessed": true,
            "reasons": [                                       # one per threshold check, kept with the metrics
              {"metric": "auc", "passed": true, "kind": "lower", "value": 0.91, "bound": 0.6,
               "reason": "auc=0.91 >= lower bound 0.6"}
            ],
            "source": "evaluate" | "logged",
            "config_digest": "<digest of what decides metrics and blessing>",
            "metrics_digest": "<digest of what decides the metrics alone>",
            "baseline_step": 200 | null,                       # the published checkpoint compared against
            "evaluated_at": "<when the metrics were computed>",
            "uri": "<checkpoint prefix>", "checkpoint": {Checkpoint artifact: uri, step, files, pinned_uri, ...}
          },
          "exports": {"<strategy>": {Model artifact}},            # artifacts as their fields (no "type")
          "publications": {"<strategy>": {PushedModel artifact}},  # the newest, plus published_at and run_id
          "history": [{PushedModel artifact}, ...],            # every publication, oldest first, never rewritten
          "declined": {"<strategy>": "<why it chose not to export this blessed checkpoint>"},
          "updated_at": "<last change of this record>"
        }
      },
      "best": {                                                # best-so-far per strategy, among its publications
        "<strategy>": {"step": 300, "version": "300", "metric": "auc", "direction": "higher_is_better",
                       "value": 0.91, "at": "<when it became best>"}
      }
    }

Meaning:

* A checkpoint is **handled** under a configuration (``config_digest``, see
  ``components.evaluation.digest``) when some strategy published it, or when it was evaluated under that
  configuration and not blessed. Discovery takes only checkpoints not handled; changing thresholds or the
  eval input makes unblessed checkpoints new again. Version-1 evaluations carry no digest and count as
  made under the current configuration.
* The **baseline** for change thresholds is the best published checkpoint by the first change
  threshold's metric and direction (``components.ledger.records.baseline``).
* ``history`` is append-only: each publication of the checkpoint is a new entry, and nothing in it is
  ever changed or removed. A forced republish of other content gets a fresh version number (see
  ``components.publish.protocol``), so the checkpoint then has two entries — the old version and the new —
  and ``publications`` names the newest per strategy (what ranking, blessing baselines and labels use).
  A rerun that finds its version already published adds nothing.
* ``best`` is kept by the publish stage with the same ranking (or ``loss``, lower is better, when no
  change threshold is configured; by step when the metric is missing).

Versions: version 1 (the walking skeleton's: no ``first_seen``/``updated_at``/``best``,
no digests) and version 2 (no ``history``: a record's publications stand for it) are read and upgraded on
the next write; version 3 adds ``history`` (an older exportflow refuses it rather than drop it); a newer version than this code knows is refused
with an error rather than misread.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection

from components.artifacts import EvaluationArtifact, ExportArtifact, PushedModelArtifact

SCHEMA_VERSION = 3
READABLE_VERSIONS = (1, 2, 3)


@dataclasses.dataclass(frozen=True)
class BestRecord:
    """The best published checkpoint of one strategy, and by which ranking."""

    step: int
    version: str
    metric: str | None = None  # None: ranked by step (no metric to rank by)
    direction: str | None = None  # "higher_is_better" | "lower_is_better"
    value: float | None = None
    at: str | None = dataclasses.field(default=None, compare=False)


@dataclasses.dataclass(frozen=True)
class CheckpointRecord:
    """Everything known about one checkpoint of the model."""

    step: int
    uri: str
    evaluation: EvaluationArtifact | None = None
    exports: dict[str, ExportArtifact] = dataclasses.field(default_factory=dict)
    publications: dict[str, PushedModelArtifact] = dataclasses.field(default_factory=dict)
    first_seen: str | None = dataclasses.field(default=None, compare=False)
    updated_at: str | None = dataclasses.field(default=None, compare=False)
    # Strategies that looked at this blessed checkpoint and chose not to export it (e.g. FinalExporter
    # on a non-final step, BestExporter on a worse one), with why.
    declined: dict[str, str] = dataclasses.field(default_factory=dict)
    # Every publication of this checkpoint, oldest first, append-only (``publications`` is the newest per
    # strategy). Empty in records written before version 3: see ``publication_history``.
    history: tuple[PushedModelArtifact, ...] = ()

    def publication_history(self) -> tuple[PushedModelArtifact, ...]:
        """Every publication, oldest first (a record from before version 3: its ``publications``)."""
        if self.history:
            return self.history
        return tuple(sorted(self.publications.values(), key=lambda p: (p.published_at or "", p.strategy)))

    def with_publication(self, pushed: PushedModelArtifact) -> CheckpointRecord:
        """This record with ``pushed`` as its strategy's newest publication, appended to the history unless
        it is a rerun that found that version of that strategy published and in the history already. A
        publication that moved bytes is appended even under a number the history has: retention (or a
        person) deleted that version, and a forced rerun published other content under the freed number."""
        earlier = self.publication_history()
        seen = pushed.already_published and any(
            (p.strategy, p.version) == (pushed.strategy, pushed.version) for p in earlier
        )
        return dataclasses.replace(
            self,
            publications={**self.publications, pushed.strategy: pushed},
            history=earlier if seen else (*earlier, pushed),
        )

    def superseded(self) -> dict[tuple[str, str], str]:
        """(strategy, version) of each publication a later one of the same strategy replaced as the newest
        (a forced republish) -> the version that replaced it."""
        current = {s: p.version for s, p in self.publications.items()}
        return {
            (p.strategy, p.version): current[p.strategy]
            for p in self.publication_history()
            if p.strategy in current and p.version != current[p.strategy]
        }

    def handled(self, config_digest: str | None = None, strategies: Collection[str] = ()) -> bool:
        """Published by some strategy; or, under ``config_digest`` (None: any), evaluated and not blessed,
        or blessed and declined by every one of ``strategies`` (so it is not taken again every run)."""
        if self.publications:
            return True
        evaluation = self.evaluation
        if evaluation is None:
            return False
        if config_digest is not None and evaluation.config_digest not in (None, config_digest):
            return False
        if not evaluation.blessed:
            return True
        return bool(strategies) and set(strategies) <= set(self.declined)


@dataclasses.dataclass(frozen=True)
class LedgerState:
    """The whole ledger of one model."""

    model: str
    checkpoints: dict[str, CheckpointRecord] = dataclasses.field(default_factory=dict)
    best: dict[str, BestRecord] = dataclasses.field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION
    updated_at: str | None = dataclasses.field(default=None, compare=False)

    def record(self, step: int) -> CheckpointRecord | None:
        return self.checkpoints.get(str(step))

    def published_steps(self, strategy: str | None = None) -> set[int]:
        return {
            record.step
            for record in self.checkpoints.values()
            if (record.publications if strategy is None else strategy in record.publications)
        }

    def handled_steps(self, config_digest: str | None = None, strategies: Collection[str] = ()) -> set[int]:
        """Steps with a final outcome under ``config_digest`` (see ``CheckpointRecord.handled``)."""
        return {r.step for r in self.checkpoints.values() if r.handled(config_digest, strategies)}

    def with_record(self, record: CheckpointRecord) -> LedgerState:
        return dataclasses.replace(self, checkpoints={**self.checkpoints, str(record.step): record})
