"""Flow export rows through netctl.sinks.ovsdb against a real ovsdb-server + ovs-vswitchd
(netdev bridges): pool-wide rows on every bridge, nothing sent when unchanged (also from a new
session: a restart), a changed setting is one column, a network turning its kind off clears its
bridge's row, an operator's own row is never replaced or removed, and removal deletes netctl's
rows (OVSDB garbage-collects the unreferenced rows)."""

from __future__ import annotations

import json
import os

import pytest

from harness.hostnet_builders import PoolBuilder
from harness.sandbox import OvsSandbox
from netctl.hostconfig import HostConfig
from netctl.sinks.ovsdb import HostOvsdb
from vlan import compile_host

pytestmark = pytest.mark.lab

CONTROLLER = "tcp:127.0.0.1:29789"  # never connected: only written to the bridges
FULL = {"netflow-targets": "127.0.0.1:29781", "netflow-active-timeout": "5",
        "ipfix-targets": "127.0.0.1:29782,[::1]:29782", "ipfix-sampling": "1",
        "sflow-targets": "[::1]:29783", "sflow-sampling": "1", "sflow-polling": "2"}


@pytest.fixture(scope="module")
def box():
    if os.geteuid() != 0:
        pytest.skip("real OVS needs root")
    sandbox = OvsSandbox("tfx")
    yield sandbox
    sandbox.close()


def config(pool_keys: dict[str, str], net_keys: dict[str, str] | None = None) -> HostConfig:
    """host1: eth0 on xenbr0 (network ext), eth1 on xenbr1 (network lan)."""
    b = PoolBuilder(**pool_keys)
    h1 = b.host("host1")
    b.nic(h1, "eth0", b.network("ext", "xenbr0", **(net_keys or {})))
    b.nic(h1, "eth1", b.network("lan", "xenbr1"))
    return compile_host(b.state(), h1.ref, datapath_type="netdev", controllers=(CONTROLLER,))


def rows(box: OvsSandbox, table: str) -> list[dict]:
    out = json.loads(box.vsctl("--format=json", "list", table))
    return [dict(zip(out["headings"], data, strict=True)) for data in out["data"]]


def exported(box: OvsSandbox, bridge: str, column: str) -> str:
    ref = box.vsctl("get", "Bridge", bridge, column)
    if ref == "[]":
        return ""
    return box.vsctl("get", column if column != "sflow" else "sFlow", ref, "targets")


def test_export_rows_are_written_diffed_and_removed(box):
    with HostOvsdb(box.unix) as db:
        first = db.apply(config(FULL))
        inserts = [op for op in first.operations if op.startswith("insert ")]
        assert sorted(op for op in inserts if "Bridge" not in op and "Port" not in op
                      and "Interface" not in op and "Controller" not in op) == [
            "insert IPFIX xenbr0", "insert IPFIX xenbr1", "insert NetFlow xenbr0",
            "insert NetFlow xenbr1", "insert sFlow xenbr0", "insert sFlow xenbr1"]
        for br in ("xenbr0", "xenbr1"):
            assert exported(box, br, "netflow") == '["127.0.0.1:29781"]'
            assert exported(box, br, "ipfix") == '["127.0.0.1:29782", "[::1]:29782"]'
            assert exported(box, br, "sflow") == '["[::1]:29783"]'
        assert all(r["external_ids"] == ["map", [["netctl-owner", "netctl"]]]
                   for t in ("NetFlow", "IPFIX", "sFlow") for r in rows(box, t))

        assert db.apply(config(FULL)).operations == ()  # unchanged: nothing sent

        result = db.apply(config({**FULL, "ipfix-sampling": "64"}))
        assert result.operations == ("set IPFIX of bridge xenbr0 sampling=[64]",
                                     "set IPFIX of bridge xenbr1 sampling=[64]")

        # the network ext turns sFlow off on its bridge, adds a NetFlow collector
        result = db.apply(config({**FULL, "ipfix-sampling": "64"},
                                 {"sflow-targets": "none", "netflow-targets": "+[::1]:29784"}))
        assert sorted(result.operations) == [
            "set Bridge xenbr0 sflow=[]",
            "set NetFlow of bridge xenbr0 targets=['127.0.0.1:29781', '[::1]:29784']"]
        assert exported(box, "xenbr0", "sflow") == ""
        assert len(rows(box, "sFlow")) == 1  # garbage-collected

    # a new session (netctl restarted) with unchanged intent: zero operations
    with HostOvsdb(box.unix) as db:
        same = config({**FULL, "ipfix-sampling": "64"},
                      {"sflow-targets": "none", "netflow-targets": "+[::1]:29784"})
        assert db.plan(same).operations == ()
        assert db.apply(same).operations == ()

        result = db.apply(config({}))  # no intent: netctl's rows go
        assert sorted(result.operations) == sorted(
            f"set Bridge {br} {col}=[]" for br in ("xenbr0", "xenbr1")
            for col in ("netflow", "ipfix", "sflow") if (br, col) != ("xenbr0", "sflow"))
        assert [rows(box, t) for t in ("NetFlow", "IPFIX", "sFlow")] == [[], [], []]
        assert db.apply(config({})).operations == ()


def test_an_operators_own_row_is_never_replaced_or_removed(box):
    with HostOvsdb(box.unix) as db:
        db.apply(config({}))
        box.vsctl("--", "--id=@nf", "create", "NetFlow", 'targets="192.0.2.50:2055"',
                  "--", "set", "Bridge", "xenbr1", "netflow=@nf")
        result = db.apply(config({"netflow-targets": "127.0.0.1:29781"}))
        assert result.operations == (
            "insert NetFlow xenbr0",
            "set NetFlow of bridge xenbr0 external_ids={'netctl-owner': 'netctl'}",
            "set NetFlow of bridge xenbr0 targets=['127.0.0.1:29781']",
            "set NetFlow of bridge xenbr0 active_timeout=0",
            "set Bridge xenbr0 netflow=[NetFlow]")
        assert any("NetFlow of bridge xenbr1" in k for k in result.kept)
        assert exported(box, "xenbr1", "netflow") == '["192.0.2.50:2055"]'
        assert db.apply(config({})).operations == ("set Bridge xenbr0 netflow=[]",)
        assert exported(box, "xenbr1", "netflow") == '["192.0.2.50:2055"]'  # still there
        box.vsctl("clear", "Bridge", "xenbr1", "netflow")
