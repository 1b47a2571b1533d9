"""IPv6 pools (issue 18): tunnel endpoints follow the transport PIF's primary address type, a
private network mixing IPv4-only and IPv6-only transports is a Problem naming both PIFs, and
every endpoint joined with a port is written the way OVS reads an IPv6 address: in brackets.

The pool is `topologies/demo-pool-v6.yaml` as the xapi simulator seeds it and the product's
xapi reader converts it: what `netctl run` sees of an IPv6-only XCP-ng 8.3 pool."""

from __future__ import annotations

from dataclasses import replace

import pytest

from netctl.model import PIF, PoolState, check_tunnel
from netctl.model.hostport import (
    bracketed,
    join_host_port,
    ovs_active,
    ovs_passive,
    split_host_port,
)
from netctl.service.config import Config, ConfigError
from netctl.topology import parse_data, parse_file
from netctl.xapisim.errors import XapiError
from netctl.xapisim.sim import Simulator
from tests.conftest import TOPOLOGIES
from tests.unit.engine_cases import topology_state
from vlan import compile_host
from vlan.checks import check_host_networking

V6_POOL = "demo-pool-v6.yaml"
TRANSPORT = {"host1": "fd4e:30::1", "host2": "fd4e:30::2", "host3": "fd4e:30::3"}


# ------------------------------------------------------------------ endpoints with a port
@pytest.mark.parametrize(("address", "port", "joined"), [
    ("10.0.0.5", 6640, "10.0.0.5:6640"),
    ("fd00:18:6::b", 6640, "[fd00:18:6::b]:6640"),
    ("[fd00::1]", "6653", "[fd00::1]:6653"),
    ("pool-master.example", 443, "pool-master.example:443"),
])
def test_an_address_next_to_a_port_is_bracketed_only_when_it_is_ipv6(address, port, joined):
    assert join_host_port(address, port) == joined
    assert split_host_port(joined) == (address.strip("[]"), int(port))


def test_ovs_endpoints_spell_ipv6_as_ovs_reads_it():
    assert ovs_active("tcp", "fd00:18:6::b", 6640) == "tcp:[fd00:18:6::b]:6640"
    assert ovs_active("ssl", "198.18.10.1", 6653) == "ssl:198.18.10.1:6653"
    assert ovs_passive("ptcp", 6640, "fd00:18:6::b") == "ptcp:6640:[fd00:18:6::b]"
    assert ovs_passive("pssl", 6640) == "pssl:6640"
    assert bracketed("10.0.0.1") == "10.0.0.1" and bracketed("::1") == "[::1]"


@pytest.mark.parametrize(("text", "says"), [
    ("fd00::1:6653", "in brackets"),      # ambiguous: refused, never guessed
    ("[fd00::1:6653", r"\[IPV6\]:PORT"),
    ("[10.0.0.1]:6653", "not an IPv6 address"),
    ("[fd00::1]:http", "not a port"),
    ("fd00", "ADDRESS:PORT"),
])
def test_a_malformed_endpoint_is_refused_naming_it(text, says):
    with pytest.raises(ValueError, match=says):
        split_host_port(text)


def test_openflow_target_from_an_ipv6_listen_address():
    assert Config(openflow_listen="[fd00:18:6::1]:26811").target == "tcp:[fd00:18:6::1]:26811"
    tls = {"private_key": "k", "certificate": "c", "ca_cert": "a"}
    assert Config(openflow_listen="[fd00::1]:6653", openflow_ssl=tls).target == \
        "ssl:[fd00::1]:6653"
    assert Config(openflow_listen="198.18.10.1:6653").target == "tcp:198.18.10.1:6653"
    with pytest.raises(ConfigError, match="wildcard"):
        Config(openflow_listen="[::]:6653").target  # noqa: B018 - raises
    with pytest.raises(ConfigError, match=r"openflow.listen: .*in brackets"):
        Config(openflow_listen="fd00::1:6653").target  # noqa: B018 - raises


def test_ovsdb_endpoint_template_brackets_an_ipv6_host_address():
    config = Config(ovsdb_endpoint="tcp:{address}:6640")
    assert config.endpoint("host1", "u1", "fd00:18:6::b") == "tcp:[fd00:18:6::b]:6640"
    assert config.endpoint("host1", "u1", "198.18.10.11") == "tcp:198.18.10.11:6640"
    pinned = Config(ovsdb_endpoint="tcp:{address}:6640",
                    ovsdb_hosts={"host1": "ssl:[fd00::9]:6640"})
    assert pinned.endpoint("host1", "u1", "fd00:18:6::b") == "ssl:[fd00::9]:6640"


# ------------------------------------------------------------------ the IPv6-only pool
def test_an_ipv6_only_topology_seeds_xapi_as_an_ipv6_only_install():
    topo = parse_file(TOPOLOGIES / V6_POOL)
    assert topo.management_address("host1").startswith("fd00:")
    sim = Simulator.from_topology(topo)
    session = sim.call("session.login_with_password", list(next(iter(sim.users.items()))))
    hosts = sim.call("host.get_all_records", [session]).values()
    assert sorted(h["address"] for h in hosts) == [topo.management_address(f"host{i}")
                                                    for i in (1, 2, 3)]
    pifs = sim.call("PIF.get_all_records", [session]).values()
    transport = [p for p in pifs if p["IPv6"] and p["IPv6"][0].startswith("fd4e:30::")]
    assert len(transport) == 3
    for pif in transport:
        assert pif["primary_address_type"] == "IPv6"
        assert (pif["ip_configuration_mode"], pif["IP"]) == ("None", "")
        assert pif["ipv6_configuration_mode"] == "Static"


def test_management_may_be_an_ipv6_network():
    topo = parse_file(TOPOLOGIES / V6_POOL).relabel("tv6", "fd00:18:6::/64")
    assert topo.management_address(None) == "fd00:18:6::1"
    assert topo.management_address("host2") == "fd00:18:6::c"
    with pytest.raises(ValueError, match="/122 or larger"):
        parse_data({**topo.raw, "management": "fd00:18:6::/125"})


def tunnels_of(state: PoolState, host: str) -> dict[str, dict[str, str]]:
    """Peer host name -> the options of the tunnel port toward it, per protocol."""
    ref = next(h.ref for h in state.hosts.values() if h.name_label == host)
    names = {h.uuid: h.name_label for h in state.hosts.values()}
    config = compile_host(state, ref)
    out: dict[str, dict[str, str]] = {}
    for br in config.bridges:
        for port in br.ports:
            iface = port.interfaces[0]
            if iface.type in ("vxlan", "gre"):
                peer = names[port.external_ids["netctl-peer-host"]]
                out[f"{iface.type} {peer}"] = dict(iface.options)
    return out


def test_tunnels_of_an_ipv6_pool_run_between_the_transport_pifs_ipv6_addresses():
    state = topology_state(V6_POOL)
    for host, own in TRANSPORT.items():
        got = tunnels_of(state, host)
        peers = [h for h in TRANSPORT if h != host]
        assert sorted(got) == sorted(f"{p} {h}" for p in ("vxlan", "gre") for h in peers)
        for name, options in got.items():
            peer = name.split()[1]
            # local_ip too: a host may hold several IPv6 addresses on one device, and the
            # peer knows this one only
            assert options["remote_ip"] == TRANSPORT[peer]
            assert options["local_ip"] == own


def test_an_ipv4_pool_keeps_its_tunnels_as_they_were():
    state = topology_state("demo-pool.yaml")
    for name, options in tunnels_of(state, "host1").items():
        assert options["remote_ip"].startswith("172.30.0.") and "local_ip" not in options, name


def _pif_on(state: PoolState, host: str, network: str) -> PIF:
    href = next(h.ref for h in state.hosts.values() if h.name_label == host)
    net = next(n for n in state.networks.values() if n.name_label == network)
    return next(p for p in state.host_pifs(href) if p.network == net.ref)


def _with(state: PoolState, pif: PIF) -> PoolState:
    return state.replace(pifs={**state.pifs, pif.ref: pif})


def as_ipv4(pif: PIF, ip: str) -> PIF:
    """The PIF reconfigured IPv4-only (PIF.reconfigure_ip + primary_address_type IPv4)."""
    return replace(pif, ip_configuration_mode="Static", ip=ip, netmask="255.255.255.0",
                   ipv6_configuration_mode="None", ipv6=(), primary_address_type="IPv4")


def test_mixing_ipv4_and_ipv6_transports_is_a_problem_naming_both_and_the_rest_still_works():
    state = topology_state(V6_POOL)
    host3 = _pif_on(state, "host3", "pool")
    mixed = _with(state, as_ipv4(host3, "172.30.0.3"))

    # host1 and host2 (IPv6) keep their tunnels to each other; nobody has one to host3
    assert sorted(tunnels_of(mixed, "host1")) == ["gre host2", "vxlan host2"]
    assert sorted(tunnels_of(mixed, "host2")) == ["gre host1", "vxlan host1"]
    assert tunnels_of(mixed, "host3") == {}

    ref1 = next(h.ref for h in mixed.hosts.values() if h.name_label == "host1")
    problems = [p for p in compile_host(mixed, ref1).problems
                if p.object_class == "tunnel" and p.field == "transport_PIF"]
    # one per private network (VXLAN priva, GRE privb), each naming both PIFs and families
    assert len(problems) == 2
    for p in problems:
        assert "host3 bond0 is IPv4 (172.30.0.3)" in p.message
        assert "host1 bond0 is IPv6 (fd4e:30::1)" in p.message
        assert "primary_address_type" in p.message
        assert p.name_label.startswith("tunnel host3")
    assert {p.message.split("on network ")[1].split(";")[0] for p in problems} == \
        {"priva", "privb"}

    # and it goes when both are of one family again
    back = compile_host(state, ref1).problems
    assert not [p for p in back if "address family" in p.message]


def test_an_ipv6_transport_without_an_ipv6_address_has_no_endpoint():
    state = topology_state(V6_POOL)
    host2 = _pif_on(state, "host2", "pool")
    bare = _with(state, replace(host2, ipv6_configuration_mode="None", ipv6=("",)))
    tun = next(t for t in bare.tunnels.values() if t.transport_pif == host2.ref)
    assert [f for f, _m in check_tunnel(bare, tun)] == ["transport_PIF"]
    assert "IPv6" in check_tunnel(bare, tun)[0][1]
    # an IPv6 link-local address alone is no endpoint either (it is not routable between
    # hosts): the tunnels of host2 are left out with a Problem, the others stay
    local = _with(state, replace(host2, ipv6=("fe80::2/64",)))
    _kept, problems = check_host_networking(local)
    assert any(p.field == "transport_PIF" and "primary family IPv6" in p.message
               for p in problems)
    assert sorted(tunnels_of(local, "host1")) == ["gre host3", "vxlan host3"]


def test_xapi_accepts_a_tunnel_over_an_ipv6_only_transport_pif():
    """tunnel.create checks the transport PIF's configuration in its primary family."""
    sim = Simulator.from_topology(parse_file(TOPOLOGIES / V6_POOL))
    session = sim.call("session.login_with_password", list(next(iter(sim.users.items()))))
    pifs = sim.call("PIF.get_all_records", [session])
    transport = next(r for r, p in pifs.items() if p["IPv6"][:1] == ["fd4e:30::1/64"])
    net = sim.call("network.create", [session, {"name_label": "priv6", "bridge": "ipv6priv",
                                                "MTU": 1450, "other_config": {}}])
    tunnel = sim.call("tunnel.create", [session, transport, net, "vxlan"])
    assert sim.call("tunnel.get_transport_PIF", [session, tunnel]) == transport
    sim.call("PIF.reconfigure_ipv6", [session, transport, "None", "", "", ""])
    net2 = sim.call("network.create", [session, {"name_label": "priv7", "bridge": "ipv6priv2",
                                                 "MTU": 1450, "other_config": {}}])
    with pytest.raises(XapiError, match="TRANSPORT_PIF_NOT_CONFIGURED"):
        sim.call("tunnel.create", [session, transport, net2, "gre"])
