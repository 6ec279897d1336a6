"""The ledger's documented schema (version 1), as frozen dataclasses stored as JSON.

``ledger.json`` at ``<destination>/.exportflow/<model>/ledger.json``::

    {
      "schema_version": 1,
      "model": "example",
      "checkpoints": {            # by global step, as a string
        "300": {
          "step": 300,
          "uri": "/models/example/model.ckpt-300",
          "evaluation": {ModelEvaluation artifact} | null,
          "exports": {"<strategy>": {Model artifact}},
          "publications": {"<strategy>": {PushedModel artifact}}
        }
      }
    }
"""

from __future__ import annotations

import dataclasses

from components.artifacts import EvaluationArtifact, ExportArtifact, PushedModelArtifact

SCHEMA_VERSION = 1


@dataclasses.dataclass(frozen=True)
class CheckpointRecord:
    """Everything known about one checkpoint of the model."""

    step: int
    uri: str
    evaluation: EvaluationArtifact | None = None
    exports: dict[str, ExportArtifact] = dataclasses.field(default_factory=dict)
    publications: dict[str, PushedModelArtifact] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class LedgerState:
    """The whole ledger of one model."""

    model: str
    checkpoints: dict[str, CheckpointRecord] = dataclasses.field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    def record(self, step: int) -> CheckpointRecord | None:
        return self.checkpoints.get(str(step))

    def published_steps(self, strategy: str | None = None) -> set[int]:
        return {
            record.step
            for record in self.checkpoints.values()
            if (record.publications if strategy is None else strategy in record.publications)
        }

    def handled_steps(self) -> set[int]:
        """Steps with a final outcome: evaluated and not blessed, or published by some strategy."""
        return {
            record.step
            for record in self.checkpoints.values()
            if record.publications or (record.evaluation is not None and not record.evaluation.blessed)
        }

    def with_record(self, record: CheckpointRecord) -> LedgerState:
        return dataclasses.replace(self, checkpoints={**self.checkpoints, str(record.step): record})
