"""The pure parts of the experiment API (issue 23): the pool builder writes topologies the
lab accepts, with the cabling rules applied once; ping output and tables read as printed."""

from __future__ import annotations

import time

import pytest

from netctl.experiment import PoolBuilder, pct, ping_figures, table
from netctl.topology import TopologyError


class Pool(PoolBuilder):
    def build(self, hosts: int = 2, mode: str | None = None) -> None:  # type: ignore[override]
        self.add_network("pool")
        self.add_network("v10", vlan=10)
        self.add_network("vx", tunnel="vxlan")
        for h in range(1, hosts + 1):
            self.add_host(f"host{h}", nics=2 if mode else 1, bond_mode=mode, lacp_time="slow")
            self.add_vm(f"vm{h}", f"host{h}")
            self.add_vif(f"vm{h}", "pool", f"10.1.0.{h}/24")
            self.add_vif(f"vm{h}", "vx", f"10.2.0.{h}/24", locking_mode="locked",
                         ipv4_allowed=[f"10.2.0.{h}"])


def test_the_builder_gives_a_checked_topology() -> None:
    topo = Pool("exp", hosts=3).topology("xs9", "198.18.119.0/24")
    assert (topo.prefix, topo.management) == ("xs9", "198.18.119.0/24")
    assert [h.name for h in topo.hosts] == ["host1", "host2", "host3"]
    assert {n.name: n.kind for n in topo.networks} == {
        "pool": "external", "v10": "vlan", "vx": "private"}
    # a VLAN network's tag rides every cable of its parent network; hosts carry tunnels
    assert all(c.trunk == (10,) for c in topo.switch.cables)
    assert all(h.address_on("pool") for h in topo.hosts)
    assert [v.device for v in topo.vm("vm2").vifs] == [0, 1]
    assert topo.vm("vm2").vifs[1].locking_mode == "locked"


def test_a_lacp_bond_gets_its_switch_side_bond_and_others_do_not() -> None:
    lacp = Pool("b", mode="lacp").topology("xs9", "198.18.119.0/24")
    assert [(b.host, b.nics, b.lacp_time) for b in lacp.switch.bonds] == [
        ("host1", ("eth0", "eth1"), "slow"), ("host2", ("eth0", "eth1"), "slow")]
    ab = Pool("b", mode="active-backup").topology("xs9", "198.18.119.0/24")
    assert ab.switch.bonds == () and len(ab.switch.cables) == 4


def test_bad_intent_fails_as_a_file_would() -> None:
    topo = PoolBuilder("x")
    topo.add_network("pool")
    topo.add_host("host1")
    topo.add_vm("vm1", "host9")
    with pytest.raises(TopologyError, match="host9"):
        topo.topology("xs9", "198.18.119.0/24")
    with pytest.raises(ValueError, match="bond_mode"):
        topo.add_host("host2", nics=2)


def test_ping_figures_read_lost_replies_and_the_longest_gap() -> None:
    now = time.time()
    lines = [f"[{now + t:.6f}] 64 bytes from 10.0.0.2: icmp_seq={i} ttl=64 time=0.1 ms"
             for i, t in enumerate((0.0, 0.01, 0.02, 0.32, 0.33), start=1)]
    out = "\n".join([*lines, "5 packets transmitted, 5 received, 0% packet loss", ""])
    out = out.replace("5 packets transmitted, 5 received", "35 packets transmitted, 5 received")
    f = ping_figures(out, 0.01)
    assert f.lost == 30 and round(f.gap_ms) == 300 and round(f.spacing_ms) == 10
    assert round(f.lost_ms) == 300 and f.last_at is not None


def test_table_and_percentiles() -> None:
    text = table(["bond", "lost (ms)"], [("lacp/fast", 172.14), ("active-backup", None)])
    assert text.splitlines()[2] == "lacp/fast          172.1"
    assert text.splitlines()[3].endswith("-")
    assert pct([5.0, 1.0, 3.0, 4.0, 2.0], 50) == 3.0 and pct([1.0, 2.0], 99) == 2.0
