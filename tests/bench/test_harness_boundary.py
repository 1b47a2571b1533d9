"""The house rule of issue 11: product code never imports the harness, and neither benchmarks
nor the harness import test files (they share `harness/`, which tests import too)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("netctl", "flows", "vlan", "bonding")


def imported_modules(path: Path) -> set[str]:
    mods: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            mods |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            mods.add(node.module)
    return mods


def offenders(dirs: tuple[str, ...], forbidden: str) -> list[str]:
    out = []
    for d in dirs:
        for path in sorted((ROOT / d).rglob("*.py")):
            bad = {m for m in imported_modules(path)
                   if m == forbidden or m.startswith(forbidden + ".")}
            if bad:
                out.append(f"{path.relative_to(ROOT)}: {', '.join(sorted(bad))}")
    return out


def test_product_code_never_imports_the_harness() -> None:
    assert offenders(PRODUCT, "harness") == []


def test_benchmarks_and_harness_never_import_tests() -> None:
    assert offenders(("bench", "harness"), "tests") == []
