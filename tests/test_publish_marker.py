"""The typed commit marker reads and rewrites, byte for byte, the markers exportflow wrote before it was typed.

The two literals below were written by the publish protocol while the marker was still a dict (a set
published by the publish stage, and a single graph published through ``publish_version`` alone); only
the temporary paths and the run id were shortened. Existing destinations hold markers like these.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from components.publish.marker import CommitMarker, MarkedExport, MarkerFormatError, read_marker, write_marker
from components.storage import storage_for

WRITTEN_BY_THE_PUBLISH_STAGE = b"""{
 "blessed": true,
 "checkpoint": "/nonexistent/model/model.ckpt-300",
 "graphs": [
  {
   "bytes": 557076,
   "files": 7,
   "manifest_crc32c": "KH0M1A==",
   "name": "entry",
   "uri": "/tmp/published/example/entry/300"
  },
  {
   "bytes": 557076,
   "files": 7,
   "manifest_crc32c": "cQY8eg==",
   "name": "ps_0",
   "uri": "/tmp/published/example/ps_0/300"
  }
 ],
 "marker_version": 1,
 "metrics": {
  "auc": 0.53,
  "loss": 0.97
 },
 "model": "example",
 "published_at": "2026-12-01T16:19:42+00:00",
 "run": "vm:24539:b942a5fd1b89",
 "servable": "example",
 "step": 300,
 "strategy": "all_modes",
 "version": "300"
}"""

WRITTEN_BY_THE_PROTOCOL_ALONE = b"""{
 "graphs": [
  {
   "bytes": 557076,
   "files": 7,
   "manifest_crc32c": "KH0M1A==",
   "name": null,
   "uri": "/tmp/published/example/300"
  }
 ],
 "marker_version": 1,
 "published_at": "2026-12-01T16:19:45+00:00",
 "run": "vm:24801:8e16086a120b",
 "servable": "example",
 "version": "300"
}"""


def test_a_marker_written_by_the_publish_stage_reads_typed_and_rewrites_byte_for_byte() -> None:
    marker = CommitMarker.from_json(WRITTEN_BY_THE_PUBLISH_STAGE)
    assert marker.graph_names == ("entry", "ps_0")
    assert marker.content == {"entry": "KH0M1A==", "ps_0": "cQY8eg=="}
    assert marker.export == MarkedExport(
        model="example",
        strategy="all_modes",
        step=300,
        checkpoint="/nonexistent/model/model.ckpt-300",
        metrics={"auc": 0.53, "loss": 0.97},
        blessed=True,
    )
    assert marker.to_json() == WRITTEN_BY_THE_PUBLISH_STAGE


def test_a_marker_without_export_facts_reads_and_rewrites_byte_for_byte() -> None:
    marker = CommitMarker.from_json(WRITTEN_BY_THE_PROTOCOL_ALONE)
    assert marker.graph_names == (None,) and marker.export is None and marker.metrics == {}
    assert marker.graphs[0].total_bytes == 557076 and marker.graphs[0].files == 7
    assert marker.to_json() == WRITTEN_BY_THE_PROTOCOL_ALONE


def test_keys_a_newer_exportflow_adds_survive_a_rewrite() -> None:
    newer = WRITTEN_BY_THE_PROTOCOL_ALONE.replace(b' "servable": "example",', b' "servable": "example",\n "serving": "v2",')
    marker = CommitMarker.from_json(newer)
    assert marker.extra == {"serving": "v2"}
    assert marker.to_json() == newer


def test_the_marker_on_storage_round_trips_through_write_and_read(tmp_path: Path) -> None:
    storage = storage_for(str(tmp_path))
    uri = storage.join(str(tmp_path), "example", ".exportflow", "300.published.json")
    marker = CommitMarker.from_json(WRITTEN_BY_THE_PUBLISH_STAGE)
    write_marker(storage, uri, marker)
    write_marker(storage, uri, marker)  # a repaired version's marker replaces the one found
    assert storage.read_bytes(uri) == WRITTEN_BY_THE_PUBLISH_STAGE
    assert read_marker(storage, uri) == marker


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "a JSON list, not an object"),
        (b'{"graphs": [5]}', "not a commit marker"),
        (b'{"metrics": [0.5]}', "metrics is list, not an object"),
    ],
)
def test_an_unreadable_marker_counts_as_unpublished_and_says_why(
    data: bytes, why: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(MarkerFormatError, match=why):
        CommitMarker.from_json(data)
    storage = storage_for(str(tmp_path))
    uri = storage.join(str(tmp_path), "300.published.json")
    storage.write_bytes(uri, data)
    with caplog.at_level(logging.WARNING):
        assert read_marker(storage, uri) is None
    assert "treating the version as unpublished" in caplog.text and why in caplog.text
