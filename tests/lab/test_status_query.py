"""`/status` queries against a real `netctl run` on the demo pool: a VM, a host, a network,
combined, a name nobody has (404), the whole document, and `netctl status --vm` printing it.

Why here and not only in tests/unit/test_status.py: the bond members' link and LACP state is
read from each host's real OVSDB mirror through ovsdbapp's Interface name index (walking every
Interface of a host of 1000 VIFs cost more than the rest of the summary), and the answers go
through the real HTTP server and the real sink's switch summary.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request

import pytest

from harness.running import running_pool
from tests.conftest import ROOT

pytestmark = pytest.mark.lab
PREFIX = "tsq"
PORTS = (28483, 26693, 29504)  # xapi simulator, OpenFlow, metrics
URL = f"http://127.0.0.1:{PORTS[2]}"


@pytest.fixture(scope="module")
def pool():
    with running_pool("demo-pool.yaml", PREFIX, "198.18.77.0/24", PORTS) as demo:
        yield demo


def get(**query: str) -> tuple[int, dict]:
    url = f"{URL}/status" + (f"?{urllib.parse.urlencode(query)}" if query else "")
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def lacp_up(bond: dict) -> bool:
    return all(s.startswith("link up") and "lacp current" in s for s in bond["members"].values())


def test_summary_reads_bond_members_from_ovsdb_by_name(pool):
    code, st = get()
    assert code == 200 and st["view"] == "summary"
    assert len(st["bonds"]) == 3 and all(lacp_up(b) for b in st["bonds"]), st["bonds"]
    assert st["counts"]["switches_with_table"] == 12 == st["counts"]["switches"]
    assert st["counts"]["hosts_connected"] == 3 and st["problems_total"] == 0
    assert {h["name"]: h["vifs"] for h in st["hosts"]} == {"host1": 4, "host2": 3, "host3": 4}


def test_vm_query_gives_its_vifs_and_their_path(pool):
    code, st = get(vm="vm1")
    assert code == 200 and st["match"]["vm"][0]["applied"]
    rows = {v["device"]: v for v in st["vifs"]}
    assert set(rows) == {"0", "1"}
    assert rows["0"]["locking"] == "locked" and rows["0"]["port"] == "vif1.0"
    assert rows["0"]["flows"] > 10 and rows["1"]["network"] == "priva"
    assert [h["name"] for h in st["hosts"]] == ["host1"] and st["hosts"][0]["connected"]
    assert [b["host"] for b in st["bonds"]] == ["host1"] and lacp_up(st["bonds"][0])
    assert [(t["host"], t["network"], t["status"]["active"]) for t in st["tunnels"]] == [
        ("host1", "priva", "true")]
    assert sorted(s["bridge"] for s in st["switches"]) == ["xapi1", "xapi4"]
    assert all(s["flows"] for s in st["switches"])


def test_host_and_network_queries_combine(pool):
    code, st = get(host="host3", network="xapi5")  # privb's bridge
    assert code == 200
    assert [(v["vm"], v["network"]) for v in st["vifs"]] == [("vm5", "privb")]
    assert [(t["host"], t["network"]) for t in st["tunnels"]] == [("host3", "privb")]
    code, st = get(network="priva", limit="1")
    assert code == 200 and len(st["vifs"]) == 1 and st["vifs_total"] == 3
    assert st["vifs_truncated"] and {t["host"] for t in st["tunnels"]} == {
        "host1", "host2", "host3"}


def test_unknown_names_are_404_and_the_whole_document_is_there(pool):
    assert get(vm="no-such-vm") == (404, {"error": "no VM 'no-such-vm' (by name_label or uuid)",
                                          "not_found": {"vm": "no-such-vm"}})
    assert get(host="host1", network="nowhere")[0] == 404
    code, full = get(full="1")
    assert code == 200 and full["view"] == "full"
    assert {(v["vm"], v["device"]) for v in full["vifs"]} >= {("vm1", "0"), ("vm6", "1")}


def test_cli_status_vm(pool):
    out = subprocess.run([sys.executable, "-m", "netctl.cli", "status", "--url", URL, "--vm",
                          "vm1"], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert "vm vm1" in out.stdout and "vif1.0" in out.stdout and "no problems about these" in (
        out.stdout)
    out = subprocess.run([sys.executable, "-m", "netctl.cli", "status", "--url", URL, "--vm",
                          "nope"], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert out.returncode != 0 and "no VM 'nope'" in out.stderr
