"""Only the TFX interop package imports TFX: the rest of exportflow runs where TFX cannot be installed.

TFX's DSL needs protobuf >= 6, TF 2.15 protobuf < 5, so ``tfx`` and ``ml_metadata`` live in their own
environment (``interop/tfx``). This reads every Python file of the checkout (outside virtual
environments) and fails on any other module that imports them or the component package.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TFX_MODULES = ("tfx", "ml_metadata", "exportflow_tfx")
# The component's own package, and the test child that the main suite runs with the TFX interpreter.
ALLOWED = (ROOT / "interop" / "tfx" / "exportflow_tfx", ROOT / "tests" / "support" / "tfx_child.py")


def imported_modules(source: str, filename: str) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(source, filename=filename)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def tfx_importers(root: Path) -> list[str]:
    offenders = []
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root)
        if any(part.startswith(".") for part in relative.parts):  # .venv, .git, caches
            continue
        if any(path == allowed or allowed in path.parents for allowed in ALLOWED):
            continue
        for line, name in imported_modules(path.read_text(), str(path)):
            if name.split(".")[0] in TFX_MODULES:
                offenders.append(f"{relative}:{line} imports {name}")
    return offenders


def test_nothing_outside_the_interop_package_imports_tfx() -> None:
    assert tfx_importers(ROOT) == []


def test_the_check_catches_an_import_of_tfx(tmp_path: Path) -> None:
    (tmp_path / "components").mkdir()
    (tmp_path / "components" / "sneaky.py").write_text("def f():\n    from tfx.types import standard_artifacts\n")
    (tmp_path / "components" / "fine.py").write_text("import tfx_bsl_lookalike\n")
    assert tfx_importers(tmp_path) == ["components/sneaky.py:2 imports tfx.types"]
