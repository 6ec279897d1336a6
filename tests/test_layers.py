"""The project's layer rules, checked on the source rather than remembered.

The import-linter contracts in pyproject.toml (``[tool.importlinter]``) hold the layers of ``components/``,
"components never import airflow", "dags never import tensorflow" and the seed-compatible export library's
independence; these tests run them, prove they catch a forbidden import, and check what import-linter
cannot express:

- every top-level module of ``components/`` has a place in the layers contract;
- ``components/``, ``plugins/`` and ``examples/`` import heavy modules only inside functions (import-linter
  sees an import in a function like any other), and importing them loads none.
"""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("tensorflow", "tensorflow_serving", "tensorflow_estimator", "google.cloud", "google_crc32c")
CONTRACTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]


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


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` on the tree at ``root`` (its pyproject.toml and packages), without a cache folder.

    The checkout is on the venv's path (an editable install), so it is dropped there: ``dags`` is a
    namespace package, and the checkout's portion would otherwise be linted beside a copy's.
    """
    script = (
        "import sys\n"
        f"sys.path[:] = [{str(root)!r}] + [p for p in sys.path if p not in ('', {str(ROOT)!r})]\n"
        "from importlinter.cli import lint_imports_command\n"
        "sys.argv = ['lint-imports', '--no-cache', '--no-logo']\n"
        "lint_imports_command()\n"
    )
    return subprocess.run(
        [sys.executable, "-c", script], check=False, capture_output=True, text=True, cwd=root
    )


def test_import_contracts_are_kept() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Contracts: {len(CONTRACTS)} kept, 0 broken." in result.stdout


def test_every_components_module_has_a_layer() -> None:
    (layers,) = [c for c in CONTRACTS if c["type"] == "layers" and c["containers"] == ["components"]]
    placed = {name.strip() for layer in layers["layers"] for name in layer.replace(":", "|").split("|")}
    modules = {
        path.stem if path.is_file() else path.name
        for path in (ROOT / "components").iterdir()
        if (path.suffix == ".py" and path.stem != "__init__") or (path / "__init__.py").is_file()
    }
    assert modules - placed == set(), "place these in [tool.importlinter] components-layers in pyproject.toml"
    assert placed - modules == set()


# (file to change, the import added to it, the contract that must break)
FORBIDDEN_IMPORTS = [
    ("components/export/savedmodel/folder_names.py", "import airflow.sdk", "components-no-airflow"),
    ("components/errors.py", "import components.artifacts", "components-layers"),
    ("dags/exportflow_dags.py", "import tensorflow", "dags-no-tensorflow"),
    (
        "components/export/savedmodel/mode_graphs.py",
        "from components.export.strategies import registry",
        "seed-export-library",
    ),
]


@pytest.mark.parametrize(
    ("relative", "line", "contract"), FORBIDDEN_IMPORTS, ids=[c for *_, c in FORBIDDEN_IMPORTS]
)
def test_a_forbidden_import_breaks_its_contract(
    tmp_path: Path, relative: str, line: str, contract: str
) -> None:
    for folder in ("components", "plugins", "dags", "examples"):
        shutil.copytree(ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / relative
    target.write_text(target.read_text() + f"\n{line}\n")

    result = lint_imports(tmp_path)

    (name,) = [c["name"] for c in CONTRACTS if c["id"] == contract]
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{len(CONTRACTS) - 1} kept, 1 broken." in result.stdout
    broken = " ".join(result.stdout.split("Broken contracts", 1)[1].split())  # undo its line wrapping
    assert name in broken
    assert relative.removesuffix(".py").replace("/", ".") in broken


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
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []

