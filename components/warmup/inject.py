"""Write the warmup file into an export (still in staging) atomically, and pick the graphs that get one.

The file appears at ``<version>/assets.extra/tf_serving_warmup_requests`` only once complete (temp file in
the same folder, fsync, rename), so a crash never leaves a partial file for publish to copy. Only that
entry is replaced: variables placed by reference (hard links to checkpoint files) are never written to.
"""

from __future__ import annotations

import os

from components.artifacts import ExportArtifact
from components.layout import ENTRY_GRAPH, WARMUP_PATH
from components.storage import StorageError, storage_for
from components.warmup import tfrecord
from components.warmup.errors import WarmupError
from components.warmup.signatures import has_serve_graph


def warmup_targets(
    export: ExportArtifact, others: dict[str, str], signature: str
) -> list[tuple[str, str, str]]:
    """``(graph label, directory, signature)`` for every graph to warm: the entry graph, then ``others``.

    A single-graph export is its own entry (label ""). A multi-graph export warms its ``entry`` graph, as
    Monolith does, or else its only graph with a serve MetaGraph (a per-mode set's predict graph), plus
    each other graph the config names, with that graph's own signature.
    """
    graphs = {name: path for name, path in export.graphs.items() if name}
    if not graphs:
        if others:
            raise WarmupError(
                f"warmup.graphs names {sorted(others)}, but the {export.strategy} export of step {export.step} "
                "is a single graph; remove warmup.graphs or export with a multi-graph strategy"
            )
        return [("", export.uri, signature)]
    entry = ENTRY_GRAPH if ENTRY_GRAPH in graphs else _only_serving_graph(export, graphs)
    unknown = sorted(set(others) - set(graphs) | ({entry} & set(others)))
    if unknown:
        raise WarmupError(
            f"warmup.graphs names {unknown}: not other graphs of the {export.strategy} export "
            f"(entry {entry!r}; others {sorted(set(graphs) - {entry})})"
        )
    return [(entry, graphs[entry], signature)] + [
        (name, graphs[name], others[name]) for name in sorted(others)
    ]


def _only_serving_graph(export: ExportArtifact, graphs: dict[str, str]) -> str:
    serving = [name for name, path in sorted(graphs.items()) if has_serve_graph(path)]
    if len(serving) != 1:
        raise WarmupError(
            f"the {export.strategy} export of step {export.step} has graphs {sorted(graphs)}, no "
            f"{ENTRY_GRAPH!r} graph and {len(serving)} graphs tagged serve ({serving}); name one {ENTRY_GRAPH!r} "
            "so the warmup requests know where to go"
        )
    return serving[0]


def write_warmup(export_dir: str, records: list[bytes] | tuple[bytes, ...]) -> str:
    """Write ``records`` as the export's warmup file; returns its path."""
    path = os.path.join(export_dir, WARMUP_PATH)
    try:
        storage_for(path).write_bytes(path, tfrecord.encode(records))
    except StorageError as exc:
        raise WarmupError(f"cannot write the warmup file into {export_dir}: {exc}") from exc
    return path
