"""Where staging and scratch are, for each way a config can say it (and old configs keep their place)."""

from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path

from components.paths import scratch_dir, staging_dir, staging_root, work_dir


def test_default_staging_follows_the_destination(make_config, trained_model, tmp_path: Path) -> None:
    local = make_config(trained_model, tmp_path / "published")
    assert staging_dir(local, "all_modes") == str(tmp_path / "published" / ".exportflow" / "example" / "staging" / "all_modes")
    assert work_dir(local, "eval") == str(tmp_path / "published" / ".exportflow" / "example" / "work" / "eval")

    on_gcs = dataclasses.replace(local, destination=dataclasses.replace(local.destination, uri="gs://bucket/models/"))
    assert staging_root(on_gcs) == "gs://bucket/models/.exportflow/example/staging"  # not the worker's temp folder
    assert staging_dir(on_gcs, "all_modes") == "gs://bucket/models/.exportflow/example/staging/all_modes"
    assert scratch_dir(on_gcs) == os.path.join(tempfile.gettempdir(), "exportflow", "example")


def test_staging_key_its_old_spelling_and_scratch_dir(make_config, trained_model, tmp_path: Path) -> None:
    separate = make_config(trained_model, tmp_path / "published", staging="gs://other-bucket/x/", scratch_dir="scratch")
    assert staging_dir(separate, "final") == "gs://other-bucket/x/final"
    assert scratch_dir(separate) == str(tmp_path / "configs" / "scratch")  # relative to the config file

    old = make_config(trained_model, tmp_path / "published", staging_dir=str(tmp_path / "old"))
    assert staging_dir(old, "final") == str(tmp_path / "old" / "example" / "staging" / "final")
    assert work_dir(old, "eval") == str(tmp_path / "old" / "example" / "work" / "eval")

    local_uri = make_config(trained_model, tmp_path / "published", staging=str(tmp_path / "stage"))
    assert staging_dir(local_uri, "final") == str(tmp_path / "stage" / "final")
