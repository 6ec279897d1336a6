"""A storage plug-in written before ``Storage.read_range`` existed, registered for tests through a real
``exportflow.storage`` entry point (a dist-info folder put on ``sys.path``): a Keras model_dir on its
scheme must be refused at config load, naming the missing method."""

from __future__ import annotations

from pathlib import Path

SCHEME = "oldstore"


class StorageWithoutRangedReads:
    """Never instantiated: the config check looks only for ``read_range`` on the class."""

    def list_files(self, prefix: str) -> list:
        return []


def install_entry_point(folder: Path) -> Path:
    """``folder`` holds a dist-info declaring the plug-in; put it on ``sys.path`` to install it."""
    info = folder / "exportflow_oldstore-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: exportflow-oldstore\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        f"[exportflow.storage]\n{SCHEME} = tests.support.keras_storage_plugin:StorageWithoutRangedReads\n"
    )
    return folder
