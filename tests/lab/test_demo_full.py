"""`make demo` is also a test: the full scenario, exactly as the README's first command runs it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT, lab_footprint
from tests.lab.conftest import NOTHING

pytestmark = pytest.mark.lab


def test_the_demo_runs_the_whole_scenario_and_leaves_nothing_behind():
    assert lab_footprint("nd") == NOTHING, "a demo lab is already up on this machine"
    proc = subprocess.run([sys.executable, "-m", "netctl.cli", "demo",
                           str(ROOT / "topologies" / "demo-pool.yaml")],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-3000:]
    assert "connectivity: 92 probes as expected, 0 not" in out
    assert "none reached vm3" in out
    for change in ("kill -9 netctl instance ctl-", "VIF.plug vm4/0", "VM.pool_migrate vm3",
                   "bond member host1/eth0 cut", "VIF.set_locking_mode vm1/0 locked"):
        line = next(ln for ln in out.splitlines() if change in ln)
        assert " ok " in line or line.rstrip().endswith("ok │"), line
    assert "demo: everything as expected" in out
    assert lab_footprint("nd") == NOTHING
