"""The one multi-graph layout (components/layout.py): names users' folders already hold, the order graphs
move in, and the library's move of a set kept together into its served form."""

from __future__ import annotations

from pathlib import Path

import pytest

from components.export.errors import VerificationError
from components.export.savedmodel.verify import read_set_document, read_set_manifest, write_set_document
from components.export.savedmodel.versions import publish_set_by_graph
from components.layout import (
    SET_MANIFEST,
    building_path,
    graph_order,
    library_set_path,
    lock_path,
    marker_path,
    served_path,
    set_document,
    staged_marker_path,
    version_of,
)


def test_on_disk_names_stay_what_existing_folders_hold() -> None:
    assert served_path("300", "ps_0") == "ps_0/300" and served_path("300", None) == "300"
    assert library_set_path("300") == "export_sets/300.json"
    assert marker_path("300") == ".exportflow/300.published.json"
    assert lock_path("300") == ".exportflow/300.lease.json"
    assert staged_marker_path("300") == ".exportflow/300.staged.json"
    assert building_path("300", "ps_0") == ".exportflow/building/ps_0/300"
    assert building_path("300", None) == ".exportflow/building/300"
    assert version_of("300.lease.json", ".lease.json") == "300" and version_of("300.staged.json", ".lease.json") is None


def test_the_graph_serving_calls_first_moves_last() -> None:
    assert graph_order(["ps_1", "entry", "ps_0", "dense_tower"]) == ["dense_tower", "ps_0", "ps_1", "entry"]
    assert graph_order(["train", "predict", "eval"], last=("predict",)) == ["eval", "train", "predict"]
    assert graph_order(["ps_0", "ps_1"]) == ["ps_0", "ps_1"]  # include_graphs left the entry graph out
    assert graph_order([None]) == [None]


def _kept_together(folder: Path, version: str, graphs: list[str]) -> Path:
    """A set as a writer leaves it: ``<version>/<graph>/saved_model.pb`` and ``export_set.json``."""
    root = folder / version
    for graph in graphs:
        (root / graph).mkdir(parents=True)
        (root / graph / "saved_model.pb").write_bytes(graph.encode())
    entries = {g: {"path": g, "signatures": {"serve": [f"lookup_{g}"]}} for g in graphs}
    write_set_document(str(root / SET_MANIFEST), set_document("distributed", version, entries, {"remote_lookups": []}))
    return root


def test_the_library_moves_each_graph_to_its_served_path_and_merges_the_set_documents(tmp_path: Path) -> None:
    base = tmp_path / "exports"
    first = publish_set_by_graph(str(base), "300", str(_kept_together(tmp_path / "a", "300", ["entry", "ps_0"])), last=("entry",))
    assert first == {g: str(base / served_path("300", g)) for g in ("entry", "ps_0")}
    assert (base / "ps_0" / "300" / "saved_model.pb").read_bytes() == b"ps_0"
    # a second exporter of the same version (include_graphs=["ps_1"]) adds its graph to the same document
    publish_set_by_graph(str(base), "300", str(_kept_together(tmp_path / "b", "300", ["ps_1"])))
    document = read_set_document(str(base / library_set_path("300")))
    assert document is not None and sorted(document["graphs"]) == ["entry", "ps_0", "ps_1"]
    assert document["layout"] == "distributed" and document["version"] == "300"
    assert not (tmp_path / "a" / "300").exists() and not (tmp_path / "b" / "300").exists()


def test_one_reader_for_both_places_of_the_set_document_refuses_foreign_files(tmp_path: Path) -> None:
    (tmp_path / "export_sets").mkdir()
    foreign = tmp_path / "export_sets" / "300.json"
    foreign.write_text('{"graphs": {}}')  # no format: not ours
    with pytest.raises(VerificationError, match="not an exportflow.export_set/1 manifest"):
        read_set_document(str(foreign))
    (tmp_path / SET_MANIFEST).write_text("[1, 2]")
    with pytest.raises(VerificationError, match="not an exportflow.export_set/1 manifest"):
        read_set_manifest(str(tmp_path))
    assert read_set_document(str(tmp_path / "export_sets" / "400.json")) is None
