"""Hand-made PoolStates for the host-networking compilers: a tiny builder that keeps xapi's
derived fields (bond_master_of, bond_slave_of, VLAN_master_of, tunnel_access_PIF_of,
Bond.slaves) consistent, so each test states only what it is about."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from netctl.model import (
    PIF,
    VIF,
    VLAN,
    VM,
    Bond,
    FrozenMap,
    Host,
    Network,
    Pool,
    PoolState,
    Tunnel,
)


class PoolBuilder:
    def __init__(self, **pool_other_config: str) -> None:
        self.objs: dict[str, Any] = {}
        self.pool = Pool("OpaqueRef:pool", "pool-uuid", "pool",
                         other_config=FrozenMap(pool_other_config))
        self._n = 0
        self._nic_networks: dict[str, Network] = {}

    def _ref(self, kind: str) -> str:
        self._n += 1
        return f"OpaqueRef:{kind}{self._n}"

    def _put(self, obj: Any) -> Any:
        self.objs[obj.ref] = obj
        return obj

    def host(self, name: str) -> Host:
        ref = self._ref("host")
        return self._put(Host(ref, f"uuid-{name}", name, software_version=FrozenMap(
            {"network_backend": "openvswitch"})))

    def network(self, name: str, bridge: str, mtu: int = 1500, **other_config: str) -> Network:
        return self._put(Network(self._ref("net"), f"uuid-{name}", name, bridge, mtu,
                                 other_config=FrozenMap(other_config)))

    def nic(self, host: Host, device: str, network: Network | None, mac: str = "",
            attached: bool | None = None, ip: str = "", **other_config: str) -> PIF:
        mac = mac or f"02:00:00:00:{int(host.ref[-1]):02x}:{int(device[-1]):02x}"
        own = network
        if own is None:  # a bond member or unused NIC: xapi gives it a network of its own
            own = self._nic_networks.get(device)
            if own is None:
                own = self._nic_networks[device] = self.network(
                    f"nic-{device}", f"xenbr{device[3:]}x")
        pif = PIF(self._ref("pif"), f"uuid-{host.name_label}-{device}", device, host.ref,
                  own.ref, mac, physical=True,
                  currently_attached=network is not None if attached is None else attached,
                  other_config=FrozenMap(other_config))
        if ip:
            pif = _with_ip(pif, ip)
        return self._put(pif)

    def bond(self, host: Host, device: str, network: Network, members: list[PIF],
             mode: str = "balance-slb", ip: str = "", master_other_config: dict | None = None,
             **properties: str) -> tuple[Bond, PIF]:
        bref, mref = self._ref("bond"), self._ref("pif")
        master = PIF(mref, f"uuid-{host.name_label}-{device}", device, host.ref, network.ref,
                     members[0].mac, currently_attached=True, bond_master_of=(bref,),
                     other_config=FrozenMap(master_other_config or {}))
        if ip:
            master = _with_ip(master, ip)
        bond = Bond(bref, f"uuid-bond-{host.name_label}-{device}", mref,
                    tuple(m.ref for m in members), mode, FrozenMap(properties),
                    primary_slave=members[0].ref)
        for m in members:
            self.objs[m.ref] = replace(self.objs[m.ref], bond_slave_of=bref,
                                       currently_attached=False)
        self._put(master)
        return self._put(bond), master

    def vlan(self, tagged: PIF, tag: int, network: Network, ip: str = "",
             attached: bool = True) -> tuple[VLAN, PIF]:
        vref, uref = self._ref("vlan"), self._ref("pif")
        host = self.objs[tagged.host]
        untagged = PIF(uref, f"uuid-{host.name_label}-vlan{tag}-{network.name_label}",
                       tagged.device, tagged.host, network.ref, "fe:ff:ff:ff:ff:ff", vlan=tag,
                       currently_attached=attached, vlan_master_of=vref)
        if ip:
            untagged = _with_ip(untagged, ip)
        vlan = VLAN(vref, f"uuid-vlan-{host.name_label}-{network.name_label}", tagged.ref, uref,
                    tag)
        self._put(untagged)
        return self._put(vlan), untagged

    def tunnel(self, transport: PIF, network: Network, protocol: str = "gre",
               status: dict | None = None) -> tuple[Tunnel, PIF]:
        tref, aref = self._ref("tunnel"), self._ref("pif")
        host = self.objs[transport.host]
        access = PIF(aref, f"uuid-{host.name_label}-tunnel-{network.name_label}", "tunnel0",
                     transport.host, network.ref, f"02:aa:00:00:00:{int(host.ref[-1]):02x}",
                     currently_attached=True, tunnel_access_pif_of=(tref,))
        tun = Tunnel(tref, f"uuid-tunnel-{host.name_label}-{network.name_label}", aref,
                     transport.ref, protocol, FrozenMap(status or {}))
        self._put(access)
        return self._put(tun), access

    def vm(self, name: str, host: Host, domid: int) -> VM:
        return self._put(VM(self._ref("vm"), f"uuid-{name}", name, "Running", host.ref, domid))

    def vif(self, vm: VM, device: int, network: Network, trunks: tuple[int, ...] = ()) -> VIF:
        return self._put(VIF(self._ref("vif"), f"uuid-{vm.name_label}-vif{device}",
                             str(device), network.ref, vm.ref,
                             f"02:bb:00:00:{int(vm.ref[-1]):02x}:{device:02x}",
                             currently_attached=True, trunks=trunks))

    def set(self, obj: Any, **changes: Any) -> Any:
        """Change an object already built (e.g. to break it on purpose)."""
        new = replace(self.objs[obj.ref], **changes)
        self.objs[obj.ref] = new
        return new

    def state(self) -> PoolState:
        # Bond.slaves is derived from PIF.bond_slave_of, as xapi derives it.
        objs = dict(self.objs)
        for ref, obj in objs.items():
            if isinstance(obj, Bond):
                slaves = tuple(p.ref for p in objs.values()
                               if isinstance(p, PIF) and p.bond_slave_of == ref)
                objs[ref] = replace(obj, slaves=slaves)
        return PoolState.build([self.pool, *objs.values()])


def _with_ip(pif: PIF, cidr: str) -> PIF:
    ip, prefix = cidr.split("/")
    bits = (0xFFFFFFFF << (32 - int(prefix))) & 0xFFFFFFFF
    netmask = ".".join(str((bits >> s) & 0xFF) for s in (24, 16, 8, 0))
    return replace(pif, ip_configuration_mode="Static", ip=ip, netmask=netmask)
