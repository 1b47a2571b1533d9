"""`netctl trace`: where a packet from a VIF would go, asked of the switch itself.

It finds the VIF in xapi (VM name, or VM/device), the host the VM runs on, the VIF's OVS port
and the bridge whose flow table handles it (a VLAN network's parent bridge), then runs OVS's
`ofproto/trace` there with the packet given in OVS flow syntax (`icmp,nw_dst=10.10.0.13`),
the VIF's port and MAC filled in. On a lab pool it runs inside the host's namespace; on a real
host run it there (ovs-appctl only talks to the local vswitchd).
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass

from flows.compile import vlan_parent_bridge
from flows.ports import vif_port_name
from netctl.model import VIF, PoolState


class TraceError(ValueError):
    pass


@dataclass(frozen=True)
class TraceTarget:
    host: str  # host name_label
    host_uuid: str
    bridge: str
    port: str
    flow: str  # the full flow given to ofproto/trace


def find_vif(state: PoolState, spec: str) -> VIF:
    """`vm1` (its device 0, or its only VIF), `vm1/1`, or a VIF uuid."""
    found = state.by_uuid(spec)
    if isinstance(found, VIF):
        return found
    name, _, device = spec.partition("/")
    vms = [vm for vm in state.vms.values() if vm.name_label == name and vm.is_guest]
    if not vms:
        raise TraceError(f"no VM or VIF named '{spec}' in the pool")
    vifs = sorted(state.vm_vifs(vms[0].ref), key=lambda v: int(v.device or 0))
    if device:
        vifs = [v for v in vifs if v.device == device]
    if not vifs:
        raise TraceError(f"VM '{name}' has no VIF {device or 0}")
    return vifs[0]


def target(state: PoolState, spec: str, packet: str) -> TraceTarget:
    vif = find_vif(state, spec)
    vm = state.vms[vif.vm]
    if not state.is_vif_active(vif):
        raise TraceError(f"{vm.name_label} VIF {vif.device} is not plugged on any host "
                         f"(VM {vm.power_state}, currently_attached={vif.currently_attached})")
    host = state.hosts[vm.resident_on]
    net = state.networks[vif.network]
    bridge = vlan_parent_bridge(state, net.ref) or net.bridge
    port = vif_port_name(state, vif) or ""
    fields = [f for f in packet.split(",") if f]
    if not any(f.startswith(("dl_src=", "eth_src=")) for f in fields):
        fields.append(f"dl_src={vif.mac.lower()}")
    return TraceTarget(host.name_label, host.uuid, bridge, port,
                       ",".join([f"in_port={port}", *fields]))


def run_trace(t: TraceTarget, namespace: str | None, env: dict[str, str] | None) -> str:
    argv = ["ovs-appctl", "ofproto/trace", t.bridge, t.flow]
    if namespace:
        argv = ["ip", "netns", "exec", namespace, *argv]
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=30)
    if proc.returncode != 0:
        raise TraceError(f"ofproto/trace on {t.host} {t.bridge}: "
                         f"{proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout
