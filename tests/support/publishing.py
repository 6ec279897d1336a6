"""Helpers for the publish tests: synthetic exports (no TensorFlow needed), configs, and the invariant
every test checks at the destination — no loadable version with missing or wrong files."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

from components.artifacts import ExportArtifact
from components.config.loader import parse_config
from components.config.schema import PipelineConfig
from components.layout import BOOKKEEPING, GRAPH_FILES, MANIFEST_PATH
from components.publish.marker import CommitMarker
from components.publish.retention import VersionView
from components.publish.spec import PublishParams
from components.storage import Storage, crc32c_of_bytes
from tests.support.example_pipeline import example_config_dict

# A SavedModel-shaped folder: the graph, a sharded checkpoint as variables, assets, a warmup file.
DEFAULT_FILES = {
    "saved_model.pb": 40_000,
    "variables/variables.index": 2_000,
    "variables/variables.data-00000-of-00002": 300_000,
    "variables/variables.data-00001-of-00002": 200_000,
    "assets/vocab.txt": 5_000,
    "assets.extra/tf_serving_warmup_requests": 9_000,
}


def write_files(folder: Path, files: dict[str, int], seed: int) -> None:
    rng = random.Random(seed)
    for relative, size in files.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(size))


def make_export(
    root: Path,
    *,
    step: int = 300,
    files: dict[str, int] | None = None,
    graphs: tuple[str, ...] = (),
    seed: int = 0,
    checkpoint_uri: str | None = None,
    strategy: str = "all_modes",
) -> ExportArtifact:
    """A synthetic export of ``step`` under ``root`` (one folder per graph when ``graphs``)."""
    folder = root / f"export-{step}-{seed}"
    graph_dirs: dict[str, str] = {}
    if graphs:
        for i, graph in enumerate(graphs):
            write_files(folder / graph, files or DEFAULT_FILES, seed * 100 + i)
            graph_dirs[graph] = str(folder / graph)
    else:
        write_files(folder, files or DEFAULT_FILES, seed)
    return ExportArtifact(
        uri=str(folder),
        model_name="example",
        strategy=strategy,
        version=str(step),
        step=step,
        checkpoint_uri=checkpoint_uri or f"/nonexistent/model-{seed}/model.ckpt-{step}",  # another seed: another run
        signatures={"serve": ("serving_default",)},
        metrics={"auc": 0.5 + step / 10_000, "loss": 1.0 - step / 10_000},
        graphs=graph_dirs,
    )


def make_config(destination: str, base_dir: Path, **destination_fields: Any) -> PipelineConfig:
    """The example's export-and-publish config publishing to ``destination`` with ``destination_fields``
    (model code is named, never imported here), parsed."""
    data = example_config_dict(base_dir / "model", destination, merge={"destination": destination_fields})
    return parse_config(data, base_dir=base_dir)


def version_view(version: str, auc: float = 0.5) -> VersionView:
    """What retention reads of one published single-graph version whose marker records ``auc``."""
    marker = CommitMarker.from_dict({"graphs": [{"name": None}], "metrics": {"auc": auc}})
    return VersionView(version, (None,), (None,), marker)


def params_for(config: PipelineConfig, **kwargs: Any) -> PublishParams:
    return PublishParams(config, config.strategies[0], **kwargs)


def relative_objects(storage: Storage, root: str) -> dict[str, Any]:
    root = root.rstrip("/")
    return {info.uri[len(root) + 1 :]: info for info in storage.list(root)}


def loadable_versions(storage: Storage, base: str) -> list[str]:
    """Every folder under ``base`` (any depth) that holds saved_model.pb, as a path relative to base."""
    found = []
    for relative in relative_objects(storage, base):
        folder, _, name = relative.rpartition("/")
        if name in GRAPH_FILES and not folder.startswith(BOOKKEEPING):
            found.append(folder)
    return sorted(found)


def assert_nothing_partial_is_loadable(storage: Storage, base: str) -> list[str]:
    """Every version folder holding saved_model.pb holds every file its manifest lists, byte-exact."""
    loadable = loadable_versions(storage, base)
    for folder in loadable:
        root = storage.join(base, folder)
        objects = relative_objects(storage, root)
        assert MANIFEST_PATH in objects, f"{root} holds saved_model.pb but no manifest: {sorted(objects)}"
        manifest = json.loads(storage.read_bytes(storage.join(root, MANIFEST_PATH)))
        for entry in manifest["files"]:
            info = objects.get(entry["path"])
            assert info is not None, f"{root} holds saved_model.pb but lacks {entry['path']}"
            assert info.size == entry["size"], f"{root}/{entry['path']} has the wrong size"
            crc = info.crc32c or crc32c_of_bytes(storage.read_bytes(info.uri))
            assert crc == entry["crc32c"], f"{root}/{entry['path']} has the wrong crc32c"
        strays = [p for p in objects if os.path.basename(p).startswith(".tmp-")]
        assert not strays, f"{root} holds saved_model.pb beside temp files {strays}"
    return loadable


class FsyncRecorder:
    """Stands in for ``os.fsync`` (the only flush the local back-end uses): records which path each flush
    was for and whether ``watch`` existed at that moment, then flushes for real."""

    def __init__(self, monkeypatch: Any, watch: str) -> None:
        self.watch = watch
        self.calls: list[tuple[str, bool]] = []
        real = os.fsync

        def record(fd: int) -> None:
            self.calls.append((os.readlink(f"/proc/self/fd/{fd}"), os.path.exists(self.watch)))
            real(fd)

        monkeypatch.setattr(os, "fsync", record)

    def paths(self) -> list[str]:
        return [path for path, _ in self.calls]
