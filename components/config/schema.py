"""Typed, frozen model pipeline config.

Field docs here are the config reference (README links to this file). Everything that can name code
to import or a place to write lives here, in trusted config, never in a trigger's conf.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Literal

from components.imports import ImportPath

KERAS_PYTHON_ENV = "EXPORTFLOW_KERAS_PYTHON"  # the Keras runtime's interpreter, where it is not the default
# A Keras model's stages run in this interpreter unless airflow.python names another: the Keras runtime
# built from uv.lock beside the project (components/keras/runtime.py), or $EXPORTFLOW_KERAS_PYTHON.
DEFAULT_KERAS_ENV = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), ".venv-keras")


@dataclasses.dataclass(frozen=True)
class ReceiversConfig:
    """Input receivers per mode, as import paths of zero-argument functions."""

    predict: ImportPath  # serving_input_receiver_fn for the `serve` graph
    train: ImportPath | None = None  # supervised receiver for the `train` graph
    eval: ImportPath | None = None  # supervised receiver for the `eval` graph


@dataclasses.dataclass(frozen=True)
class ChangeThreshold:
    """Change against the baseline (best version already published for this model)."""

    direction: Literal["higher_is_better", "lower_is_better"]
    absolute: float | None = None  # allowed change in the metric's units (e.g. -0.01 allows a small drop)
    relative: float | None = None  # allowed change as a fraction of the baseline value


@dataclasses.dataclass(frozen=True)
class ThresholdConfig:
    """One blessing rule on one metric: absolute bounds and/or change against the baseline."""

    metric: str
    lower: float | None = None
    upper: float | None = None
    change: ChangeThreshold | None = None


@dataclasses.dataclass(frozen=True)
class EvaluationConfig:
    """How a checkpoint's metrics are obtained and judged."""

    input_fn: ImportPath | None = None  # eval input_fn; called with input_fn_kwargs
    input_fn_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    steps: int | None = None  # None: until input_fn is exhausted
    source: Literal["evaluate", "logged"] = "evaluate"  # logged: read training's eval event files
    # With source logged: training's eval summaries, relative to model_dir (BestExporter's default).
    event_file_pattern: str = "eval/*.tfevents.*"
    thresholds: tuple[ThresholdConfig, ...] = ()  # none: every checkpoint is blessed, and says so


@dataclasses.dataclass(frozen=True)
class DiscoveryConfig:
    """Which new checkpoints a run takes."""

    policy: Literal["all_new", "latest", "every_nth"] = "all_new"
    every_n_steps: int | None = None  # with every_nth: take steps divisible by this
    max_per_run: int = 10
    # Where chosen checkpoints are pinned (hard links / server-side copies) while a run needs them;
    # default <model_dir>/.exportflow-leases, which needs write access to the trainer's folder. Set it
    # to keep that folder read-only; it must be on the model_dir's filesystem (refused otherwise) or bucket.
    lease_dir: str | None = None
    # Leases older than this are removed by discovery even when no dead process or ended run proves them
    # unused (a run on another host that died).
    lease_ttl_hours: float = 24.0


@dataclasses.dataclass(frozen=True)
class StrategyConfig:
    """One export strategy: its name (a directory and a task id), registered kind and parameters."""

    name: str
    kind: str
    params: dict[str, Any] = dataclasses.field(default_factory=dict)
    servable: str | None = None  # published under <destination>/<servable>/; default: the model name


MAX_WARMUP_RECORDS = 1000  # TF Serving fails the model load on the 1001st warmup record


@dataclasses.dataclass(frozen=True)
class WarmupConfig:
    """TF Serving warmup requests (``assets.extra/tf_serving_warmup_requests``) injected into each export.

    Every request is linted against the exported signatures and replayed on the loaded SavedModel before
    the export may be published. Only this config picks the source; a manual trigger cannot.
    """

    # examples: requests built from eval tf.Examples; file: the user's TFRecord of PredictionLog, copied
    # as is; json: TF Serving REST-style {"instances": [...]}, converted using the signature's inputs.
    source: Literal["none", "examples", "file", "json"] = "none"
    path: str | None = None  # examples: TFRecord of tf.Example; file: TFRecord of PredictionLog; json
    num_records: int = 100  # examples / json: requests to build (a file is used whole)
    # The request kind follows this signature's method: Predict, Classify or Regress.
    signature: str = "serving_default"
    truncate: bool = False  # more than 1000 records: truncate with a warning instead of failing
    # examples / json: two or more classify/regress signatures asked in one MultiInference request each
    heads: tuple[str, ...] = ()
    # Distributed exports: warmup always goes with the entry graph; these other graphs get their own,
    # built for the named signature: {graph name: signature name}. examples / json only.
    graphs: dict[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class DestinationConfig:
    """Where published versions go: ``<uri>/<servable>/<version>/`` (see components/publish/protocol.py).

    Credentials for ``gs://``: Application Default Credentials unless ``credentials_path`` names a
    service-account key file (its contents are never logged); the emulator (``STORAGE_EMULATOR_HOST``)
    is used anonymously.
    """

    uri: str
    keep: int = 5  # newest published versions kept by retention (best and pinned are kept too)
    pinned: tuple[int, ...] = ()  # versions retention never deletes
    project: str | None = None  # GCS project; default: the credentials' project
    credentials_path: str | None = None  # service-account key file; default: Application Default Credentials
    parallelism: int = 8  # concurrent transfers while publishing
    chunk_mib: int = 32  # resumable upload chunk size in MiB (so always a multiple of 256 KiB)
    timeout_s: float = 120.0  # seconds to wait for any one response from the store
    retry_deadline_s: float = 300.0  # seconds one request keeps retrying transient errors (never 401/403)
    hard_links: bool = True  # local destination on the export's filesystem: hard-link instead of copying
    # Local destination: flush every file to disk before the version can load (a machine crash cannot
    # leave one with empty files). false: as fast as cp without sync; a killed run is still safe.
    fsync: bool = True


@dataclasses.dataclass(frozen=True)
class StageTimeouts:
    """Execution timeout of each stage's task, in minutes."""

    discover: int = 10
    evaluate: int = 120
    export: int = 120
    warmup: int = 30
    publish: int = 120
    report: int = 10


@dataclasses.dataclass(frozen=True)
class AirflowConfig:
    """How the model's DAG is scheduled and run."""

    schedule: str | None = None  # cron ("0 * * * *"), preset ("@daily"), "asset" (after training) or null
    owner: str = "exportflow"
    tags: tuple[str, ...] = ()
    retries: int = 2  # for transient errors; a permanent error (bad config, corrupt checkpoint) fails at once
    retry_delay_seconds: int = 30  # first retry delay; doubles on each retry
    max_active_runs: int = 1
    pool: str | None = None  # an Airflow pool bounding memory-heavy TF tasks across DAGs
    max_active_tf_tasks: int = 1  # evaluate/export/warmup task instances at once within one run
    timeouts: StageTimeouts = StageTimeouts()
    runtime: Literal["in_process", "external_python"] = "in_process"  # where the TF stages run
    python: str | None = None  # the interpreter for runtime external_python (a venv with exportflow)
    gcp_conn_id: str | None = None  # Airflow connection for GCS (needs the `google` extra); else ADC
    # Where the model's tasks run, for a model whose runtime only some workers have (a Keras model):
    # the Celery queue those workers consume, and for the KubernetesExecutor the pod template whose
    # image has it (docker/kubernetes/pod_template_keras.yaml). None: the executor's defaults.
    queue: str | None = None
    pod_template_file: str | None = None
    # Wait (deferred, in the triggerer) up to this long for a new checkpoint before discovering; null: don't.
    wait_for_checkpoint_minutes: int | None = None
    wait_poll_seconds: int = 60  # how often the trigger looks while waiting


@dataclasses.dataclass(frozen=True)
class ServingConfig:
    """How TF Serving is told which versions to load (components/serving/). Default: as before."""

    # latest: no model server config is written; TF Serving serves the highest published version.
    # labels: exportflow owns a ModelServerConfig listing each servable's versions and version_labels
    # (stable, canary, ...), moved by `exportflow serving promote|rollback|unlabel|pin|unpin`.
    mode: Literal["latest", "labels"] = "latest"
    # The ModelServerConfig text proto TF Serving reads (--model_config_file); default
    # <destination.uri>/models.config. Entries for servables this model does not publish are kept.
    config_path: str | None = None
    publish_label: str | None = None  # label a fresh publication gets (e.g. canary); null: none
    approval: bool = False  # moving the `stable` label needs a person's approval (the DAG's HITL step)
    # TF Serving's REST address (http://host:8501); when set, a label moves only once
    # GET <status_url>/v1/models/<name> reports the version AVAILABLE.
    status_url: str | None = None
    # Without status_url: seconds to wait between listing a version and labelling it (at least TF
    # Serving's --model_config_file_poll_wait_seconds plus load time). With it: the most to wait.
    label_wait_seconds: float = 60.0


@dataclasses.dataclass(frozen=True)
class TensorSpecConfig:
    """One input of an endpoint's signature (a ``tf.TensorSpec``): ``null`` in shape is any size."""

    shape: tuple[int | None, ...]
    dtype: str = "float32"


@dataclasses.dataclass(frozen=True)
class KerasEndpointConfig:
    """One serving endpoint of a Keras export (``keras.export.ExportArchive.add_endpoint``)."""

    name: str
    # The model's method that answers: "call" is the forward pass (inference mode); another name is a
    # method of the model class taking the same inputs.
    method: str = "call"
    # Input name -> spec; empty: the model's own inputs (names, shapes and dtypes of its Input layers).
    input_signature: dict[str, TensorSpecConfig] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class KerasConfig:
    """A Keras 3 model (``framework: keras``): how its checkpoints are named and how it is rebuilt.

    Runs in the Keras runtime (TF >= 2.16), never in the Estimator runtime; see README "Keras 3 models".
    """

    # The checkpoint file names in model_dir, as ModelCheckpoint's filepath: one {epoch} or {step} field,
    # ending .weights.h5 (weights: needs builder) or .keras (a whole saved model per checkpoint).
    checkpoints: str
    builder: ImportPath | None = None  # function(**builder_kwargs) returning the keras.Model, compiled
    builder_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    # Endpoints to export; none: "serve", the model's call with its own inputs. The first is also
    # aliased serving_default (what TF Serving and warmup use unless warmup.signature says otherwise).
    endpoints: tuple[KerasEndpointConfig, ...] = ()


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    """One model's post-training pipeline."""

    name: str
    model_dir: str  # local path or gs:// URI holding the trainer's checkpoints
    destination: DestinationConfig
    strategies: tuple[StrategyConfig, ...]
    # estimator (TF 2.15, tf.estimator) or keras (Keras 3 on TF 2.21, in the Keras runtime: `keras:`).
    framework: Literal["estimator", "keras"] = "estimator"
    receivers: ReceiversConfig | None = None  # required for an Estimator; a Keras model has none
    keras: KerasConfig | None = None  # required with framework keras
    # The model, exactly one of: model_fn(features, labels, mode[, params][, config]) returning an
    # EstimatorSpec, or estimator(model_dir, config) returning a tf.estimator.Estimator (a canned one
    # such as LinearRegressor): called with a scratch model_dir and the matching tf.estimator.RunConfig.
    model_fn: ImportPath | None = None
    estimator: ImportPath | None = None
    params: dict[str, Any] = dataclasses.field(default_factory=dict)  # passed to model_fn (not to estimator)
    evaluation: EvaluationConfig = EvaluationConfig()
    discovery: DiscoveryConfig = DiscoveryConfig()
    warmup: WarmupConfig = WarmupConfig()
    airflow: AirflowConfig = AirflowConfig()
    serving: ServingConfig = ServingConfig()  # version labels and the model server config
    # Where export hands a version to warmup and publish: a URI of any registered storage scheme (a local
    # path, gs://bucket/prefix, ...), holding <strategy>/<version>/ until the version is published. Default:
    # <destination.uri>/.exportflow/<name>/staging (local destination: today's folder, hard links; gs://
    # destination: the same bucket, so every hand-over is a server-side copy). gs://other-bucket/x: a
    # separate bucket (same credentials as the destination). Staged versions are removed once published.
    staging: str | None = None
    # The old spelling of a LOCAL staging root: <staging_dir>/<name>/staging. Still read; prefer staging.
    staging_dir: str | None = None
    # Worker-local scratch, never handed over: TF's own writes (eval summaries, export temp folders) and the
    # download cache (objects by CRC32C, fetched once per worker). Default: <system temp>/exportflow/<name>;
    # with the default local staging (or staging_dir), beside it as before: <destination>/.exportflow/<name>.
    scratch_dir: str | None = None
    source: str = dataclasses.field(default="<memory>", compare=False)  # the file it came from
    source_text: str = dataclasses.field(default="", compare=False, repr=False)  # that file's text
