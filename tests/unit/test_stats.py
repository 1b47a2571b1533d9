"""Traffic statistics' pure core (issue 21): drop kinds in cookies, rates from counters, and
whose port a switch port is."""

from __future__ import annotations

from flows.drops import KINDS, cookie_of, kind_of
from flows.locking import Locking, port_security_flows
from flows.pipeline import COOKIE, COOKIE_MASK
from harness.synthetic import PoolSpec
from harness.synthetic import pool_state as synthetic_state
from netctl.engine.core import NetctlEngine
from netctl.engine.hosts import HostSettings
from netctl.model import tap_port, vif_port
from netctl.stats.labels import host_labels
from netctl.stats.table import StatsTable, rates_between
from vlan.tunnels import tunnel_port_name_for

MAC = "02:00:00:00:00:01"


def test_every_drop_flow_of_a_locked_vif_names_its_kind_and_stays_netctls() -> None:
    flows = port_security_flows(7, MAC, Locking("locked", ("10.0.0.1",), ("fd00::1",)))
    drops = [f for f in flows if f.goto is None and not f.actions]
    kinds = {kind_of(f.cookie) for f in drops}
    assert kinds == {"mac", "ipv4", "ipv6", "arp", "nd", "router", "dhcp_server", "other"}
    # every flow is still netctl's (its audits and deletes mask the cookie's top 16 bits)
    assert all(f.cookie & COOKIE_MASK == COOKIE for f in flows)
    # a flow that lets frames through is never counted as a drop
    assert all(kind_of(f.cookie) is None for f in flows if f.goto is not None)
    disabled = port_security_flows(7, MAC, Locking("disabled", (), ()))
    assert [kind_of(f.cookie) for f in disabled] == ["disabled"]
    assert port_security_flows(7, MAC, Locking("unlocked", (), ()))[0].cookie == COOKIE


def test_cookies_and_kinds_round_trip_and_others_are_not_drops() -> None:
    for kind in KINDS:
        assert kind_of(cookie_of(kind)) == kind
    assert kind_of(COOKIE) is None
    assert kind_of(0x1234) is None  # another owner's flow


def test_rates_are_bits_and_packets_per_second_and_a_reset_counter_starts_again() -> None:
    old = (1000, 2000, 10, 20, 0, 0, 0, 0)
    new = (3000, 2000, 30, 20, 0, 0, 0, 0)
    assert rates_between(old, new, 2.0) == (8000.0, 0.0, 10.0, 0.0)
    reset = (500, 2000, 5, 20, 0, 0, 0, 0)  # the port was recreated: counts from 0 again
    assert rates_between(old, reset, 1.0)[0] == 4000.0


def test_the_table_keeps_one_reading_per_switch_with_rates_and_drop_rates() -> None:
    table = StatsTable()
    table.ports(1, 100.0, [(5, "vif3.0", (0, 0, 0, 0, 0, 0, 0, 0))],
                {5: {"ipv4": 2, "router": 2}})
    first = table.switches()[1].ports[5]
    assert first.drops == {"ipv4": 2, "router": 2} and first.rates == (0.0, 0.0, 0.0, 0.0)
    table.ports(1, 105.0, [(5, "vif3.0", (5000, 0, 50, 0, 0, 0, 0, 0))],
                {5: {"ipv4": 12, "router": 2}})
    second = table.switches()[1].ports[5]
    assert second.rates[0] == 8000.0 and second.rates[2] == 10.0
    assert second.drop_pps == 2.0
    # a renumbered port (another name on the number) has no rate from the old one's counts
    table.ports(1, 110.0, [(5, "vif4.0", (9000, 0, 90, 0, 0, 0, 0, 0))], None)
    assert table.switches()[1].ports[5].rates == (0.0, 0.0, 0.0, 0.0)
    table.forget(1)
    assert table.switches() == {}


def test_ports_are_named_for_the_vif_nic_bond_member_or_tunnel_they_are() -> None:
    state = synthetic_state(PoolSpec(hosts=3, vifs_per_host=6))
    engine = NetctlEngine(HostSettings(controllers=("tcp:192.0.2.1:6653",)))
    engine.xapi([(o.ref, None, o) for o in state.objects()])
    engine.run()
    host = min(state.hosts.values(), key=lambda h: h.name_label)
    config = engine.hosts.configs.config(host.ref)
    labels = host_labels(state, host.ref, config.tunnels)
    vm = next(v for v in state.vms.values() if v.resident_on == host.ref and v.domid >= 0
              and state.vm_vifs(v.ref))
    vif = state.vm_vifs(vm.ref)[0]
    for name in (vif_port(vm.domid, vif.device), tap_port(vm.domid, vif.device)):
        label = labels[name]
        assert (label.kind, label.vm, label.device, label.vif) == (
            "vif", vm.name_label, vif.device, vif.uuid)
        assert label.network == state.networks[vif.network].name_label
    assert {labels["eth0"].kind, labels["eth1"].kind} == {"bond-member"}
    # the tunnel ports the compiler gave the host, each with its peer and network
    tunnels = {name: lab for name, lab in labels.items() if lab.kind == "tunnel"}
    assert set(tunnels) == {link.port for link in config.tunnels} and tunnels
    assert {lab.peer for lab in tunnels.values()} == {
        h.name_label for h in state.hosts.values() if h.ref != host.ref}
    private = next(n for n in state.networks.values()
                   if any(state.pifs[t.access_pif].network == n.ref
                          for t in state.tunnels.values() if t.access_pif in state.pifs))
    peer = next(h for h in state.hosts.values() if h.ref != host.ref)
    name = tunnel_port_name_for("vxlan", private.uuid, peer.uuid)
    assert labels[name].peer == peer.name_label and labels[name].network == private.name_label


def test_no_flow_key_changes_its_cookie_between_locking_modes() -> None:
    """A flow's cookie cannot be modified in place (OpenFlow 1.3: OVS keeps it), and a drop
    flow's cookie says its kind: so no (table, priority, match) of a VIF's port security may
    carry one cookie in one mode and another in the next."""
    modes = [Locking("unlocked", (), ()), Locking("disabled", (), ()),
             Locking("locked", (), ()), Locking("locked", ("10.0.0.1",), ("fd00::1",)),
             Locking("locked", ("10.0.0.0/24",), ("fd00::/64",))]
    cookies: dict = {}
    for locking in modes:
        for f in port_security_flows(3, MAC, locking):
            assert cookies.setdefault(f.key, f.cookie) == f.cookie, (f.note, locking)


def test_a_changed_cookie_is_a_delete_and_an_add_in_the_sinks_bundle() -> None:
    from os_ken.ofproto import ofproto_v1_3 as ofp

    from netctl.sinks.openflow import changed

    key = (1, 100, b"match")
    assert changed(ofp, key, (b"a", COOKIE), (b"b", COOKIE)) == [
        (ofp.OFPFC_MODIFY_STRICT, key, (b"b", COOKIE))]
    assert changed(ofp, key, (b"", cookie_of("disabled")), (b"b", COOKIE)) == [
        (ofp.OFPFC_DELETE_STRICT, key, None), (ofp.OFPFC_ADD, key, (b"b", COOKIE))]
