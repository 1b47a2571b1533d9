"""A pool built in Python, as Mininet's `Topo` builds a network: subclass and override `build`,
or call the `add_*` methods on an instance; `topology(prefix, management)` gives the
`netctl.topology.Topology` the lab and the xapi simulator read.

Why: an experiment sweeps a parameter (pool size, bond mode, network kind); writing a YAML
file per point, or a dict by hand in each script, repeats the cabling rules (a bond's members
need switch cables, a LACP bond a switch-side bond, a VLAN network's tag on the trunk, a tunnel
network's transport an address on every host). The builder applies them once; the file format
(topologies/README.md) stays the one truth: the builder only writes its data, and
`netctl.topology.parse_data` checks it exactly as it checks a file.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from netctl.topology import Topology, parse_data

TRANSPORT_NET = ipaddress.ip_network("172.31.0.0/16")  # hosts' addresses on uplink networks


@dataclass
class _Host:
    name: str
    network: str
    nics: int
    bond_mode: str | None
    lacp_time: str
    address: bool


@dataclass
class _Vm:
    name: str
    host: str
    vifs: list[dict[str, Any]] = field(default_factory=list)


class PoolBuilder:
    """A Xen pool under construction (Mininet: `Topo`).

    Mininet's `addSwitch` is `add_host` here (every pool host is an OVS switch of its own),
    `addHost` is `add_vm`, and `addLink` is implied: a host's NICs are cabled to the
    top-of-rack switch, a VM's VIF is plugged into its network's bridge on its host."""

    def __init__(self, name: str = "exp", **params: Any) -> None:
        """`params` go to `build`, as Mininet's `Topo(**params)` hands them on."""
        self.name = name
        self._networks: list[dict[str, Any]] = []
        self._hosts: list[_Host] = []
        self._vms: list[_Vm] = []
        self._outside: list[dict[str, Any]] = []
        self._pool_config: dict[str, str] = {}
        self.build(**params)

    def build(self, **params: Any) -> None:
        """Override to describe the pool (Mininet's `Topo.build`)."""

    # ------------------------------------------------------------------ networks
    def add_network(self, name: str, bridge: str | None = None, mtu: int | None = None,
                    vlan: int | None = None, parent: str | None = None,
                    tunnel: str | None = None, transport: str | None = None) -> str:
        """An external network (neither `vlan` nor `tunnel`), a VLAN network (`vlan` tag on
        the PIFs of `parent`) or a private network (`tunnel` gre|vxlan over `transport`).
        The bridge defaults to `xenbr<N>` / `xapi<N>` in the order networks are added."""
        kind_bridge = "xenbr" if vlan is None and tunnel is None else "xapi"
        entry: dict[str, Any] = {"name": name,
                                 "bridge": bridge or f"{kind_bridge}{len(self._networks)}"}
        if mtu is not None:
            entry["mtu"] = mtu
        if vlan is not None:
            entry["vlan"] = {"tag": vlan, "parent": parent or self._first_external()}
        if tunnel is not None:
            entry["tunnel"] = {"protocol": tunnel, "transport": transport
                               or self._first_external()}
            entry.setdefault("mtu", 1450)  # room for the encapsulation on a 1500 underlay
        self._networks.append(entry)
        return name

    def _first_external(self) -> str:
        for net in self._networks:
            if "vlan" not in net and "tunnel" not in net:
                return net["name"]
        raise ValueError("add an external network first (a VLAN or tunnel needs a parent)")

    # ------------------------------------------------------------------ hosts
    def add_host(self, name: str, network: str | None = None, nics: int = 1,
                 bond_mode: str | None = None, lacp_time: str = "fast",
                 address: bool = True) -> str:
        """A pool host (Mininet: a switch) with `nics` NICs on `network` (default: the first
        external network), cabled to the switch; with `nics` >= 2 and `bond_mode`
        (lacp, active-backup, balance-slb) they form bond0, and a `lacp` bond gets its
        switch-side bond (`lacp_time` fast|slow on both sides). `address`: the host has an
        IPv4 address on that network (172.31.0.0/16), as a tunnel transport needs."""
        if nics > 1 and bond_mode is None:
            raise ValueError(f"host {name}: {nics} NICs need a bond_mode")
        self._hosts.append(_Host(name, network or self._first_external(), nics, bond_mode,
                                 lacp_time, address))
        return name

    # ------------------------------------------------------------------ VMs
    def add_vm(self, name: str, host: str) -> str:
        """A VM running on `host` (Mininet: a host); give it VIFs with `add_vif`."""
        self._vms.append(_Vm(name, host))
        return name

    def add_vif(self, vm: str, network: str, ipv4: str | None = None,
                ipv6: str | None = None, **extra: Any) -> int:
        """A VIF of `vm` on `network` (Mininet: a link); returns its device number (the
        guest's `eth<device>`). `extra`: any VIF field of the topology format
        (`locking_mode`, `ipv4_allowed`, `mac`, ...)."""
        entry = next(v for v in self._vms if v.name == vm)
        device = len(entry.vifs)
        vif: dict[str, Any] = {"device": device, "network": network, **extra}
        if ipv4:
            vif["ipv4"] = [ipv4]
        if ipv6:
            vif["ipv6"] = [ipv6]
        entry.vifs.append(vif)
        return device

    def add_outside(self, name: str, ipv4: str, vlan: int = 1) -> str:
        """A machine outside the pool behind the switch, in access VLAN `vlan`."""
        self._outside.append({"name": name, "vlan": vlan, "ipv4": [ipv4]})
        return name

    def pool_config(self, **other_config: str) -> None:
        """The pool object's other_config (e.g. `vswitch-controller-fail-mode`)."""
        self._pool_config.update(other_config)

    # ------------------------------------------------------------------ output
    def data(self, prefix: str, management: str) -> dict[str, Any]:
        """The pool in the topology file's format (topologies/README.md), as parsed YAML."""
        vlans: dict[str, list[int]] = {}
        for net in self._networks:
            if "vlan" in net:
                vlans.setdefault(net["vlan"]["parent"], []).append(net["vlan"]["tag"])
        hosts, cables, switch_bonds = [], [], []
        for i, h in enumerate(self._hosts, start=1):
            devices = [f"eth{n}" for n in range(h.nics)]
            host: dict[str, Any] = {"name": h.name}
            if h.bond_mode is None:
                host["nics"] = [{"device": devices[0], "network": h.network}]
            else:
                host["nics"] = [{"device": d} for d in devices]
                bond: dict[str, Any] = {"device": "bond0", "members": devices,
                                        "mode": h.bond_mode, "network": h.network}
                if h.bond_mode == "lacp":
                    bond["properties"] = {"lacp-time": h.lacp_time}
                    switch_bonds.append({"host": h.name, "nics": devices,
                                         "lacp_time": h.lacp_time})
                host["bonds"] = [bond]
            if h.address:
                ip = TRANSPORT_NET.network_address + i
                host["addresses"] = {h.network: {"ipv4": f"{ip}/{TRANSPORT_NET.prefixlen}"}}
            hosts.append(host)
            trunk = sorted(vlans.get(h.network, []))
            for d in devices:
                cables.append({"host": h.name, "nic": d, **({"trunk": trunk} if trunk else {})})
        switch: dict[str, Any] = {"cables": cables}
        if switch_bonds:
            switch["bonds"] = switch_bonds
        if self._outside:
            switch["outside"] = self._outside
        out: dict[str, Any] = {
            "name": self.name, "prefix": prefix, "management": management,
            "networks": self._networks, "hosts": hosts, "switch": switch,
            "vms": [{"name": v.name, "host": v.host, "vifs": v.vifs} for v in self._vms],
        }
        if self._pool_config:
            out["pool"] = {"other_config": dict(self._pool_config)}
        return out

    def topology(self, prefix: str, management: str) -> Topology:
        """The pool as the lab and the simulator read it (checked as a file would be)."""
        return parse_data(self.data(prefix, management), f"<{type(self).__name__} {self.name}>")
