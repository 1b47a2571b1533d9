"""Every experiment keeps working (issue 23): each `experiments/*.py` runs in its `--smoke`
mode, prints its table and saves its plot.

Why: an experiment is documentation that runs (docs/experiments.md); one that broke at HEAD
teaches the wrong thing. A smoke run is the real path at the smallest size (one pool, seconds;
labs `xs1`..`xs8` on 198.18.111-118.0/24, ports 27350-27397: never a full run's). The scripts
are discovered: a new `experiments/NAME.py` runs here too, and fails until it has
- `--smoke` and `--out DIR` (its PNG goes there: `PLOT`, a module-level file name);
- `SMOKE_FIGURES = (regex, ...)`: each matches a line of the smoke run's stdout (its table's
  rows), so a run that prints no figure fails.
The figures' values are not judged: this checks the tool, not the pool.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.bench.test_bench_smoke import declared
from tests.unit.test_architecture import imports

ROOT = Path(__file__).resolve().parents[2]
EXPERIMENTS = ROOT / "experiments"
SMOKE_TIMEOUT = 120  # seconds per script; each takes 15-20 s on an idle machine
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def scripts() -> list:
    return [pytest.param(p, id=p.stem, marks=[pytest.mark.lab])
            for p in sorted(EXPERIMENTS.glob("*.py")) if not p.name.startswith("_")]


def test_the_three_experiments_are_there() -> None:
    assert {p.values[0].stem for p in scripts()} >= {
        "bond_failover", "migration_loss", "plug_convergence"}


def test_experiments_use_the_public_api_only() -> None:
    """Experiments are examples: they import `netctl.experiment` and their own helpers,
    never the test suite or the harness (a reader could not copy them out)."""
    bad = [f"{p.name}: {m}" for p in EXPERIMENTS.glob("*.py") for m in imports(p)
           if m.split(".")[0] in ("tests", "harness", "bench")]
    assert bad == []


@pytest.mark.parametrize("script", scripts())
def test_experiment_smoke(script: Path, tmp_path: Path) -> None:
    spec = declared(script)
    figures, plot = spec.get("SMOKE_FIGURES"), _plot_name(script)
    assert figures, f"experiments/{script.name} declares no SMOKE_FIGURES"
    if os.geteuid() != 0:
        pytest.skip("needs root (lab)")
    proc = subprocess.run([sys.executable, "-m", f"experiments.{script.stem}", "--smoke",
                           "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                          timeout=SMOKE_TIMEOUT)
    output = f"--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-4000:]}"
    assert proc.returncode == 0, f"{script.name} --smoke exited {proc.returncode}\n{output}"
    for pattern in figures:
        assert re.search(pattern, proc.stdout, re.MULTILINE), (
            f"{script.name} --smoke printed no line matching {pattern!r}\n{output}")
    png = tmp_path / plot
    assert png.is_file(), f"{script.name} --smoke saved no {plot} in --out\n{output}"
    data = png.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 1000, f"{png} is not a PNG plot"


def _plot_name(script: Path) -> str:
    """The script's `PLOT` (module level, read, not imported)."""
    for line in script.read_text().splitlines():
        found = re.match(r'^PLOT = "([^"]+)"$', line)
        if found:
            return found.group(1)
    raise AssertionError(f"experiments/{script.name} declares no PLOT file name")
