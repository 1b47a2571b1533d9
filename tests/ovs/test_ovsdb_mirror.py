"""Mirror rows and RSPAN flood VLANs through netctl.sinks.ovsdb against a real ovsdb-server +
ovs-vswitchd (a netdev bridge): written with their ports resolved, nothing sent when unchanged
(also from a new session: a restart), a changed direction is one column, a mirror whose output
port is missing waits for it (and the session says when it appears), an operator's own mirror
is never changed or removed, and removal takes netctl's rows off the bridge (OVSDB
garbage-collects them)."""

from __future__ import annotations

import json
import os
import threading
from dataclasses import replace

import pytest

from harness.hostnet_builders import PoolBuilder
from harness.sandbox import OvsSandbox
from netctl.hostconfig import HostConfig, MirrorConfig
from netctl.sinks.ovsdb import HostOvsdb
from vlan import compile_host

pytestmark = pytest.mark.lab

CONTROLLER = "tcp:127.0.0.1:29799"  # never connected: only written to the bridge
VIF = "VIF 6f1c0a3e-0d2b-4b8e-9a51-3c4d5e6f7a8b"


@pytest.fixture(scope="module")
def box():
    if os.geteuid() != 0:
        pytest.skip("real OVS needs root")
    sandbox = OvsSandbox("tmr")
    yield sandbox
    sandbox.close()


def base() -> HostConfig:
    """host1: eth0 on xenbr0."""
    b = PoolBuilder()
    h1 = b.host("host1")
    b.nic(h1, "eth0", b.network("ext", "xenbr0"))
    return compile_host(b.state(), h1.ref, datapath_type="netdev", controllers=(CONTROLLER,))


def mirrored(direction: str = "both", output_port: str = "vif2.0", output_vlan: int = 0,
             flood: tuple[int, ...] = ()) -> HostConfig:
    src, dst = direction in ("both", "from-vm"), direction in ("both", "to-vm")
    m = MirrorConfig("netctl-mirror-x", "xenbr0", VIF, select_src=("vif1.0",) if src else (),
                     select_dst=("vif1.0",) if dst else (), output_port=output_port,
                     output_vlan=output_vlan)
    return replace(base(), mirrors=(m,), flood_vlans=(("xenbr0", flood),) if flood else ())


def rows(box: OvsSandbox, table: str) -> list[dict]:
    out = json.loads(box.vsctl("--format=json", "list", table))
    return [dict(zip(out["headings"], data, strict=True)) for data in out["data"]]


def port_names(box: OvsSandbox) -> dict[str, str]:
    return {r["_uuid"][1]: r["name"] for r in rows(box, "Port")}


def plug(box: OvsSandbox, name: str) -> None:
    """A VIF port as the hypervisor adds it (an internal device stands in for the backend)."""
    box.vsctl("add-port", "xenbr0", name, "--", "set", "interface", name, "type=internal")


def test_mirror_rows_are_written_diffed_and_removed(box):
    with HostOvsdb(box.unix) as db:
        db.apply(base())
        plug(box, "vif1.0")
        plug(box, "vif2.0")
        result = db.apply(mirrored(flood=(30,)))
        assert [op for op in result.operations if "irror" in op or "flood" in op] == [
            "set Bridge xenbr0 flood_vlans=[30]",
            "insert Mirror netctl-mirror-x",
            "set Mirror netctl-mirror-x on xenbr0 name='netctl-mirror-x'",
            f"set Mirror netctl-mirror-x on xenbr0 external_ids={{'netctl-owner': 'netctl', "
            f"'netctl-mirror-source': '{VIF}'}}",
            "set Mirror netctl-mirror-x on xenbr0 select_src_port=[vif1.0]",
            "set Mirror netctl-mirror-x on xenbr0 select_dst_port=[vif1.0]",
            "set Mirror netctl-mirror-x on xenbr0 output_port=[vif2.0]",
            "set Bridge xenbr0 mirrors=[netctl-mirror-x]"]
        (m,) = rows(box, "Mirror")
        names = port_names(box)
        assert names[m["select_src_port"][1]] == names[m["select_dst_port"][1]] == "vif1.0"
        assert names[m["output_port"][1]] == "vif2.0"
        assert box.vsctl("get", "Bridge", "xenbr0", "flood_vlans") == "[30]"

        assert db.apply(mirrored(flood=(30,))).operations == ()  # unchanged: nothing sent
        assert db.apply(mirrored("from-vm", flood=(30,))).operations == (
            "set Mirror netctl-mirror-x on xenbr0 select_dst_port=[]",)

        # an operator's own mirror on the same bridge: never touched
        box.vsctl("--", "--id=@p", "get", "Port", "vif1.0", "--", "--id=@m", "create",
                  "Mirror", "name=theirs", "select-all=true", "output-port=@p", "--",
                  "add", "Bridge", "xenbr0", "mirrors", "@m")
        assert db.apply(mirrored("from-vm", flood=(30,))).operations == ()
        result = db.apply(mirrored("to-vm", output_port="", output_vlan=30, flood=(30,)))
        assert sorted(result.operations) == sorted([
            "set Mirror netctl-mirror-x on xenbr0 select_src_port=[]",
            "set Mirror netctl-mirror-x on xenbr0 select_dst_port=[vif1.0]",
            "set Mirror netctl-mirror-x on xenbr0 output_port=[]",
            "set Mirror netctl-mirror-x on xenbr0 output_vlan=[30]"])
        assert sorted(r["name"] for r in rows(box, "Mirror")) == ["netctl-mirror-x", "theirs"]

    # a new session (netctl restarted) with unchanged intent: zero operations
    with HostOvsdb(box.unix) as db:
        same = mirrored("to-vm", output_port="", output_vlan=30, flood=(30,))
        assert db.plan(same).operations == ()
        assert db.apply(same).operations == ()
        result = db.apply(base())  # no intent: netctl's row goes, the operator's stays
        assert sorted(result.operations) == ["set Bridge xenbr0 flood_vlans=[]",
                                             "set Bridge xenbr0 mirrors=[theirs]"]
        assert [r["name"] for r in rows(box, "Mirror")] == ["theirs"]
        assert db.apply(base()).operations == ()
        box.vsctl("clear", "Bridge", "xenbr0", "mirrors")


def test_a_mirror_waits_for_its_output_port_and_the_session_says_when_it_appears(box):
    with HostOvsdb(box.unix) as db:
        db.apply(base())
        appeared = threading.Event()
        db.on_waited_port = appeared.set
        want = mirrored(output_port="vif3.0")
        result = db.apply(want)
        assert not [op for op in result.operations if "Mirror" in op]
        assert rows(box, "Mirror") == []
        plug(box, "vif3.0")
        assert appeared.wait(5), "no word of the port a mirror waits for"
        result = db.apply(want)
        assert "insert Mirror netctl-mirror-x" in result.operations
        assert db.apply(want).operations == ()
        db.apply(base())
        assert rows(box, "Mirror") == []


def test_flood_vlans_beside_an_operators_on_a_bridge_netctl_did_not_make(box):
    """networkd's bridge (no owner mark) with an operator's flood VLAN 99: netctl adds its
    RSPAN VLAN beside it, remembers it added 30, and takes out only 30 again."""
    box.vsctl("add-br", "xenbr1", "--", "set", "bridge", "xenbr1", "datapath_type=netdev",
              "flood_vlans=99")
    b = PoolBuilder()
    h1 = b.host("host1")
    b.nic(h1, "eth1", b.network("lan", "xenbr1"))
    plain = compile_host(b.state(), h1.ref, datapath_type="netdev", controllers=(CONTROLLER,))
    rspan = replace(plain, flood_vlans=(("xenbr1", (30,)),))
    with HostOvsdb(box.unix) as db:
        db.apply(plain)
        assert box.vsctl("get", "Bridge", "xenbr1", "flood_vlans") == "[99]"
        result = db.apply(rspan)
        assert sorted(result.operations) == [
            "set Bridge xenbr1 external_ids:netctl-flood-vlans=30",
            "set Bridge xenbr1 flood_vlans=[30, 99]"]
        assert db.apply(rspan).operations == ()
    with HostOvsdb(box.unix) as db:  # a restart: nothing
        assert db.apply(rspan).operations == ()
        result = db.apply(plain)
        assert sorted(result.operations) == [
            "remove Bridge xenbr1 external_ids:netctl-flood-vlans",
            "set Bridge xenbr1 flood_vlans=[99]"]
        assert box.vsctl("get", "Bridge", "xenbr1", "flood_vlans") == "[99]"
        assert db.apply(plain).operations == ()
