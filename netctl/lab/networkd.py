"""The lab's stand-in for xcp-networkd: a host's bridges, bonds, VLANs and tunnels, plainly.

A freshly installed XCP-ng host has networkd configure OVS from xapi's PIFs. Until netctl's own
OVSDB programming takes that job (`host_networking="none"`), the lab does the minimum here so
that VMs on different hosts can reach each other with OVS `NORMAL` forwarding: one bridge per
network with its NIC or bond, VLAN networks as fake bridges, private networks as a full mesh of
tunnel ports between the hosts that carry them. It emits ovs-vsctl arguments (one transaction
per host) and is deliberately simple: the faithful mapping is netctl's, not the lab's.
"""

from __future__ import annotations

from bonding.mapping import bond_columns
from flows.ports import datapath_id_text
from netctl.topology import Host, Network, Topology
from vlan.tunnels import tunnel_port_name

TUNNEL_KEY_BASE = 1000


def tunnel_port(net: Network, peer: Host) -> str:
    return f"{net.tunnel_protocol}-h{peer.index}"


def host_vsctl_args(topo: Topology, host: Host, controller: str | None = None) -> list[str]:
    """ovs-vsctl arguments (joined by `--`) that build `host`'s networking.

    With a `controller` target every bridge connects to it (OpenFlow 1.3, fail_mode secure,
    datapath id as netctl derives it) and private networks become a full mesh: the
    controller's split-horizon flows make that loop-free."""
    cmds: list[list[str]] = []
    nics = {n.network: n.device for n in host.nics if n.network}
    bonds = {b.network: b for b in host.bonds}

    def bridge(name: str) -> None:
        cmds.append(["--may-exist", "add-br", name])
        if controller is None:
            cmds.append(["set", "bridge", name, "datapath_type=netdev", "fail_mode=standalone"])
            return
        cmds.append(
            [
                "set",
                "bridge",
                name,
                "datapath_type=netdev",
                "fail_mode=secure",
                "protocols=OpenFlow13",
                f"other_config:datapath-id={datapath_id_text(host.uuid, name)}",
                "other_config:disable-in-band=true",
            ]
        )
        cmds.append(["set-controller", name, controller])

    for net in topo.networks:
        if net.kind != "external":
            continue
        if net.name in nics:
            bridge(net.bridge)
            cmds.append(["--may-exist", "add-port", net.bridge, nics[net.name]])
        elif net.name in bonds:
            bond = bonds[net.name]
            bridge(net.bridge)
            cmds.append(
                [
                    "--may-exist",
                    "add-bond",
                    net.bridge,
                    bond.device,
                    *bond.members,
                    *_bond_args(dict(bond.properties), bond.mode),
                ]
            )
    for net in topo.networks:
        if net.kind == "vlan" and net.vlan_parent in (*nics, *bonds):
            parent = topo.network(net.vlan_parent)
            cmds.append(["--may-exist", "add-br", net.bridge, parent.bridge, str(net.vlan_tag)])
        elif net.kind == "private" and host.address_on(net.tunnel_transport or ""):
            bridge(net.bridge)
            key = TUNNEL_KEY_BASE + topo.networks.index(net)
            carriers = topo.hosts_with(net.name)
            hub = carriers[0]
            for peer in carriers:
                star_edge = hub.name in (host.name, peer.name)
                if peer.name == host.name or (controller is None and not star_edge):
                    continue
                addr = peer.address_on(net.tunnel_transport or "")
                # an IPv6-only transport (no ipv4) is the PIF's primary family, as seeded
                remote = addr and (addr.ipv4 or addr.ipv6)
                own = host.address_on(net.tunnel_transport or "")
                if addr is None or not remote or own is None or (
                        (addr.ipv4 is None) != (own.ipv4 is None)):
                    continue  # no address, or another family than this host's
                port = (
                    tunnel_port(net, peer)
                    if controller is None
                    else tunnel_port_name(net.tunnel_protocol or "gre", net, peer.uuid)
                )
                cmds.append(["--may-exist", "add-port", net.bridge, port])
                cmds.append(
                    [
                        "set",
                        "interface",
                        port,
                        f"type={net.tunnel_protocol}",
                        f"options:remote_ip={remote.split('/')[0]}",
                        f"options:key={key}",
                        *([] if own.ipv4 or not own.ipv6
                          else [f"options:local_ip={own.ipv6.split('/')[0]}"]),
                    ]
                )
    args: list[str] = []
    for c in cmds:
        args += [*c, "--"]
    return args[:-1]


def _bond_args(props: dict[str, str], mode: str) -> list[str]:
    """ovs-vsctl column words for a bond, through netctl's own networkd mapping (the lab only
    leaves out networkd's up/down delays, which would slow its tests down)."""
    properties = [("mode", mode), ("hashing-algorithm", props.get("hashing_algorithm", ""))]
    properties += [(k, v) for k, v in sorted(props.items()) if k != "hashing_algorithm"]
    cols = bond_columns(properties)
    return [f"lacp={cols.lacp}", f"bond_mode={cols.bond_mode}",
            *(f"other_config:{k}={v}" for k, v in sorted(cols.other_config.items()))]
