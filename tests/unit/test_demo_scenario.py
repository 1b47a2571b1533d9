"""`netctl demo FILE` on any topology (issue 23), the pure parts: which checks a topology
allows, how probe failures are printed, and how much room the lab gives the kernel's
neighbour tables."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from netctl.cli import views
from netctl.cli.probe_view import failures_by_pair, matrix_fits
from netctl.cli.scenario import BondCut, Migrate, Relock, Replug, Skip, Spoof, derive
from netctl.lab import neigh
from netctl.lab.expect import probes
from netctl.lab.probe import Result
from netctl.topology import parse_data, parse_file
from netctl.topology_gen import pool_data
from tests.conftest import TOPOLOGIES


def small(hosts: int = 3, vms_per_host: int = 1, locked: bool = True, vm1_ipv6: bool = False):
    """A pool unlike the demo's: one NIC per host, a VXLAN network, no VLAN, no bond."""
    data = pool_data(hosts, vms_per_host, locked=locked)
    if not vm1_ipv6:
        eth0 = data["vms"][0]["vifs"][0]
        eth0.pop("ipv6", None)
        eth0.pop("ipv6_allowed", None)
    return parse_data(data, "small.yaml")


def test_the_demo_pool_keeps_its_whole_scenario():
    s = derive(parse_file(TOPOLOGIES / "demo-pool.yaml"))
    assert not s.skipped
    assert isinstance(s.spoof, Spoof) and s.spoof.sender.label == "vm1/0" and s.spoof.ipv6
    assert s.spoof.receiver.vm == "vm3"  # on another host: the frames cross the pool
    assert isinstance(s.replug, Replug) and s.replug.vlan in (10, 20)
    assert isinstance(s.bond, BondCut) and s.bond.member in ("eth0", "eth1")
    assert isinstance(s.relock, Relock) and s.relock.vif.label == "vm1/0"
    assert s.relock.spare == "10.10.0.111"
    assert isinstance(s.migrate, Migrate) and s.migrate.target != s.migrate.source
    assert s.migrate.vm != "vm1"  # not the locked VM the other checks use
    # on the demo pool, the derived scenario is the one `make demo` always showed
    assert (s.replug.vif.label, s.replug.peer.vm, s.replug.address) == ("vm4/0", "vm6",
                                                                        "10.20.0.14")
    assert (s.migrate.vm, s.migrate.source, s.migrate.target) == ("vm3", "host2", "host3")
    assert (s.bond.host, s.bond.member, s.bond.pinger.vm, s.bond.address) == (
        "host1", "eth0", "vm1", "10.10.0.13")
    # the bond cut is chosen with the VMs where they are after the migration
    after = {vm.name: vm.host for vm in parse_file(TOPOLOGIES / "demo-pool.yaml").vms}
    after[s.migrate.vm] = s.migrate.target
    assert after[s.bond.pinger.vm] == s.bond.host


def test_a_pool_without_vlan_bond_or_ipv6_on_the_locked_vm():
    s = derive(small())
    assert isinstance(s.bond, Skip) and "bond" in s.bond.check
    assert isinstance(s.spoof, Spoof) and not s.spoof.ipv6  # vm1 has no IPv6: IPv4 frames only
    assert isinstance(s.replug, Replug) and s.replug.vlan is None
    assert isinstance(s.migrate, Migrate)
    assert isinstance(s.relock, Relock) and s.relock.vif.ipv4 == "10.60.0.1"
    assert s.relock.spare not in {"10.60.0.1", "10.60.0.2", "10.60.0.3"}
    assert [k.check for k in s.skipped] == ["bond member failure"]


def test_no_locked_vif_and_a_single_host_skip_what_they_cannot_show():
    s = derive(small(hosts=1, vms_per_host=2, locked=False))
    assert {k.check for k in s.skipped} == {"spoofed frames from a locked VIF",
                                            "locking mode unlocked and locked again",
                                            "VM live migration", "bond member failure"}
    assert isinstance(s.replug, Replug)


def test_a_vif_locked_to_an_address_it_does_not_have_is_not_used():
    data = pool_data(2, 1)
    data["vms"][0]["vifs"][0]["ipv4_allowed"] = ["10.60.0.99"]  # not its own
    data["vms"][0]["vifs"][0]["ipv6_allowed"] = []
    s = derive(parse_data(data, "x.yaml"))
    assert isinstance(s.spoof, Skip) and isinstance(s.relock, Skip)


def _results(n_vms: int, failed: set[tuple[str, str]]):
    topo = parse_data(pool_data(n_vms, 1), "x.yaml")
    out = []
    for p in probes(topo):
        key = (p.src.node, p.address)
        out.append(Result(p, not p.expected if key in failed else p.expected))
    return out


def test_failures_are_listed_by_pair():
    results = _results(3, {("vm1", "fd4e:60::2"), ("vm1", "10.60.0.2"), ("vm3", "10.61.0.1")})
    lines = failures_by_pair(results)
    assert lines == [
        "vm1/eth0 (pool) -> vm2/eth0 (pool): IPv4 10.60.0.2 not reached; "
        "IPv6 fd4e:60::2 not reached",
        "vm3/eth1 (priv) -> vm1/eth1 (priv): IPv4 10.61.0.1 not reached",
    ]
    assert failures_by_pair(_results(3, set())) == []


@pytest.mark.parametrize("n_vms, width, matrix", [(3, 120, True), (32, 200, False)])
def test_the_matrix_only_where_it_fits_and_the_failures_always(monkeypatch, n_vms, width,
                                                               matrix):
    buf = io.StringIO()
    monkeypatch.setattr(views, "console", Console(file=buf, width=width, emoji=False))
    results = _results(n_vms, {("vm2", "fd4e:60::3")})
    assert not views.show_probes(results, "Connectivity")
    out = buf.getvalue()
    assert ("from \\ to" in out) is matrix
    assert ("wider than this terminal (200 columns)" in out) is not matrix
    assert "vm2/eth0 (pool) -> vm3/eth0 (pool): IPv6 fd4e:60::3 not reached" in out
    assert f"{len(results) - 1} probes as expected, 1 not" in out
    assert all(len(line) <= width for line in out.splitlines())


def test_matrix_fits_measures_the_table():
    from rich.table import Table

    t = Table()
    for i in range(30):
        t.add_column(f"vm{i:02d}/eth0")
    assert not matrix_fits(t, Console(file=io.StringIO(), width=100))
    assert matrix_fits(t, Console(file=io.StringIO(), width=1000))


def test_the_lab_makes_room_in_the_neighbour_tables(tmp_path):
    topo = parse_file(TOPOLOGIES / "pool-16.yaml")
    need = neigh.entries_needed(topo)
    assert need >= 2 * 32 * 31  # every VM resolving every other, global and link-local
    for family in ("ipv4", "ipv6"):
        d = tmp_path / family / "neigh" / "default"
        d.mkdir(parents=True)
        for i, v in enumerate((128, 512, 1024), start=1):
            (d / f"gc_thresh{i}").write_text(f"{v}\n")
    (tmp_path / "ipv4" / "neigh" / "default" / "gc_thresh3").write_text("99999\n")
    changed = neigh.ensure_room(topo, root=tmp_path)
    assert "net.ipv6.neigh.default.gc_thresh3: 1024 -> 16384" in changed
    assert not any("ipv4.neigh.default.gc_thresh3" in c for c in changed)  # never lowered
    assert (tmp_path / "ipv4" / "neigh" / "default" / "gc_thresh3").read_text() == "99999\n"
    assert neigh.ensure_room(topo, root=tmp_path) == []


def test_probes_expect_what_the_topologys_locking_lets_through():
    """A VIF locked to an address its guest does not have: nothing of it gets through, so
    the probes expect it isolated rather than report a FAIL that is the topology's intent."""
    data = pool_data(2, 1)
    data["vms"][0]["vifs"][0].update(ipv4_allowed=["10.60.0.0/28"], ipv6_allowed=["fd4e:60::99"])
    expected = {(p.src.node, p.address): p.expected for p in probes(parse_data(data, "x.yaml"))}
    assert expected[("vm1", "10.60.0.2")] and expected[("vm2", "10.60.0.1")]  # in the prefix
    assert not expected[("vm1", "fd4e:60::2")] and not expected[("vm2", "fd4e:60::1")]
    assert expected[("vm1", "10.61.0.2")]  # its other VIF is not locked
