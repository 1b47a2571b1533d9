"""The lab: a whole Xen pool on one machine, built from a topology file.

Layout (every name carries the lab's prefix P, which the lab owns):
- root namespace: Linux bridge `P-mgmt` (the management network; the controller and the xapi
  simulator run here and reach every host at its management address) and one veth `P-mN` per
  host into it;
- `P-HOST`: a pool host, with its own ovsdb-server/ovs-vswitchd (OVSDB on tcp:MGMT:6640),
  management interface `mgmt0`, NICs `eth0..ethN` (veths to the switch) and VIF ports
  `vif<domid>.<devid>`;
- `P-tor`: the top-of-rack switch, an OVS instance with bridge `tor`: port `hI-ethN` per cable
  (access VLAN or trunk), LACP bonds `poI`, and `o-NAME` for machines outside the pool; it
  learns a MAC's new port at its first frame there, as a hardware switch does (TOR_MAX_IDLE_MS);
- `P-VM`: a VM, with `eth<devid>` per plugged VIF; `P-NAME` for an outside machine.

The lab plays xenopsd: it plugs VIFs into the host bridge with the external_ids xapi's hotplug
scripts write, and can unplug, re-plug and migrate them while it runs. The topology's VMs are
there from the start; with the lab agent (`netctl.lab.agent`) following xapi, any VM xapi
runs becomes a namespace too (`start_vm`/`stop_vm`, named from its name_label) and every VIF
xapi attaches is plugged from its xapi record (`plug` with a `VifSpec`). A migration moves the
host end of each VIF's veth to the new host under its new name: the guest's interface, with
whatever addresses the operator gave it, stays as it is.
"""

from __future__ import annotations

import ipaddress
import itertools
import re
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from pyroute2 import NetNS

from netctl.lab import neigh, netns, networkd
from netctl.lab.ovs_instance import OvsInstance
from netctl.lab.state import LabState
from netctl.model import vif_port
from netctl.topology import Topology, Vif, parse_text

UNDERLAY_MTU = 1600  # NICs carry tunnels: room for VXLAN/GRE around a 1500-byte VM frame
TOR_BRIDGE = "tor"
# The switch learns a MAC's new port from the first frame that arrives there, as a hardware
# switch does. OVS learns (NORMAL) only when it translates a flow: a frame that hits a cached
# datapath flow (in_port, dl_src, ...) is learned from at the next revalidator pass (up to
# 500 ms later). With OVS's default max-idle (10 s), a VM that comes back to a host it left a
# few seconds ago hits the flows of its previous stay there, and the switch keeps sending its
# traffic to the old host's cable for up to 500 ms. Flows idle for more than this are dropped
# (documented minimum of Open_vSwitch other_config:max-idle, and the revalidator's period), so
# a MAC that appears on a port after a second's silence there is learned at its first frame.
TOR_MAX_IDLE_MS = 500


class LabError(RuntimeError):
    """The lab cannot do what was asked (already up, name clash, unknown VM...)."""


@dataclass(frozen=True)
class VifSpec:
    """What the lab needs to plug one VIF, as xenopsd gets it from xapi: the backend port
    `vif<domid>.<device>` on `bridge` with xapi's external_ids, `eth<device>` in the VM with
    `mac`. `addresses` are given to the guest interface (topology VMs only: other guests are
    configured by the operator). `parent_bridge`/`vlan_tag`: for a VLAN network, the fake
    bridge to create when the lab plays networkd (host_networking="lab")."""

    device: int
    mac: str
    vif_uuid: str
    vm_uuid: str
    network_uuid: str
    bridge: str
    mtu: int = 1500
    addresses: tuple[str, ...] = ()
    parent_bridge: str | None = None
    vlan_tag: int | None = None

    @classmethod
    def from_record(cls, data: dict) -> VifSpec:
        return cls(**{**data, "addresses": tuple(data.get("addresses", ()))})


_MOVE_COUNTER = itertools.count()


class Lab:
    """A running lab. Build with `Lab.up(topology)`, re-attach with `Lab.attach(prefix)`."""

    def __init__(self, topology: Topology, state: LabState) -> None:
        self.topology = topology
        self.state = state

    # ------------------------------------------------------------------ names and handles
    @property
    def prefix(self) -> str:
        return self.topology.prefix

    def ns(self, node: str) -> str:
        """Namespace of a host, running VM, outside machine or the switch (by lab name)."""
        fixed = (
            {h.name for h in self.topology.hosts}
            | {o.name for o in self.topology.switch.outside}
            | {self.topology.switch.name}
        )
        if node in fixed or node in self.state.vm_host:
            return f"{self.prefix}-{node}"
        if node in {v.name for v in self.topology.vms}:
            raise LabError(f"VM '{node}' of lab '{self.prefix}' is not running")
        known = fixed | set(self.state.vm_host)
        raise LabError(
            f"lab '{self.prefix}' has no host, VM or switch named '{node}' running "
            f"(known: {', '.join(sorted(known))})"
        )

    def node_names(self) -> set[str]:
        """Every name a lab namespace has or may get (hosts, switch, outside machines,
        topology VMs, running VMs): a new VM's name must be none of them."""
        return (
            {h.name for h in self.topology.hosts}
            | {o.name for o in self.topology.switch.outside}
            | {self.topology.switch.name}
            | {v.name for v in self.topology.vms}
            | set(self.state.vm_host)
        )

    def ovs(self, host: str) -> OvsInstance:
        """The OVS instance of a pool host (or of the switch, by its name)."""
        if host == self.topology.switch.name:
            return OvsInstance(self.ns(host), self.state.dir / host)
        return OvsInstance(
            self.ns(host), self.state.dir / host,
            self.topology.management_address(host) if self.state.ovsdb_tcp else None,
        )

    @property
    def tor(self) -> OvsInstance:
        return self.ovs(self.topology.switch.name)

    @property
    def mgmt_bridge(self) -> str:
        return f"{self.prefix}-mgmt"

    @property
    def controller_address(self) -> str:
        """The root namespace's management address: where controllers and xapi listen."""
        return self.topology.management_address(None)

    def ovsdb_endpoint(self, host: str) -> str:
        return self.ovs(host).ovsdb_endpoint

    def vm_host(self, vm: str) -> str:
        """The host a VM runs on, "-" when it does not run (halted, or not in xapi)."""
        return self.state.vm_host.get(vm, "-")

    def vif_port(self, vm: str, device: int) -> str:
        return vif_port(self.state.vm_domid[vm], str(device))

    def vif(self, vm: str, device: int) -> Vif:
        """The topology's VIF (topology VMs only; see `vif_spec` for any plugged VIF)."""
        return next(v for v in self.topology.vm(vm).vifs if v.device == device)

    def vif_spec(self, vm: str, device: int) -> VifSpec:
        """What is plugged as VIF `device` of `vm` (or, for a topology VM's VIF not plugged
        now, what the topology would plug)."""
        recorded = self.state.vifs.get(vm, {}).get(str(device))
        if recorded is not None:
            return VifSpec.from_record(recorded)
        return self.topology_vif_spec(vm, device)

    def topology_vif_spec(self, vm: str, device: int) -> VifSpec:
        vif = self.vif(vm, device)
        net = self.topology.network(vif.network)
        parent = self.topology.network(net.vlan_parent) if net.kind == "vlan" else None
        return VifSpec(
            device, vif.mac, vif.uuid, self.topology.vm(vm).uuid, net.uuid, net.bridge, net.mtu,
            (*vif.ipv4, *vif.ipv6), parent.bridge if parent else None, net.vlan_tag,
        )
    # ------------------------------------------------------------------ running commands
    def exec(
        self, node: str, argv: Sequence[str], check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess:
        """Run a command inside a lab node and wait for it."""
        return netns.run(self.ns(node), argv, check=check, timeout=timeout)

    def popen(self, node: str, argv: Sequence[str], **kwargs) -> subprocess.Popen:
        """Start a command inside a lab node in the background (caller waits or stops it)."""
        kwargs.setdefault("stdout", subprocess.PIPE)
        kwargs.setdefault("stderr", subprocess.PIPE)
        kwargs.setdefault("text", True)
        return subprocess.Popen(["ip", "netns", "exec", self.ns(node), *argv], **kwargs)

    # ------------------------------------------------------------------ lifecycle
    @classmethod
    def up(
        cls,
        topology: Topology,
        host_networking: str = "lab",
        start_vms: bool | None = None,
        controller: str | None = None,
        ovsdb_tcp: bool = True,
    ) -> Lab:
        """Build the whole lab. On any failure, removes what it made, then raises.

        host_networking="lab": the lab configures host bridges, bonds, VLANs and tunnels itself
        (standing in for xcp-networkd). "none": host OVS instances start empty, for netctl to
        program; then VMs are not started (their bridges do not exist yet) unless `start_vms`:
        call `start_vms()` once the bridges exist, as xapi starts VMs after networkd is done.
        `controller` (e.g. "tcp:198.18.10.1:6653", with host_networking="lab"): every host
        bridge connects to that OpenFlow controller, fail_mode secure, tunnels in a full mesh.
        `ovsdb_tcp=False`: the hosts' OVSDB opens no TCP port of its own; only a manager set
        through xapi's SDN_controller (`netctl.lab.config_update`) reaches it from outside."""
        if host_networking not in ("lab", "none"):
            raise LabError(f"host_networking must be 'lab' or 'none', not {host_networking!r}")
        if topology.prefix in LabState.prefixes():
            raise LabError(f"lab '{topology.prefix}' is already up: run `netctl lab down` first")
        overlap = netns.root_routes_overlapping(topology.management)
        if overlap:
            raise LabError(
                f"{topology.source}: topology: field 'management': {topology.management} "
                f"overlaps routes of this machine ({', '.join(overlap)})"
            )
        names = [
            f"{topology.prefix}-{n}"
            for n in [
                topology.switch.name,
                *(h.name for h in topology.hosts),
                *(v.name for v in topology.vms),
                *(o.name for o in topology.switch.outside),
            ]
        ]
        clash = [n for n in names if netns.exists(n)]
        if clash or netns.link_exists(None, f"{topology.prefix}-mgmt"):
            raise LabError(
                f"namespaces or links of lab '{topology.prefix}' exist but no lab record "
                f"does: {', '.join(clash) or topology.prefix + '-mgmt'}; remove them "
                "(ip netns del / ip link del) or pick another prefix"
            )
        # one ARP/ND table for all namespaces of the machine: room for every VM's neighbours
        neigh.ensure_room(topology)
        state = LabState(
            prefix=topology.prefix,
            name=topology.name,
            source=topology.source,
            topology_text=topology.to_yaml(),
            host_networking=host_networking,
            controller=controller,
            ovsdb_tcp=ovsdb_tcp,
            vm_host={v.name: v.host for v in topology.vms},
            vm_domid={v.name: v.domid for v in topology.vms},
            vm_uuid={v.name: v.uuid for v in topology.vms},
        )
        state.save()
        lab = cls(topology, state)
        try:
            lab._build()
            if start_vms if start_vms is not None else host_networking == "lab":
                lab.start_vms()
        except BaseException:
            lab.down()
            raise
        return lab

    @classmethod
    def attach(cls, prefix: str | None = None) -> Lab:
        """Re-attach to a lab that is up (the only one, or the one with this prefix)."""
        if prefix is None:
            up = LabState.prefixes()
            if not up:
                raise LabError("no lab is up")
            if len(up) > 1:
                raise LabError(f"several labs are up ({', '.join(up)}): name one with --lab")
            prefix = up[0]
        state = LabState.load(prefix)
        return cls(parse_text(state.topology_text, state.source), state)

    def reload(self) -> Lab:
        """Re-read the lab's record (another process, e.g. the lab agent, may have changed
        where VMs are and which VIFs are plugged)."""
        self.state = LabState.load(self.prefix)
        return self

    def set_cable(self, host: str, nic: str, up: bool) -> None:
        """Pull or plug the cable of a host NIC at the switch: the NIC loses/regains carrier."""
        port = f"h{self.topology.host(host).index}-{nic}"
        self.exec(self.topology.switch.name, ["ip", "link", "set", port, "up" if up else "down"])

    def silence_cable(self, host: str, nic: str, silent: bool = True) -> None:
        """Cut a cable *silently*: carrier stays up, but nothing bigger than a minimum frame
        crosses (the switch-side end's MTU drops to 68, so the peer's frames — LACP PDUs
        among them — are dropped on arrival and the switch cannot send them either). What a
        bad transceiver or a half-dead patch does; only LACP's timeout notices it."""
        port = f"h{self.topology.host(host).index}-{nic}"
        mtu = "68" if silent else str(UNDERLAY_MTU)
        self.exec(self.topology.switch.name, ["ip", "link", "set", port, "mtu", mtu])

    def down(self) -> list[str]:
        """Stop exactly the processes the lab started and delete exactly what it created."""
        return teardown(self.state)

    # ------------------------------------------------------------------ build steps
    def _build(self) -> None:
        topo = self.topology
        self._record_root_link(self.mgmt_bridge)
        netns.add_linux_bridge(self.mgmt_bridge)
        prefixlen = ipaddress.ip_network(topo.management).prefixlen
        netns.configure(
            None, self.mgmt_bridge, addresses=[f"{self.controller_address}/{prefixlen}"]
        )
        for node in [topo.switch.name, *(h.name for h in topo.hosts)]:
            self._namespace(node, ipv6=False)
        for host in topo.hosts:
            link = f"{self.prefix}-m{host.index}"
            self._record_root_link(link)
            netns.add_veth(None, link, self.ns(host.name), "mgmt0")
            netns.enslave(None, link, self.mgmt_bridge)
            self.own_ip(host.name, "mgmt0")
            netns.configure(
                self.ns(host.name),
                "mgmt0",
                addresses=[f"{topo.management_address(host.name)}/{prefixlen}"],
            )
        for node in [topo.switch.name, *(h.name for h in topo.hosts)]:
            host = next((h for h in topo.hosts if h.name == node), None)
            ovs = self.ovs(node)
            for proc in ovs.start(
                system_id=host.uuid if host else f"{self.prefix}-tor", hostname=node
            ):
                self.state.add_process(proc)
        self._build_switch()
        if self.state.host_networking == "lab":
            for host in topo.hosts:
                self._build_host_networking(host.name)
        for outside in topo.switch.outside:
            self._namespace(outside.name, ipv6=True)
            port = f"o-{outside.name}"[:15]
            netns.add_veth(
                self.ns(topo.switch.name), port, self.ns(outside.name), "eth0", mac_b=outside.mac
            )
            netns.configure(self.ns(outside.name), "eth0", addresses=[*outside.ipv4, *outside.ipv6])
            self._tx_off(outside.name, "eth0")
            self.tor.vsctl("--may-exist", "add-port", TOR_BRIDGE, port, f"tag={outside.vlan}")
        for vm in topo.vms:
            self._namespace(vm.name, ipv6=True)

    def start_vms(self, bridge_timeout: float = 10.0) -> None:
        """Plug every VIF of the running topology VMs that is not plugged yet (the VMs'
        domains come up)."""
        for vm in self.topology.vms:
            if vm.name not in self.state.vm_host:
                continue
            for vif in vm.vifs:
                if vif.device not in self.state.plugged.get(vm.name, []):
                    self.plug_vif(vm.name, vif.device, bridge_timeout)

    def _namespace(self, node: str, ipv6: bool) -> None:
        name = self.ns(node)
        self.state.namespaces.append(name)
        self.state.save()
        netns.create(name)
        # VMs: IPv6 on, without duplicate address detection (tests start at once).
        # Hosts and the switch: their kernels also see every frame on a NIC or VIF port (the
        # userspace datapath reads them with packet sockets), so they must neither answer ARP
        # there nor speak IPv6 there; interfaces that carry an address opt back in (own_ip).
        sysctls = (
            ["net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0"]
            if ipv6
            else ["net.ipv6.conf.default.disable_ipv6=1", "net.ipv4.conf.default.arp_ignore=8"]
        )
        netns.run(name, ["sysctl", "-q", "-w", *sysctls])

    def _record_root_link(self, name: str) -> None:
        self.state.root_links.append(name)
        self.state.save()

    def _build_switch(self) -> None:
        topo = self.topology
        sw = topo.switch
        args = [
            "add-br",
            TOR_BRIDGE,
            "--",
            "set",
            "bridge",
            TOR_BRIDGE,
            "datapath_type=netdev",
            "fail_mode=standalone",
            "--",
            "set",
            "Open_vSwitch",
            ".",
            f"other_config:max-idle={TOR_MAX_IDLE_MS}",
        ]
        bonded = {(b.host, nic) for b in sw.bonds for nic in b.nics}
        for cable in sw.cables:
            host = topo.host(cable.host)
            port = f"h{host.index}-{cable.nic}"
            netns.add_veth(self.ns(host.name), cable.nic, self.ns(sw.name), port, mtu=UNDERLAY_MTU)
            if (cable.host, cable.nic) not in bonded:
                args += [
                    "--",
                    "add-port",
                    TOR_BRIDGE,
                    port,
                    *_vlan_args(cable.vlan, cable.trunk, cable.native),
                ]
        for bond in sw.bonds:
            host = topo.host(bond.host)
            cable = next(c for c in sw.cables if c.host == bond.host and c.nic == bond.nics[0])
            args += [
                "--",
                "add-bond",
                TOR_BRIDGE,
                f"po{host.index}",
                *(f"h{host.index}-{nic}" for nic in bond.nics),
                "lacp=active",
                "bond_mode=balance-tcp",
                f"other_config:lacp-time={bond.lacp_time}",
                *_vlan_args(cable.vlan, cable.trunk, cable.native),
            ]
        self.tor.vsctl(*args)
        # NICs with no cable still exist on the host, carrier down (an unplugged port).
        for host in topo.hosts:
            for nic in host.nics:
                if not netns.link_exists(self.ns(host.name), nic.device):
                    netns.run(
                        self.ns(host.name), ["ip", "link", "add", nic.device, "type", "dummy"]
                    )
                netns.configure(self.ns(host.name), nic.device, mac=nic.mac)

    def _build_host_networking(self, host_name: str) -> None:
        host = self.topology.host(host_name)
        args = networkd.host_vsctl_args(self.topology, host, self.state.controller)
        if args:
            self.ovs(host_name).vsctl(*args)
        for addr in host.addresses:
            bridge = self.topology.network(addr.network).bridge
            self.own_ip(host_name, bridge)
            netns.configure(
                self.ns(host_name), bridge, addresses=[a for a in (addr.ipv4, addr.ipv6) if a]
            )

    def own_ip(self, node: str, ifname: str) -> None:
        """Let a host interface that carries the host's own address answer ARP and speak IPv6."""
        self.exec(
            node,
            [
                "sysctl",
                "-q",
                "-w",
                f"net.ipv4.conf.{ifname}.arp_ignore=0",
                f"net.ipv6.conf.{ifname}.disable_ipv6=0",
            ],
        )

    def _tx_off(self, node: str, ifname: str) -> None:
        """TCP/UDP through the userspace datapath need checksums computed by the sender."""
        self.exec(node, ["ethtool", "-K", ifname, "tx", "off"])

    # ------------------------------------------------------------------ the xenopsd role
    def start_vm(self, vm: str, host: str, domid: int, uuid: str) -> None:
        """A domain comes up: the VM's namespace (recorded before it is made), on `host`."""
        self.topology.host(host)
        if vm in self.state.vm_host:
            raise LabError(f"VM '{vm}' is already running on '{self.vm_host(vm)}'")
        self.state.vm_host[vm] = host
        self.state.vm_domid[vm] = domid
        self.state.vm_uuid[vm] = uuid
        self._namespace(vm, ipv6=True)

    def stop_vm(self, vm: str) -> None:
        """The domain goes: its VIFs are unplugged and its namespace deleted (a guest's
        addresses go with it, as on a real shutdown)."""
        for device in list(self.state.plugged.get(vm, [])):
            self.unplug_vif(vm, device)
        name = f"{self.prefix}-{vm}"
        netns.remove(name)
        if name in self.state.namespaces:
            self.state.namespaces.remove(name)
        for record in (self.state.vm_host, self.state.vm_domid, self.state.vm_uuid,
                       self.state.plugged, self.state.vifs):
            record.pop(vm, None)
        self.state.save()

    def plug_vif(self, vm: str, device: int, bridge_timeout: float = 10.0) -> str:
        """Plug a topology VM's VIF as the topology describes it (see `plug`)."""
        return self.plug(vm, self.topology_vif_spec(vm, device), bridge_timeout)

    def plug(self, vm: str, spec: VifSpec, bridge_timeout: float = 10.0) -> str:
        """Plug a VIF into its host's bridge (as xenopsd + vif hotplug scripts do).

        With host_networking="lab" a missing bridge is created as xapi does for a network
        without a PIF on the host; with "none" the bridge is netctl's to create, and the plug
        waits up to `bridge_timeout` seconds for it (then fails, naming VM, VIF and bridge,
        having created nothing)."""
        device = spec.device
        if vm not in self.state.vm_host:
            raise LabError(f"VM '{vm}' is not running: its VIF {device} cannot be plugged")
        if device in self.state.plugged.get(vm, []):
            raise LabError(f"VM '{vm}' VIF {device} is already plugged")
        host = self.vm_host(vm)
        self._ensure_bridge(vm, host, spec, bridge_timeout)
        ovs = self.ovs(host)
        port = self.vif_port(vm, device)
        ifname = f"eth{device}"
        netns.add_veth(self.ns(host), port, self.ns(vm), ifname, mtu=spec.mtu, mac_b=spec.mac)
        netns.configure(self.ns(vm), ifname, addresses=list(spec.addresses))
        self._tx_off(vm, ifname)
        ovs.vsctl("--may-exist", "add-port", spec.bridge, port, *_iface_ids(port, spec))
        self.state.plugged.setdefault(vm, []).append(device)
        self.state.vifs.setdefault(vm, {})[str(device)] = asdict(spec)
        self.state.save()
        return port

    def _ensure_bridge(self, vm: str, host: str, spec: VifSpec, bridge_timeout: float) -> None:
        ovs = self.ovs(host)
        if self.state.host_networking == "none":
            deadline = time.monotonic() + bridge_timeout
            while not ovs.bridge_exists(spec.bridge):
                if time.monotonic() > deadline:
                    raise LabError(
                        f"VM '{vm}' VIF {spec.device}: host '{host}' has no bridge "
                        f"{spec.bridge} (network {spec.network_uuid}) after "
                        f"{bridge_timeout:g}s"
                    )
                time.sleep(0.05)
        elif not ovs.bridge_exists(spec.bridge):
            self._create_bridge_for_vif(host, spec)

    def unplug_vif(self, vm: str, device: int) -> None:
        """Unplug a VIF: remove its port from the bridge and the backend device."""
        if device not in self.state.plugged.get(vm, []):
            raise LabError(f"VM '{vm}' VIF {device} is not plugged")
        host = self.vm_host(vm)
        port = self.vif_port(vm, device)
        self.ovs(host).vsctl("--if-exists", "del-port", port)
        netns.delete_link(self.ns(host), port)
        self.state.plugged[vm].remove(device)
        self.state.vifs.get(vm, {}).pop(str(device), None)
        self.state.save()

    def migrate_vm(self, vm: str, host: str, domid: int | None = None) -> None:
        """Move a running VM to another host: its VIFs come up there with a new domid."""
        self.topology.host(host)  # raises StopIteration on unknown host
        if host == self.vm_host(vm):
            raise LabError(f"VM '{vm}' already runs on '{host}'")
        if domid is None:
            used = [d for v, d in self.state.vm_domid.items() if self.state.vm_host[v] == host]
            domid = max(used, default=0) + 1
        self.move_vm(vm, host, domid)

    def move_vm(self, vm: str, host: str, domid: int, bridge_timeout: float = 0.0
                ) -> list[int]:
        """The VM's domain is now `domid` on `host` (a live migration, or a new domain id on
        the same host). Each plugged VIF's backend leaves its bridge, and its veth end moves
        to the new host under its new name `vif<domid>.<device>` and joins the bridge there:
        the guest keeps `eth<device>` with its addresses. A VIF whose bridge the new host
        lacks (after `bridge_timeout`) is unplugged instead; returns those devices."""
        old_host, old_domid = self.vm_host(vm), self.state.vm_domid[vm]
        self.topology.host(host)
        ready, lost = [], []
        for device in sorted(self.state.plugged.get(vm, [])):
            spec = self.vif_spec(vm, device)
            try:
                self._ensure_bridge(vm, host, spec, bridge_timeout)
                ready.append(spec)
            except LabError:
                lost.append(device)
        for device in lost:
            self.unplug_vif(vm, device)
        moved = [(spec, f"mv{next(_MOVE_COUNTER) % 10**9}") for spec in ready]
        if moved:
            old_ports = [vif_port(old_domid, str(spec.device)) for spec, _ in moved]
            self.ovs(old_host).vsctl(*_each("--if-exists", "del-port", old_ports))
            with NetNS(self.ns(old_host)) as ipr:
                for (_, tmp), old_port in zip(moved, old_ports, strict=True):
                    idx = ipr.link_lookup(ifname=old_port)[0]
                    ipr.link("set", index=idx, state="down")
                    ipr.link("set", index=idx, ifname=tmp)
                    if host != old_host:
                        ipr.link("set", index=idx, net_ns_fd=self.ns(host))
        self.state.vm_host[vm] = host
        self.state.vm_domid[vm] = domid
        self.state.save()
        if moved:
            args: list[str] = []
            with NetNS(self.ns(host)) as ipr:
                for spec, tmp in moved:
                    port = vif_port(domid, str(spec.device))
                    idx = ipr.link_lookup(ifname=tmp)[0]
                    ipr.link("set", index=idx, ifname=port)
                    ipr.link("set", index=idx, mtu=spec.mtu, state="up")
                    args += ["--", "--may-exist", "add-port", spec.bridge, port,
                             *_iface_ids(port, spec)]
            self.ovs(host).vsctl(*args[1:])  # every port in one transaction
            for spec, _ in moved:
                self.announce(vm, spec.device)
            time.sleep(0.1)  # the guest's announcements are out before anything else
        return lost

    def announce(self, vm: str, device: int) -> None:
        """What a Xen guest's netfront does after migration: a gratuitous ARP for the IPv4
        address of the interface (whoever configured it), so that switches learn the VM's
        MAC at its new place at once. Sent once the interface has its carrier back (until
        then the kernel drops what the guest sends), three times 50 ms apart."""
        ifname = f"eth{device}"
        address = None
        deadline = time.monotonic() + 2.0
        with NetNS(self.ns(vm)) as ipr:
            while time.monotonic() < deadline:
                found = ipr.link_lookup(ifname=ifname)
                if not found:
                    return
                link = ipr.get_links(found[0])[0]
                if link.get_attr("IFLA_OPERSTATE") == "UP":
                    addrs = ipr.get_addr(index=found[0], family=2)
                    address = addrs[0].get_attr("IFA_ADDRESS") if addrs else None
                    break
                time.sleep(0.01)
        if address is not None:
            # An ARP probe (RFC 5227, sender 0.0.0.0), a gratuitous ARP as netfront sends,
            # another probe: OVS's MAC learning may hold a just-moved MAC against gratuitous
            # ARPs, never against a probe, and locked VIFs let both out. arping counts its
            # intervals in whole seconds and lingers a second: run them in the background.
            arp = f"arping -q -c 1 -I {ifname}"
            self.popen(vm, ["sh", "-c", f"{arp} -D {address} & sleep 0.03; "
                                        f"{arp} -U {address} & sleep 0.03; "
                                        f"{arp} -D {address} &"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def _create_bridge_for_vif(self, host: str, spec: VifSpec) -> None:
        """xapi creates a network's bridge on first VIF attach when the host has no PIF on it."""
        ovs = self.ovs(host)
        if spec.vlan_tag is not None and spec.parent_bridge:
            if not ovs.bridge_exists(spec.parent_bridge):
                raise LabError(
                    f"host '{host}' has no bridge {spec.parent_bridge} for VLAN bridge "
                    f"{spec.bridge} (tag {spec.vlan_tag})"
                )
            ovs.vsctl("--may-exist", "add-br", spec.bridge, spec.parent_bridge,
                      str(spec.vlan_tag))
        else:
            ovs.vsctl(
                "--may-exist",
                "add-br",
                spec.bridge,
                "--",
                "set",
                "bridge",
                spec.bridge,
                "datapath_type=netdev",
                "fail_mode=standalone",
            )

    # ------------------------------------------------------------------ description
    def bridges(self, host: str) -> list[str]:
        return self.ovs(host).vsctl("list-br").split()

    def wait_lacp(self, timeout: float = 15.0) -> bool:
        """Wait until every switch-side bond reports LACP negotiated."""
        if not self.topology.switch.bonds:
            return True
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = self.tor.appctl("lacp/show", check=False)
            if out.count("status: active negotiated") >= len(self.topology.switch.bonds):
                return True
            time.sleep(0.2)
        return False


def _each(*command_and_names: str) -> list[str]:
    """One ovs-vsctl transaction running `command` for each name: ("del-port", [a, b]) ->
    del-port a -- del-port b."""
    *command, names = command_and_names
    out: list[str] = []
    for name in names:
        out += ["--", *command, name]
    return out[1:]


def _iface_ids(port: str, spec: VifSpec) -> list[str]:
    """The Interface columns xapi's hotplug scripts write (setup-vif-rules, ovs-xapi-sync)."""
    return [
        "--",
        "set",
        "interface",
        port,
        f'external_ids:xs-vif-uuid="{spec.vif_uuid}"',
        f'external_ids:xs-vm-uuid="{spec.vm_uuid}"',
        f'external_ids:xs-network-uuid="{spec.network_uuid}"',
        f'external_ids:attached-mac="{spec.mac}"',
        f'external_ids:iface-id="{spec.vif_uuid}"',
        "external_ids:iface-status=active",
    ]


_NAME_RE = re.compile(r"[^a-z0-9]+")


def guest_name(label: str, uuid: str, taken: set[str]) -> str:
    """A lab name for a VM from its name_label: lower-case letters, digits and dashes, at
    most 24 characters; when that is empty or `taken`, the first 8 characters of its uuid
    are appended."""
    base = _NAME_RE.sub("-", label.lower()).strip("-")[:24].strip("-")
    if base and base not in taken:
        return base
    return f"{base}-{uuid[:8]}" if base else f"vm-{uuid[:8]}"


def _vlan_args(vlan: int | None, trunk: tuple[int, ...], native: int) -> list[str]:
    if trunk:
        return [
            "vlan_mode=native-untagged",
            f"tag={native}",
            f"trunks={','.join(str(t) for t in sorted({native, *trunk}))}",
        ]
    return [f"tag={vlan}"]


def teardown(state: LabState) -> list[str]:
    """Remove what `state` records, in reverse order of creation. Returns what was removed.
    One object that cannot be removed does not stop the others from being removed; the
    failures are raised together at the end (and the record is kept for another try)."""
    removed: list[str] = []
    failed: list[str] = []

    def attempt(what: str, action) -> None:  # noqa: ANN001 - a callable
        try:
            action()
            removed.append(what)
        except Exception as exc:  # noqa: BLE001 - reported below, after the rest is done
            failed.append(f"{what}: {exc}")

    for proc in reversed(state.owned_processes()):
        if proc.alive():
            attempt(f"process {proc.pid} ({proc.what})", proc.stop)
    try:  # a lab agent that ran until now may have recorded namespaces this copy lacks
        state = LabState.load(state.prefix)
    except (LookupError, ValueError):
        pass
    for name in reversed(state.namespaces):
        if netns.exists(name):
            attempt(f"namespace {name}", lambda n=name: netns.remove(n))
    for link in reversed(state.root_links):
        if netns.link_exists(None, link):
            attempt(f"link {link}", lambda n=link: netns.delete_link(None, n))
    if failed:
        raise LabError(f"lab '{state.prefix}': could not remove: {'; '.join(failed)}")
    shutil.rmtree(state.dir, ignore_errors=True)
    return removed
