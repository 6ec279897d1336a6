"""The project's layer rules, checked on the source rather than remembered.

- ``components/`` never imports airflow (the library must not depend on its orchestrator);
- ``dags/`` never imports tensorflow or a cloud SDK (parse time runs on every scheduler loop);
- ``components/`` and ``plugins/`` import heavy modules only inside functions.
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
