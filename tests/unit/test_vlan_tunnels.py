"""Tunnels: the full mesh between hosts, per-network keys, transport PIF kinds, Problems."""

from __future__ import annotations

from harness.hostnet_builders import PoolBuilder
from vlan import allocate_tunnel_keys, compile_host, derived_key


def mesh_pool(n_hosts: int = 3, protocol: str = "gre", transport: str = "nic", **status: str):
    """n hosts, each with eth0 on `pool` (172.30.0.i), and a private network over it."""
    b = PoolBuilder()
    pool = b.network("pool", "xenbr0", mtu=1600)
    priv = b.network("priv", "xapi4")
    vlan_net = b.network("v10", "xapi2", mtu=1600)
    hosts, tunnels = [], []
    for i in range(1, n_hosts + 1):
        h = b.host(f"host{i}")
        hosts.append(h)
        if transport == "nic":
            t = b.nic(h, "eth0", pool, ip=f"172.30.0.{i}/24")
        elif transport == "bond":
            _, t = b.bond(h, "bond0", pool, [b.nic(h, "eth0", None), b.nic(h, "eth1", None)],
                          "lacp", ip=f"172.30.0.{i}/24")
        else:  # a VLAN PIF
            e0 = b.nic(h, "eth0", pool)
            _, t = b.vlan(e0, 10, vlan_net, ip=f"172.30.10.{i}/24")
        tunnels.append(b.tunnel(t, priv, protocol, status=dict(status) or None)[0])
    return b, hosts, priv, tunnels


def tunnel_ports(config, bridge="xapi4"):
    return {p.name: p for p in config.bridge(bridge).ports if p.interfaces[0].type != "internal"}


def test_full_mesh_each_host_has_a_port_to_every_peer_with_the_same_key():
    b, hosts, priv, _ = mesh_pool(3, "vxlan")
    state = b.state()
    configs = [compile_host(state, h.ref) for h in hosts]
    keys = set()
    for i, config in enumerate(configs, start=1):
        ports = tunnel_ports(config)
        remotes = sorted(p.interfaces[0].options["remote_ip"] for p in ports.values())
        assert remotes == sorted(f"172.30.0.{j}" for j in (1, 2, 3) if j != i)
        for p in ports.values():
            assert p.interfaces[0].type == "vxlan"
            keys.add(p.interfaces[0].options["key"])
            assert p.external_ids["xs-network-uuid"] == priv.uuid
        assert config.bridge("xapi4").external_ids["xs-network-uuids"] == priv.uuid
        assert "hwaddr" in config.bridge("xapi4").other_config
        assert len(config.tunnels) == 2
    assert len(keys) == 1
    assert keys == {str(derived_key(priv.uuid))}


def test_port_names_are_unique_per_host_and_stable():
    b, hosts, _, _ = mesh_pool(3)
    names = [p.name for p in compile_host(b.state(), hosts[0].ref).bridge("xapi4").ports]
    assert len(set(names)) == len(names) and all(len(n) <= 15 for n in names)
    again = [p.name for p in compile_host(b.state(), hosts[0].ref).bridge("xapi4").ports]
    assert names == again


def test_gre_ports_when_the_tunnels_say_gre():
    b, hosts, _, _ = mesh_pool(2, "gre")
    [port] = tunnel_ports(compile_host(b.state(), hosts[0].ref)).values()
    assert port.interfaces[0].type == "gre" and port.name.startswith("gre")


def test_key_from_tunnel_status_when_present():
    b, hosts, _, _ = mesh_pool(2, key="4242")
    [port] = tunnel_ports(compile_host(b.state(), hosts[1].ref)).values()
    assert port.interfaces[0].options["key"] == "4242"


def test_keys_are_unique_pool_wide_even_when_derived_keys_collide():
    b = PoolBuilder()
    pool = b.network("pool", "xenbr0")
    a, c = b.network("a", "xapi4"), b.network("c", "xapi5")
    h = b.host("host1")
    e0 = b.nic(h, "eth0", pool, ip="172.30.0.1/24")
    # network a's status claims the key network c would derive
    b.tunnel(e0, a, status={"key": str(derived_key(c.uuid))})
    b.tunnel(e0, c)
    keys = allocate_tunnel_keys(b.state())
    assert keys[a.ref] == derived_key(c.uuid)
    assert keys[c.ref] == derived_key(c.uuid) + 1


def test_key_is_a_pure_function_of_the_pool():
    b1, _, _, _ = mesh_pool(2)
    b2, _, _, _ = mesh_pool(2)
    assert allocate_tunnel_keys(b1.state()) == allocate_tunnel_keys(b2.state())


def test_transport_over_a_bond_and_its_address_on_the_bond_bridge():
    b, hosts, _, _ = mesh_pool(2, transport="bond")
    config = compile_host(b.state(), hosts[0].ref)
    [port] = tunnel_ports(config).values()
    assert port.interfaces[0].options["remote_ip"] == "172.30.0.2"
    assert [(a.device, a.cidr) for a in config.addresses] == [("xenbr0", "172.30.0.1/24")]


def test_transport_over_a_vlan_pif_and_its_address_on_the_fake_bridge():
    b, hosts, _, _ = mesh_pool(2, transport="vlan")
    config = compile_host(b.state(), hosts[0].ref)
    [port] = tunnel_ports(config).values()
    assert port.interfaces[0].options["remote_ip"] == "172.30.10.2"
    assert config.bridge("xenbr0").port("xapi2").tag == 10
    assert [(a.device, a.cidr) for a in config.addresses] == [("xapi2", "172.30.10.1/24")]


def test_transport_without_ip_is_a_problem_and_peers_leave_that_host_out():
    b, hosts, _, tunnels = mesh_pool(3)
    transport = b.objs[tunnels[2].transport_pif]
    b.set(transport, ip_configuration_mode="None", ip="", netmask="")
    state = b.state()
    config1 = compile_host(state, hosts[0].ref)
    remotes = [p.interfaces[0].options["remote_ip"] for p in tunnel_ports(config1).values()]
    assert remotes == ["172.30.0.2"]
    problem = next(p for p in config1.problems if p.object_class == "tunnel")
    assert (problem.uuid, problem.field) == (tunnels[2].uuid, "transport_PIF")
    assert "host3 eth0" in problem.message
    assert "xapi4" not in compile_host(state, hosts[2].ref).bridge_names()


def test_tunnel_protocols_that_differ_between_hosts_is_a_problem():
    b, hosts, _, tunnels = mesh_pool(2, "gre")
    b.set(tunnels[1], protocol="vxlan")
    config = compile_host(b.state(), hosts[0].ref)
    assert tunnel_ports(config) == {}
    assert any(p.object_class == "tunnel" and p.field == "protocol" for p in config.problems)


def test_unplugged_access_pif_means_no_bridge_and_no_peer_link():
    b, hosts, _, tunnels = mesh_pool(2)
    b.set(b.objs[tunnels[1].access_pif], currently_attached=False)
    state = b.state()
    assert tunnel_ports(compile_host(state, hosts[0].ref)) == {}
    assert "xapi4" not in compile_host(state, hosts[1].ref).bridge_names()
