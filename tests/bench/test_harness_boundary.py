"""The house rule of issue 11: product code never imports the harness, and neither benchmarks
nor the harness import test files (they share `harness/`, which tests import too)."""

from __future__ import annotations

from pathlib import Path

from tests.unit.test_architecture import imports

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("netctl", "flows", "vlan", "bonding")


def offenders(dirs: tuple[str, ...], forbidden: str) -> list[str]:
    out = []
    for d in dirs:
        for path in sorted((ROOT / d).rglob("*.py")):
            bad = {m for m in imports(path)
                   if m == forbidden or m.startswith(forbidden + ".")}
            if bad:
                out.append(f"{path.relative_to(ROOT)}: {', '.join(sorted(bad))}")
    return out


def test_product_code_never_imports_the_harness() -> None:
    assert offenders(PRODUCT, "harness") == []


def test_benchmarks_and_harness_never_import_tests() -> None:
    assert offenders(("bench", "harness"), "tests") == []
