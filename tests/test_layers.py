"""The project's layer rules, checked on the source rather than remembered.

- ``components/`` never imports airflow (the library must not depend on its orchestrator);
- ``dags/`` never imports tensorflow or a cloud SDK (parse time runs on every scheduler loop);
- ``components/`` and ``plugins/`` import heavy modules only inside functions;
- the seed-compatible export library (``components/export/compat`` and ``savedmodel``) never imports,
  even indirectly, the pipeline: strategies, the export stage, the ledger or config.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("tensorflow", "tensorflow_serving", "tensorflow_estimator", "google.cloud", "google_crc32c")


def python_files(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def imports(path: Path, top_level_only: bool) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found = []
    for node in nodes:
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def offenders(folder: str, prefixes: tuple[str, ...], top_level_only: bool) -> list[str]:
    return [
        f"{path.relative_to(ROOT)}:{line} imports {name}"
        for path in python_files(folder)
        for line, name in imports(path, top_level_only)
        if any(name == p or name.startswith(p + ".") for p in prefixes)
    ]


def test_components_never_import_airflow() -> None:
    assert python_files("components")
    assert offenders("components", ("airflow",), top_level_only=False) == []


def test_dags_never_import_tensorflow_or_cloud_sdks() -> None:
    assert python_files("dags")
    assert offenders("dags", HEAVY, top_level_only=False) == []


@pytest.mark.parametrize("folder", ["components", "plugins", "examples"])
def test_heavy_imports_only_inside_functions(folder: str) -> None:
    assert offenders(folder, HEAVY, top_level_only=True) == []


def test_importing_every_component_module_loads_no_heavy_module() -> None:
    modules = [
        ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for path in [*python_files("components"), *python_files("plugins")]
    ]
    script = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {['tensorflow', 'tensorflow_serving', 'tensorflow_estimator', 'keras']!r} or m.startswith('google.cloud.storage'))))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, check=True)
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


SEED_LIBRARY = ("components.export.compat", "components.export.savedmodel")
PIPELINE = (
    "components.export.strategies",
    "components.export.executor",
    "components.export.spec",
    "components.ledger",
    "components.config",
)


def module_of(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def import_graph(folder: str) -> dict[str, set[str]]:
    """Module -> the modules of ``folder`` it imports anywhere in its body (``from pkg import mod`` included)."""
    modules = {module_of(path): path for path in python_files(folder)}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module)
                found.update(f"{node.module}.{alias.name}" for alias in node.names)
        graph[name] = {m for m in found if m in modules}
    return graph


def import_chain(graph: dict[str, set[str]], start: str, forbidden: tuple[str, ...]) -> list[str] | None:
    """The first chain of imports from ``start`` to a module under ``forbidden`` (None: there is none)."""
    chains, seen = [[start]], {start}
    while chains:
        chain = chains.pop(0)
        for target in sorted(graph[chain[-1]]):
            if any(target == f or target.startswith(f + ".") for f in forbidden):
                return [*chain, target]
            if target not in seen:
                seen.add(target)
                chains.append([*chain, target])
    return None


def test_seed_compatible_export_library_never_imports_the_pipeline() -> None:
    graph = import_graph("components")
    library = sorted(m for m in graph if any(m == p or m.startswith(p + ".") for p in SEED_LIBRARY))
    assert "components.export.compat.exporters" in library and "components.export.savedmodel.versions" in library
    chains = [" -> ".join(c) for m in library if (c := import_chain(graph, m, PIPELINE))]
    assert chains == []
