"""`netctl demo FILE` on a pool that is not the demo's (issue 23): 3 hosts with one NIC each,
a VXLAN private network, no VLAN, no bond, and the locked VM without IPv6. The demo derives
its checks from the topology: no traceback, the skipped checks said, no FAIL that is an
artefact of the demo pool's scenario, and the locked VIF left locked to its own address."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import XenAPI
import yaml

from harness.footprint import clear_dead_lab
from netctl.lab.lab import Lab
from netctl.topology_gen import pool_data
from tests.conftest import ROOT, lab_footprint
from tests.lab.conftest import NOTHING

pytestmark = pytest.mark.lab

PREFIX, MANAGEMENT = "tdm", "198.18.88.0/24"
PORTS = (28811, 27011, 29811)


def topology_file(tmp_path) -> str:
    data = pool_data(3, vms_per_host=1, prefix=PREFIX, management=MANAGEMENT)
    eth0 = data["vms"][0]["vifs"][0]  # vm1/0: locked to its IPv4 address, no IPv6 at all
    del eth0["ipv6"], eth0["ipv6_allowed"]
    path = tmp_path / "pool3.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)


def test_the_demo_derives_its_scenario_from_any_topology(tmp_path):
    clear_dead_lab(PREFIX)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "netctl.cli", "demo", topology_file(tmp_path), "--keep",
             "--ports", ",".join(map(str, PORTS))],
            capture_output=True, text=True, timeout=300, cwd=ROOT)
        out = proc.stdout + proc.stderr
        assert "Traceback" not in out, out[-4000:]
        assert proc.returncode == 0, out[-4000:]
        assert "demo: everything as expected" in out
        assert "FAIL" not in out and "unexpected:" not in out
        # what the topology has not, said; what it has, done on its own VMs and addresses
        assert "skipped: bond member failure: no host has a bond" in out
        assert "locked VIF vm1/0 sends 4 kinds of spoofed frames" in out
        assert "IPv4 only: vm1/0 or vm2/0 has no allowed IPv6" in out
        for change in ("VIF.unplug", "VIF.plug", "VM.pool_migrate", "VIF.set_locking_mode "
                       "vm1/0 unlocked", "VIF.set_locking_mode vm1/0 locked"):
            assert change in out, change
        assert "vm4" not in out and "10.10.0" not in out  # nothing of the demo pool's
        assert "connectivity: 14 probes as expected, 0 not" in out

        # nothing left locked to a wrong address: xapi has vm1/0 locked to its own address,
        # and the spare address the locking check used is gone from the guest
        lab = Lab.attach(PREFIX)
        session = XenAPI.Session(f"http://127.0.0.1:{PORTS[0]}/")
        session.xenapi.login_with_password("root", "netctl")
        x = session.xenapi
        uuid = lab.topology.vm("vm1").vifs[0].uuid
        vif = x.VIF.get_record(x.VIF.get_by_uuid(uuid))
        assert vif["locking_mode"] == "locked"
        assert vif["ipv4_allowed"] == ["10.60.0.1"] and vif["ipv6_allowed"] == []
        addrs = json.loads(lab.exec("vm1", ["ip", "-j", "addr", "show", "dev", "eth0"]).stdout)
        mine = {a["local"] for a in addrs[0]["addr_info"] if a["family"] == "inet"}
        assert mine == {"10.60.0.1"}
    finally:
        subprocess.run([sys.executable, "-m", "netctl.cli", "lab", "down", "--lab", PREFIX],
                       capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert lab_footprint(PREFIX) == NOTHING
