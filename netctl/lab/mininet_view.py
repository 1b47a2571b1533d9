"""Mininet on top of the lab: its node API, its CLI and a `Topo` of the pool.

The lab's namespaces are *named* (`ip netns`), so they outlive the process that built them and
any later process (`netctl lab cli`, a test, the controller) can work in them. `LabNode` is a
Mininet `Host` whose shell is started inside such a namespace instead of a fresh one; so
`node.cmd()`, `node.popen()`, `net.pingAll()` and Mininet's CLI work on the lab unchanged.
Pool hosts keep their own OVS instance; their shells have `OVS_RUNDIR` set, so `host1 ovs-vsctl
show` in the CLI talks to host1's OVS, not to the machine's.

Stopping a `LabView` ends only the shells it started (by PID, as Mininet's `terminate` does);
the lab itself stays up until `netctl lab down`.
"""

from __future__ import annotations

import ipaddress
from subprocess import Popen

from mininet.link import Intf
from mininet.net import Mininet
from mininet.node import Host
from mininet.topo import Topo

from netctl.lab.lab import Lab
from netctl.model import vif_port
from netctl.topology import Topology


class LabNode(Host):
    """A Mininet host whose shell runs in an existing named network namespace."""

    def __init__(self, name: str, nsname: str, env: dict[str, str] | None = None, **params):
        self.nsname = nsname
        self.shell_env = env or {}
        super().__init__(name, inNamespace=False, **params)
        for key, value in self.shell_env.items():
            self.cmd(f"export {key}={value}")

    def _popen(self, cmd, **params):  # noqa: ANN001 - Mininet's signature
        return Popen(["ip", "netns", "exec", self.nsname, *cmd], **params)


class LabView:
    """A `Mininet` object whose nodes are the running lab's namespaces (running VMs and
    outside machines as hosts; pool hosts and the switch reachable by name)."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.net = Mininet(topo=None, build=False, controller=None)
        topo = lab.topology
        for vm in lab.state.vm_host:  # every running VM, the topology's and xapi's
            node = self._add(vm, host=True)
            for device in lab.state.plugged.get(vm, []):
                spec = lab.vif_spec(vm, device)
                ipv4 = tuple(a for a in spec.addresses if ":" not in a)
                self._intf(node, f"eth{device}", spec.mac, ipv4)
        for outside in topo.switch.outside:
            self._intf(self._add(outside.name, host=True), "eth0", outside.mac, outside.ipv4)
        for host in [*topo.hosts]:
            rundir = str(lab.ovs(host.name).rundir)
            self._add(
                host.name,
                host=False,
                env={"OVS_RUNDIR": rundir, "OVS_DBDIR": rundir, "OVS_LOGDIR": rundir},
            )
        tor = str(lab.tor.rundir)
        self._add(
            topo.switch.name,
            host=False,
            env={"OVS_RUNDIR": tor, "OVS_DBDIR": tor, "OVS_LOGDIR": tor},
        )

    def _add(self, name: str, host: bool, env: dict[str, str] | None = None) -> LabNode:
        node = LabNode(name, nsname=self.lab.ns(name), env=env)
        # VMs are what pingall pings; pool hosts and the switch are reachable by name only
        # (Mininet's switch commands expect its own switch classes).
        if host:
            self.net.hosts.append(node)
        self.net.nameToNode[name] = node
        return node

    @staticmethod
    def _intf(node: LabNode, name: str, mac: str, ipv4: tuple[str, ...]) -> None:
        intf = Intf(name, node=node, up=None)
        intf.mac = mac
        if ipv4:
            iface = ipaddress.ip_interface(ipv4[0])
            intf.ip, intf.prefixLen = str(iface.ip), iface.network.prefixlen

    def stop(self) -> None:
        for node in self.net.nameToNode.values():
            node.terminate()

    def cli(self) -> None:
        from mininet.cli import CLI

        CLI(self.net)


class PoolTopo(Topo):
    """The pool as a Mininet `Topo`: VMs and outside machines are hosts; pool hosts and the
    top-of-rack switch are switches; cables and VIFs are links (with their lab parameters).

    The lab builds from the topology file directly (pool hosts need their own OVS, which
    Mininet's switch classes cannot give); this Topo is for experiments that use Mininet's own
    Python API on the same pool graph, e.g. `Mininet(topo=PoolTopo(t), ...)` with Mininet's
    switches standing in for pool hosts."""

    def build(self, topology: Topology) -> None:  # type: ignore[override]
        sw = topology.switch
        self.addSwitch(sw.name, dpid=f"{0xF0:016x}", role="tor")
        for host in topology.hosts:
            self.addSwitch(host.name, dpid=f"{host.index:016x}", role="pool-host", uuid=host.uuid)
        for cable in sw.cables:
            host = topology.host(cable.host)
            self.addLink(
                host.name,
                sw.name,
                intfName1=cable.nic,
                intfName2=f"h{host.index}-{cable.nic}",
                vlan=cable.vlan,
                trunk=list(cable.trunk),
                native=cable.native,
            )
        for vm in topology.vms:
            self.addHost(vm.name, ip=None, role="vm", uuid=vm.uuid)
            for vif in vm.vifs:
                ipv4 = vif.ipv4[0] if vif.ipv4 else None
                self.addLink(
                    vm.name,
                    vm.host,
                    intfName1=f"eth{vif.device}",
                    intfName2=vif_port(vm.domid, str(vif.device)),
                    addr1=vif.mac,
                    params1={"ip": ipv4} if ipv4 else {},
                    network=vif.network,
                )
        for outside in sw.outside:
            ipv4 = outside.ipv4[0] if outside.ipv4 else None
            self.addHost(outside.name, ip=ipv4, mac=outside.mac, role="outside")
            self.addLink(
                outside.name,
                sw.name,
                intfName1="eth0",
                intfName2=f"o-{outside.name}"[:15],
                vlan=outside.vlan,
            )
