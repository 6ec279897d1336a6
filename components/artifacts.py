"""Artifacts passed between stages: frozen dataclasses that round-trip through JSON.

They follow TFX's artifact contract (a type name and a URI, plus typed properties) without importing
tfx, so Airflow's XCom can carry them as small JSON and the plain runner can pass them as objects.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from typing import Any, ClassVar

from components.decoding import decode


@dataclasses.dataclass(frozen=True)
class FileEntry:
    """One file of a checkpoint or an export, relative to its root."""

    path: str
    size: int
    crc32c: str | None = None


@dataclasses.dataclass(frozen=True)
class Artifact:
    """Base: every artifact has a URI and a TFX-style type name."""

    TYPE_NAME: ClassVar[str] = "Artifact"

    uri: str

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.TYPE_NAME, **_encode(self)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> typing.Self:
        payload = dict(data)
        type_name = payload.pop("type", cls.TYPE_NAME)
        if type_name != cls.TYPE_NAME:
            raise ValueError(f"expected a {cls.TYPE_NAME} artifact, got {type_name!r}")
        return decode(cls, payload)

    @classmethod
    def from_json(cls, text: str) -> typing.Self:
        return cls.from_dict(json.loads(text))


@dataclasses.dataclass(frozen=True)
class CheckpointArtifact(Artifact):
    """A complete checkpoint: ``uri`` is its prefix (``.../model.ckpt-<step>``)."""

    TYPE_NAME: ClassVar[str] = "Checkpoint"

    model_name: str
    step: int
    files: tuple[FileEntry, ...] = ()
    pinned_uri: str | None = None  # where the lease keeps it while the run needs it
    final: bool = False  # training reported this as its final checkpoint (FinalExporter exports only these)

    @property
    def readable_prefix(self) -> str:
        """The prefix to read from: the pinned copy when there is one."""
        return self.pinned_uri or self.uri

    @property
    def label(self) -> str:
        """How errors and logs name it: ``checkpoint <uri> (step <step>)``."""
        return f"checkpoint {self.uri} (step {self.step})"


@dataclasses.dataclass(frozen=True)
class ThresholdResult:
    """One threshold's verdict and why."""

    metric: str
    passed: bool
    reason: str
    kind: str = ""  # "lower" | "upper" | "change" | "none" (no thresholds configured)
    value: float | None = None  # the checkpoint's metric value
    bound: float | None = None  # the bound, or for a change check the baseline's value


@dataclasses.dataclass(frozen=True)
class EvaluationArtifact(Artifact):
    """Metrics of one checkpoint and the blessing decided from them (TFX's ModelEvaluation+ModelBlessing)."""

    TYPE_NAME: ClassVar[str] = "ModelEvaluation"

    checkpoint: CheckpointArtifact
    metrics: dict[str, float]
    blessed: bool
    reasons: tuple[ThresholdResult, ...] = ()
    source: str = "evaluate"  # or "logged": metrics read from training's eval event files
    # ISO 8601 UTC, stamped by the evaluate stage; not compared, so an identical re-evaluation is a no-op.
    evaluated_at: str | None = dataclasses.field(default=None, compare=False)
    # Which configuration produced it (components.evaluation.digest): the ledger's "handled" and metric
    # reuse after a restart key on these. None in ledgers written before they were recorded.
    config_digest: str | None = None
    metrics_digest: str | None = None
    baseline_step: int | None = None  # the published checkpoint that change thresholds compared against

    @property
    def summary(self) -> str:
        verdict = "blessed" if self.blessed else "not blessed"
        return f"{verdict}: " + "; ".join(r.reason for r in self.reasons)


@dataclasses.dataclass(frozen=True)
class WarmupReplay:
    """Warmup requests replayed on one graph of an export: what ran and how long it took."""

    graph: str  # "" for a single-graph export, else the graph's name (e.g. "entry")
    records: int
    kinds: dict[str, int]  # request kind ("predict", "classify", ...) -> records
    signatures: tuple[str, ...]
    load_seconds: float  # loading the SavedModel under the serve tag
    first_call_ms: float  # the cold request warmup exists to absorb
    p50_ms: float | None = None  # of the records after the first; None with a single record
    p99_ms: float | None = None


@dataclasses.dataclass(frozen=True)
class WarmupSummary:
    """The warmup file written into an export, and its replay on every graph that carries one."""

    source: str  # "examples", "file" or "json"
    records: int  # records in the entry graph's file
    replays: tuple[WarmupReplay, ...] = ()
    truncated_from: int | None = None  # records available before truncation to TF Serving's limit
    warnings: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class ExportArtifact(Artifact):
    """An exported SavedModel (TFX's Model); ``uri`` is the staged version's URI (a local path only when
    staging is local disk), never a worker's scratch path, so any worker can take it from here."""

    TYPE_NAME: ClassVar[str] = "Model"

    model_name: str
    strategy: str
    version: str
    step: int
    checkpoint_uri: str
    tags: tuple[str, ...] = ()
    signatures: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    metrics: dict[str, float] = dataclasses.field(default_factory=dict)
    warmup_records: int = 0
    already_exported: bool = False
    # For multi-graph exports (DistributedExporter): graph name -> staged URI, all sharing ``version``.
    graphs: dict[str, str] = dataclasses.field(default_factory=dict)
    warmup: WarmupSummary | None = None  # set by the warmup stage; goes into the manifest
    layout: str = "single"  # "single" SavedModel, or a set: "per_mode" (train/eval/predict), "distributed"
    variables: str = "saved"  # how variables/ got there: "saved", or by reference: "hardlink" / "copy"


@dataclasses.dataclass(frozen=True)
class PushedModelArtifact(Artifact):
    """A version published at the destination (TFX's PushedModel); ``uri`` is the version's location."""

    TYPE_NAME: ClassVar[str] = "PushedModel"

    model_name: str
    strategy: str
    destination: str
    version: str
    step: int
    manifest_uri: str
    files: int = 0
    bytes_total: int = 0
    bytes_moved: int = 0  # through the publishing worker (uploads)
    already_published: bool = False
    bytes_copied: int = 0  # duplicated by the store itself (server-side copy, hard link)
    marker_uri: str | None = None  # the commit marker: present means complete and verified
    graph_uris: dict[str, str] = dataclasses.field(default_factory=dict)  # graph ("" if single) -> version dir
    # When and by which orchestrator run (an Airflow DAG run id; None for the plain runner) it was first
    # published; stamped by the publish stage, shown by the UI plugin, not compared.
    published_at: str | None = dataclasses.field(default=None, compare=False)
    run_id: str | None = dataclasses.field(default=None, compare=False)


def to_jsonable(value: Any) -> Any:
    """Dataclasses, tuples and dicts as plain JSON values."""
    return _encode(value)


def from_jsonable(tp: Any, data: Any) -> Any:
    """The inverse of ``to_jsonable`` for the annotated type ``tp`` (``components.decoding``'s rule)."""
    return decode(tp, data)


def _encode(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _encode(v) for k, v in value.items()}
    return value
