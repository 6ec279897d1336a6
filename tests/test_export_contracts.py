"""Export contracts that need no trained model: ExportStrategy, exporter arguments, names, assets_extra,
the retention helper, strategy options, the registry (with real entry points) and the ExportContext."""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from components.artifacts import CheckpointArtifact, EvaluationArtifact, ExportArtifact
from components.export.compat.export_context import (
    ExportContext,
    ExportMode,
    enter_export_mode,
    get_current_export_ctx,
    is_exporting,
    is_exporting_distributed,
    is_exporting_standalone,
    shard_rows,
)
from components.export.compat.export_strategy import ExportStrategy
from components.export.compat.exporters import (
    BestExporter,
    Exporter,
    FinalExporter,
    LatestExporter,
    loss_smaller,
    metric_compare_fn,
)
from components.export.errors import (
    ExportContextError,
    ExportContractError,
    ExportError,
    InvalidNameError,
    StrategyConfigError,
    StrategyRegistryError,
    UnknownStrategyError,
    UnsafeAssetPathError,
)
from components.export.savedmodel.assets import copy_assets_extra, normalize_assets_extra
from components.export.savedmodel.folder_names import validate_name, validate_version
from components.export.strategies import ENTRY_POINT_GROUP, PipelineStrategy, create_strategy, known_kinds
from components.export.strategies.adapter import ExportStrategyAdapter
from components.export.strategies.exporter_kinds import ledger_best
from components.export.strategies.options import (
    AllModesOptions,
    BestOptions,
    DistributedOptions,
    parse_options,
)
from components.ledger import CheckpointRecord, LedgerState
from components.ledger.schema import BestRecord
from components.version_folders import prune_export_versions, temp_dir_name, version_dirs


def receiver():  # a stand-in serving_input_receiver_fn; never called in this module
    raise AssertionError("not called")


# ------------------------------------------------------------------------------------------------
# ExportStrategy(name, export_fn)


def fn2(estimator, export_path):
    return os.path.join(export_path, "v2")


def fn3(estimator, export_path, checkpoint_path):
    return os.path.join(export_path, f"v3-{checkpoint_path}")


def test_export_strategy_is_an_immutable_pair_in_field_order():
    strategy = ExportStrategy("latest", fn2)
    assert strategy._fields == ("name", "export_fn")
    name, export_fn = strategy
    assert (name, export_fn) == ("latest", fn2)
    assert strategy == ExportStrategy(name="latest", export_fn=fn2)
    with pytest.raises(AttributeError):
        strategy.name = "other"
    renamed = strategy._replace(name="other")
    assert renamed.name == "other" and strategy.name == "latest"
    with pytest.raises(InvalidNameError):
        strategy._replace(name="../escape")


@pytest.mark.parametrize(
    "export_fn",
    [
        lambda estimator, export_path: "a",
        lambda estimator, export_path, checkpoint_path: "b",
        lambda estimator, export_path, checkpoint_path, eval_result: "c",
        lambda estimator, export_path, checkpoint_path=None: "d",
        functools.partial(lambda unit, estimator, export_path: unit, "e"),
    ],
)
def test_export_fn_with_two_three_or_four_arguments_is_accepted(export_fn):
    assert ExportStrategy("ok", export_fn).export_fn is export_fn


class _Bound:
    def export(self, estimator, export_path, checkpoint_path):
        return f"{export_path}/bound-{checkpoint_path}"


@pytest.mark.parametrize(
    ("export_fn", "match"),
    [
        (lambda estimator: "x", "must accept"),
        (lambda a, b, c, d, e: "x", "must accept"),
        (lambda estimator, export_path, *rest: "x", r"takes \*rest"),
        (lambda estimator, export_path, *, flavour: "x", "must accept"),
        ("not a function", "must be callable"),
        (None, "must be callable"),
    ],
)
def test_export_fn_with_another_signature_is_a_value_error_at_construction(export_fn, match):
    with pytest.raises(ValueError, match=match):
        ExportStrategy("bad", export_fn)


@pytest.mark.parametrize(
    "name", ["", "a/b", "..", "../up", ".hidden", "123", "has space", "x" * 129, None, 7]
)
def test_export_strategy_name_must_be_a_directory_name(name):
    with pytest.raises(InvalidNameError) as caught:
        ExportStrategy(name, fn2)
    assert isinstance(caught.value, ValueError)


def test_export_passes_only_the_arguments_the_function_accepts():
    calls = []

    def fn4(estimator, export_path, checkpoint_path, eval_result):
        calls.append((estimator, export_path, checkpoint_path, eval_result))
        return export_path.encode() + b"/4"

    assert ExportStrategy("two", fn2).export("est", "/base", "/ckpt-1", {"loss": 1.0}) == "/base/v2"
    assert ExportStrategy("three", fn3).export("est", "/base", "ckpt") == "/base/v3-ckpt"
    assert ExportStrategy("three", fn3).export("est", Path("/base")) == "/base/v3-None"
    assert ExportStrategy("bound", _Bound().export).export("est", "/b", "c") == "/b/bound-c"
    assert ExportStrategy("four", fn4).export("est", "/base", "/ckpt-2", {"loss": 0.5}) == "/base/4"
    assert calls == [("est", "/base", "/ckpt-2", {"loss": 0.5})]


def test_eval_result_without_checkpoint_path_is_a_value_error():
    called = []
    strategy = ExportStrategy("four", lambda e, p, c, r: called.append(1))
    with pytest.raises(ValueError, match="eval_result was given without checkpoint_path"):
        strategy.export("est", "/base", None, {"loss": 1.0})
    assert called == []


def test_export_fn_results_become_path_strings_or_none():
    assert ExportStrategy("p", lambda e, p: Path(p) / "1").export(None, "/x") == "/x/1"
    assert ExportStrategy("n", lambda e, p: None).export(None, "/x") is None
    with pytest.raises(ExportError, match="returned int"):
        ExportStrategy("i", lambda e, p: 3).export(None, "/x")


# ------------------------------------------------------------------------------------------------
# Names and versions


def test_validate_name_and_version():
    assert validate_name("serving.latest-v2_x") == "serving.latest-v2_x"
    with pytest.raises(InvalidNameError, match="all digits"):
        validate_name("42")
    with pytest.raises(InvalidNameError, match="cannot be a directory"):
        validate_name("a..b")
    assert validate_version(300) == "300"
    assert validate_version("007") == "7"
    for bad in ("-1", "1.5", "v1", ""):
        with pytest.raises(InvalidNameError):
            validate_version(bad)


# ------------------------------------------------------------------------------------------------
# Exporter arguments (checked at construction, as tf.estimator does)


def test_exporter_is_a_real_abc():
    """An exporter that forgets ``export`` is refused when it is built, naming the method, not when a run
    first calls it (tf.estimator's Exporter declares its abstract methods without ABCMeta)."""

    class Incomplete(Exporter):
        @property
        def name(self):
            return "x"

    with pytest.raises(TypeError, match=r"Incomplete .*abstract method.*\bexport\b"):
        Incomplete()

    class Complete(Incomplete):
        def export(self, estimator, export_path, checkpoint_path, eval_result, is_the_final_export):
            return export_path

    assert Complete().export(None, "/e", "/c", None, True) == "/e"


@pytest.mark.parametrize("keep", [0, -1, "5", True, 2.5])
def test_exports_to_keep_must_be_positive(keep):
    with pytest.raises(ValueError, match="exports_to_keep"):
        LatestExporter("latest", receiver, exports_to_keep=keep)
    with pytest.raises(ValueError, match="exports_to_keep"):
        BestExporter("best", receiver, exports_to_keep=keep)


def test_exporter_argument_errors():
    assert LatestExporter("latest", receiver, exports_to_keep=None).exports_to_keep is None
    with pytest.raises(ValueError, match="serving_input_receiver_fn must be a function"):
        FinalExporter("final", None)
    with pytest.raises(ValueError, match="serving_input_receiver_fn must be a function"):
        BestExporter()  # tf.estimator's defaults leave the receiver out
    with pytest.raises(InvalidNameError):
        FinalExporter("final/../x", receiver)
    with pytest.raises(ValueError, match="best_eval_result and current_eval_result"):
        BestExporter("best", receiver, compare_fn=lambda a, b: True)
    with pytest.raises(ValueError, match="compare_fn must be callable"):
        BestExporter("best", receiver, compare_fn="loss")
    with pytest.raises(UnsafeAssetPathError):
        FinalExporter("final", receiver, assets_extra={"/etc/x": __file__})


def test_loss_smaller_and_metric_compare_fn():
    assert loss_smaller({"loss": 2.0}, {"loss": 1.0}) is True
    assert loss_smaller({"loss": 1.0}, {"loss": 1.0}) is False
    with pytest.raises(ValueError, match="best_eval_result"):
        loss_smaller({}, {"loss": 1.0})
    with pytest.raises(ValueError, match="current_eval_result"):
        loss_smaller({"loss": 1.0}, {"auc": 1.0})
    higher_auc = metric_compare_fn("auc", "higher_is_better")
    assert higher_auc(best_eval_result={"auc": 0.7}, current_eval_result={"auc": 0.8}) is True
    assert higher_auc(best_eval_result={"auc": 0.8}, current_eval_result={"auc": 0.7}) is False
    with pytest.raises(ValueError, match="direction"):
        metric_compare_fn("auc", "up")


def test_best_exporter_compares_with_the_best_so_far_source():
    ledger = {"best": None}
    best = BestExporter("best", receiver, best_so_far=lambda: ledger["best"])
    assert best.is_better({"loss": 5.0}) == (True, "no earlier export to compare with")  # first call exports
    ledger["best"] = {"loss": 1.0}
    better, reason = best.is_better({"loss": 2.0})
    assert not better and "loss=1" in reason
    assert best.is_better({"loss": 0.5})[0]
    with pytest.raises(ValueError, match="needs the checkpoint's eval_result"):
        best.is_better(None)
    with pytest.raises(ValueError, match="best_so_far must be a function"):
        BestExporter("best", receiver, best_so_far={"loss": 1.0})


def _record(step: int, loss: float, exported_by: tuple[str, ...] = (), published_by: tuple[str, ...] = ()):
    checkpoint = CheckpointArtifact(uri=f"/m/model.ckpt-{step}", model_name="m", step=step)
    evaluation = EvaluationArtifact(
        uri=checkpoint.uri, checkpoint=checkpoint, metrics={"loss": loss}, blessed=True
    )
    exports = {
        s: ExportArtifact(
            uri=f"/s/{s}/{step}",
            model_name="m",
            strategy=s,
            version=str(step),
            step=step,
            checkpoint_uri=checkpoint.uri,
            metrics={"loss": loss},
        )
        for s in exported_by
    }
    return CheckpointRecord(step=step, uri=checkpoint.uri, evaluation=evaluation, exports=exports)


def test_ledger_best_reads_only_this_strategys_exports():
    state = LedgerState(model="m")
    for record in (
        _record(100, 0.9, ("best",)),
        _record(200, 0.3, ("latest",)),
        _record(300, 0.5, ("best",)),
    ):
        state = state.with_record(record)
    assert ledger_best(state, "best", loss_smaller) == {"loss": 0.5}
    assert ledger_best(state, "best", loss_smaller, exclude_step=300) == {"loss": 0.9}
    assert ledger_best(state, "latest", loss_smaller) == {"loss": 0.3}
    assert ledger_best(state, "final", loss_smaller) is None
    assert ledger_best(LedgerState(model="m"), "best", loss_smaller) is None
    assert ledger_best(object(), "best", loss_smaller) is None  # tolerant of a ledger it does not know
    # A record the ledger marks as this strategy's best counts even when its export entry is gone.
    pruned = state.with_record(_record(50, 0.1))
    assert ledger_best(pruned, "best", loss_smaller) == {"loss": 0.5}
    marked = dataclasses.replace(pruned, best={"best": BestRecord(step=50, version="50")})
    assert ledger_best(marked, "best", loss_smaller) == {"loss": 0.1}


# ------------------------------------------------------------------------------------------------
# assets_extra


def test_assets_extra_keys_are_validated(tmp_path):
    source = tmp_path / "vocab.txt"
    source.write_text("a\nb\n")
    assert normalize_assets_extra({"vocab/./ids.txt": str(source)}) == {"vocab/ids.txt": str(source)}
    assert normalize_assets_extra(None) == {}
    bad = {
        "/etc/passwd": "is absolute",
        "../outside.txt": "climbs out",
        "a/../../b": "climbs out",
        "": "non-empty",
        "./": "names no file",
        "C:\\x": "is absolute",
    }
    for key, match in bad.items():
        with pytest.raises(UnsafeAssetPathError, match=match):
            normalize_assets_extra({key: str(source)})
    with pytest.raises(UnsafeAssetPathError, match="both name 'a/b'"):
        normalize_assets_extra({"a/b": str(source), "a//b": str(source)})
    with pytest.raises(UnsafeAssetPathError, match="not an existing file"):
        normalize_assets_extra({"x": str(tmp_path / "missing")})
    with pytest.raises(UnsafeAssetPathError, match="mapping"):
        normalize_assets_extra(["x"])


def test_assets_extra_copies_and_refuses_symlink_escapes(tmp_path):
    source = tmp_path / "vocab.txt"
    source.write_text("tokens")
    export_dir = tmp_path / "export"
    assert copy_assets_extra(str(export_dir), {"nested/vocab.txt": str(source)}) == ["nested/vocab.txt"]
    assert (export_dir / "assets.extra" / "nested" / "vocab.txt").read_text() == "tokens"

    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, export_dir / "assets.extra" / "link")
    with pytest.raises(UnsafeAssetPathError, match="resolves through a symlink"):
        copy_assets_extra(str(export_dir), {"link/evil.txt": str(source)})
    assert list(outside.iterdir()) == []
    os.symlink(outside / "target.txt", export_dir / "assets.extra" / "file-link")
    with pytest.raises(UnsafeAssetPathError, match="existing symlink"):
        copy_assets_extra(str(export_dir), {"file-link": str(source)})
    assert list(outside.iterdir()) == []


# ------------------------------------------------------------------------------------------------
# Retention: versions and crashed temp folders, one helper


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_retention_keeps_the_newest_versions_by_number(tmp_path):
    for version in ("9", "10", "100", "1700000000", "2"):
        (tmp_path / version).mkdir()
    (tmp_path / "not-a-version").mkdir()
    (tmp_path / "12345").write_text("a file, not a version")
    assert version_dirs(str(tmp_path)) == ["2", "9", "10", "100", "1700000000"]
    result = prune_export_versions(str(tmp_path), 2, protect={"9"})
    assert result.removed_versions == ("2", "10")
    assert sorted(os.listdir(tmp_path)) == ["100", "12345", "1700000000", "9", "not-a-version"]
    assert prune_export_versions(str(tmp_path), None).removed_versions == ()
    with pytest.raises(ValueError, match="positive"):
        prune_export_versions(str(tmp_path), 0)
    assert prune_export_versions(str(tmp_path / "missing"), 3).kept == ()


def test_retention_removes_crashed_temp_dirs_only(tmp_path):
    crashed = tmp_path / f".tmp-300-{_dead_pid()}@{socket.gethostname()}"  # this host, its process gone
    ours = tmp_path / temp_dir_name("400")  # this process: still being written
    old_tf = tmp_path / "temp-1600000000"
    fresh_tf = tmp_path / "temp-1700000000"
    old_unknown = tmp_path / ".tmp-something"
    for folder in (crashed, ours, old_tf, fresh_tf, old_unknown):
        folder.mkdir()
        (folder / "saved_model.pb").write_bytes(b"partial")
    now = time.time()
    os.utime(old_tf, (now - 7200, now - 7200))
    os.utime(old_unknown, (now - 7200, now - 7200))
    result = prune_export_versions(str(tmp_path), stale_after=3600, now=now)
    assert sorted(result.removed_temp_dirs) == sorted([crashed.name, old_tf.name, old_unknown.name])
    assert sorted(os.listdir(tmp_path)) == sorted([ours.name, fresh_tf.name])


# ------------------------------------------------------------------------------------------------
# Strategy options and the registry


def test_options_parse_and_reject_bad_params():
    options = parse_options(AllModesOptions, {"layout": "per_mode", "modes": ["train", "predict"]}, "am")
    assert options.layout == "per_mode" and options.modes == ("train", "predict") and options.verify == "full"
    assert parse_options(BestOptions, {}, "b").exports_to_keep == 5
    assert parse_options(DistributedOptions, {"include_graphs": ["entry"]}, "d").include_graphs == ("entry",)
    cases = [
        (AllModesOptions, {"layuot": "combined"}, r"unknown parameter\(s\) \['layuot'\]"),
        (AllModesOptions, {"layout": "sideways"}, "must be one of"),
        (AllModesOptions, {"by_reference": "yes"}, "true or false"),
        (BestOptions, {"exports_to_keep": 0}, "positive integer"),
        (BestOptions, {"exports_to_keep": True}, "positive integer"),
        (AllModesOptions, {"modes": "train"}, "list of strings"),
        (AllModesOptions, {"assets_extra": ["x"]}, "mapping"),
    ]
    for cls, params, match in cases:
        with pytest.raises(StrategyConfigError, match=match):
            parse_options(cls, params, "s")


def test_unknown_kind_lists_the_known_ones():
    with pytest.raises(UnknownStrategyError) as caught:
        create_strategy("newest", "s", {})
    message = str(caught.value)
    for kind in ("all_modes", "final", "latest", "best", "standalone", "distributed", "custom"):
        assert kind in message
    assert isinstance(caught.value, ValueError)


def test_builtin_kinds_build_with_their_options():
    for kind in ("all_modes", "final", "latest", "best", "standalone", "distributed"):
        strategy = create_strategy(kind, f"s-{kind}", {"verify": "graph"})
        assert isinstance(strategy, PipelineStrategy) and strategy.verify == "graph"
    assert create_strategy("latest", "l", {}).exports_to_keep == 5
    assert create_strategy("best", "b", {"exports_to_keep": 2}).exports_to_keep == 2
    assert create_strategy("all_modes", "a", {"version": "timestamp"}).version_scheme == "timestamp"
    with pytest.raises(StrategyConfigError, match="needs params.target"):
        create_strategy("custom", "c", {})
    with pytest.raises(StrategyConfigError, match="neither an ExportStrategy nor an Exporter"):
        create_strategy("custom", "c", {"target": "os:getcwd"})
    with pytest.raises(StrategyConfigError, match="factory os.path:join failed with target_kwargs"):
        create_strategy("custom", "c", {"target": "os.path:join", "target_kwargs": {"b": "x"}})


PLUGIN = textwrap.dedent(
    """
    from components.export.compat.export_strategy import ExportStrategy
    from components.export.compat.exporters import LatestExporter
    from components.export.strategies.base import PipelineStrategy

    class Mine(PipelineStrategy):
        def write(self, ctx, export_dir):
            raise NotImplementedError

    def _fn(estimator, export_path):
        return export_path

    contrib_strategy = ExportStrategy("contrib", _fn)

    def make(name, params):
        return LatestExporter(name, lambda: None, exports_to_keep=params.get("keep", 3))

    def make_nothing(name, params):
        return 42
    """
)


def _distribution(root: Path, dist: str, entries: dict[str, str]) -> None:
    info = root / f"{dist}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    lines = "\n".join(f"{name} = {value}" for name, value in entries.items())
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{lines}\n")


@pytest.fixture
def plugins(tmp_path, monkeypatch):
    """Two real distributions on sys.path registering strategy kinds (some colliding)."""
    (tmp_path / "exportflow_test_plugin.py").write_text(PLUGIN)
    _distribution(
        tmp_path,
        "plugin_one",
        {
            "mine": "exportflow_test_plugin:Mine",
            "contrib": "exportflow_test_plugin:contrib_strategy",
            "factory": "exportflow_test_plugin:make",
            "useless": "exportflow_test_plugin:make_nothing",
            "broken": "exportflow_test_plugin_missing:thing",
            "latest": "exportflow_test_plugin:Mine",
            "twice": "exportflow_test_plugin:Mine",
        },
    )
    _distribution(tmp_path, "plugin_two", {"twice": "exportflow_test_plugin:make"})
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    sys.modules.pop("exportflow_test_plugin", None)


def test_entry_points_register_strategies_and_adapt_contrib_objects(plugins):
    kinds = known_kinds()
    assert kinds["mine"] == ["plugin_one: exportflow_test_plugin:Mine"]
    mine = create_strategy("mine", "my-strategy", {"anything": 1})
    assert type(mine).__name__ == "Mine" and mine.name == "my-strategy" and mine.params == {"anything": 1}
    contrib = create_strategy("contrib", "contrib-export", {})
    assert isinstance(contrib, ExportStrategyAdapter) and isinstance(contrib.target, ExportStrategy)
    factory = create_strategy("factory", "from-factory", {"verify": "graph"})
    assert isinstance(factory.target, LatestExporter) and factory.verify == "graph"
    with pytest.raises(StrategyConfigError, match="unknown parameter"):
        create_strategy("contrib", "c", {"keep": 3})  # the adapter validates its own options
    with pytest.raises(StrategyConfigError, match=r"unknown parameter\(s\) \['by_reference'\]"):
        create_strategy("contrib", "c", {"by_reference": True})  # the user's code writes the variables


def test_entry_point_collisions_and_failures_are_errors_naming_the_providers(plugins):
    with pytest.raises(
        StrategyRegistryError,
        match=r"'latest' is registered by more than one provider: \['built-in', 'plugin_one",
    ):
        create_strategy("latest", "l", {})
    with pytest.raises(StrategyRegistryError, match="plugin_one.*plugin_two|plugin_two.*plugin_one"):
        create_strategy("twice", "t", {})
    with pytest.raises(StrategyRegistryError, match="does not load: ModuleNotFoundError"):
        create_strategy("broken", "b", {})
    with pytest.raises(StrategyRegistryError, match="resolves to int"):
        create_strategy("useless", "u", {})
    assert isinstance(create_strategy("all_modes", "a", {}), PipelineStrategy)  # other kinds unaffected


# ------------------------------------------------------------------------------------------------
# ExportContext


def test_export_mode_flags_and_context():
    assert not is_exporting() and get_current_export_ctx() is None
    mine = ExportContext(with_remote_gpu=True)
    with enter_export_mode(ExportMode.DISTRIBUTED, mine) as ctx:
        assert ctx is mine and get_current_export_ctx() is mine and ctx.with_remote_gpu
        assert is_exporting() and is_exporting_distributed() and not is_exporting_standalone()
    with enter_export_mode(ExportMode.STANDALONE) as ctx:
        assert isinstance(ctx, ExportContext) and ctx is not mine
        assert is_exporting_standalone() and not is_exporting_distributed()
    assert not is_exporting() and get_current_export_ctx() is None


def test_export_modes_do_not_nest_and_reset_after_errors():
    with enter_export_mode(ExportMode.STANDALONE):
        with (
            pytest.raises(ExportContextError, match="cannot be nested"),
            enter_export_mode(ExportMode.DISTRIBUTED),
        ):
            pass
        assert is_exporting_standalone()
    with pytest.raises(RuntimeError), enter_export_mode(ExportMode.STANDALONE):
        raise RuntimeError("model_fn failed")
    assert not is_exporting()
    with (
        pytest.raises(ExportContextError, match="STANDALONE or ExportMode.DISTRIBUTED"),
        enter_export_mode(ExportMode.NONE),
    ):
        pass


def test_export_mode_is_per_thread():
    seen = []
    inside = threading.Event()
    release = threading.Event()

    def other_thread():
        inside.wait()
        seen.append((is_exporting(), get_current_export_ctx()))
        release.set()

    thread = threading.Thread(target=other_thread)
    thread.start()
    with enter_export_mode(ExportMode.DISTRIBUTED):
        inside.set()
        release.wait(timeout=30)
    thread.join()
    assert seen == [(False, None)]


def test_context_collects_sub_graphs_and_signatures():
    import tensorflow as tf

    ctx = ExportContext()
    ps0 = ctx.sub_graph("ps_0")
    assert ctx.sub_graph("ps_0") is ps0 and ctx.sub_graph_num == 1
    dense = ctx.dense_sub_graph("dense_tower")
    assert set(ctx.sub_graphs) == {"ps_0"} and set(ctx.dense_sub_graphs) == {"dense_tower"}
    with ps0.as_default():
        ids = tf.compat.v1.placeholder(tf.int64, [None])
        rows = tf.identity(ids)
    ctx.add_signature(ps0, "lookup", {"ids": ids}, {"rows": rows})
    with pytest.raises(ExportContextError, match="merge_signature"):
        ctx.add_signature(ps0, "lookup", {"ids": ids}, {"rows": rows})
    ctx.merge_signature(ps0, "lookup", {}, {"again": rows})
    assert [(s.name, sorted(s.outputs)) for s in ctx.signatures(ps0)] == [("lookup", ["again", "rows"])]
    with pytest.raises(ExportContextError, match="bound to other tensors"):
        ctx.merge_signature(ps0, "lookup", {"ids": rows}, {})
    assert ctx.signatures(dense) == []
    with pytest.raises(ExportContextError, match="unique across"):
        ctx.dense_sub_graph("ps_0")
    with pytest.raises(ExportContextError, match="entry graph"):
        ctx.sub_graph("entry")
    with pytest.raises(InvalidNameError):
        ctx.sub_graph("../ps")


def test_shard_rows_cover_the_vocabulary():
    assert shard_rows(10, 4) == [3, 3, 2, 2]
    assert sum(shard_rows(1000, 4)) == 1000 and shard_rows(1, 1) == [1]


@pytest.mark.parametrize(
    ("error", "bad_call"),
    [
        (ExportContractError, lambda: ExportStrategy("bad", "not a function")),
        (InvalidNameError, lambda: FinalExporter("final/../x", receiver)),
        (UnsafeAssetPathError, lambda: FinalExporter("final", receiver, assets_extra={"/etc/x": __file__})),
        (StrategyConfigError, lambda: create_strategy("custom", "c", {})),
    ],
    ids=lambda value: value.__name__ if isinstance(value, type) else "",
)
def test_exporter_contract_errors_are_value_errors(error, bad_call):
    """Code written against tf.estimator catches bad exporter arguments as ValueError; it still catches ours."""
    with pytest.raises(ValueError) as caught:
        bad_call()
    assert isinstance(caught.value, error) and isinstance(caught.value, ExportError)


def test_creating_a_well_formed_strategy_logs_no_warning(caplog):
    # Creating a strategy logs nothing at warning level for a well-formed config.
    with caplog.at_level(logging.WARNING):
        create_strategy("final", "final", {"max_steps": 300})
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
