"""Every benchmark keeps working (issue 9 item 6): each `bench/*.py` runs in its `--smoke` mode.

Why: a benchmark is only worth its figure if it runs at HEAD; `bench/coldstart.py` once
crashed for weeks unnoticed. A smoke run is the real path at small sizes (seconds; the lab
ones in their own prefixes `sb1`..`sb9`, management 198.18.91-99.0/24, ports 27200-27299, so
they never collide with a full run), and it must print its figures.

The scripts are discovered, not listed: a new `bench/NAME.py` is run too, and fails here until
it has what every benchmark has:
- a `--smoke` option (small sizes, seconds, its own lab prefix and teardown);
- a module-level `SMOKE_FIGURES = (regex, ...)`: each must match a line of the smoke run's
  stdout (the figure lines, so a script that runs but prints nothing useful fails);
- `SMOKE_NEEDS_ROOT = True` if it needs the lab or OVS (skipped without root, like lab tests).
This is a check that the tools work, not a timed test: the figures' values are not judged.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench"
SMOKE_TIMEOUT = 300  # seconds per script; lab ones take well under a minute


def declared(path: Path) -> dict[str, object]:
    """The SMOKE_* constants a script declares at module level (read, not imported)."""
    out: dict[str, object] = {}
    for node in ast.parse(path.read_text(), str(path)).body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)
                and node.targets[0].id.startswith("SMOKE_")):
            out[node.targets[0].id] = ast.literal_eval(node.value)
    return out


def scripts() -> list:
    params = []
    for path in sorted(BENCH.glob("*.py")):
        if path.name.startswith("_"):
            continue
        root = bool(declared(path).get("SMOKE_NEEDS_ROOT", False))
        params.append(pytest.param(path, id=path.stem,
                                   marks=[pytest.mark.lab] if root else []))
    return params


def test_scripts_are_discovered() -> None:
    assert len(scripts()) >= 6, f"bench/ holds fewer scripts than expected: {scripts()}"


@pytest.mark.parametrize("script", scripts())
def test_bench_smoke(script: Path) -> None:
    spec = declared(script)
    figures = spec.get("SMOKE_FIGURES")
    assert figures, (f"bench/{script.name} declares no SMOKE_FIGURES (regexes of the figure "
                     "lines its --smoke run prints): see tests/bench/test_bench_smoke.py")
    if spec.get("SMOKE_NEEDS_ROOT") and os.geteuid() != 0:
        pytest.skip("needs root (lab / OVS)")
    proc = subprocess.run([sys.executable, "-m", f"bench.{script.stem}", "--smoke"], cwd=ROOT,
                          capture_output=True, text=True, timeout=SMOKE_TIMEOUT)
    output = f"--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-4000:]}"
    assert "unrecognized arguments: --smoke" not in proc.stderr, (
        f"bench/{script.name} has no --smoke mode")
    assert proc.returncode == 0, f"bench/{script.name} --smoke exited {proc.returncode}\n{output}"
    for pattern in figures:
        assert re.search(pattern, proc.stdout, re.MULTILINE), (
            f"bench/{script.name} --smoke did not print a line matching {pattern!r}\n{output}")
