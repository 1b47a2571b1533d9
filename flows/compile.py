"""The whole desired flow table of one bridge on one host, from `PoolState` (pure).

A bridge carries one base network (`network.bridge`) plus, on external bridges, the VLAN
networks whose fake bridges sit on it (their flows live on the parent and match the VLAN). What
the base network's PIF on this host is decides the bridge's kind:
- external (physical NIC or bond): frames to VIF MACs known from xapi go straight to the local
  port, or to the uplink with the right VLAN (a single NIC: explicit output; a bond: NORMAL,
  because OpenFlow sees bond members as separate ports and only NORMAL uses OVS's bond logic);
  broadcast, multicast, unknown unicast and MACs outside the pool go to NORMAL, whose flooding
  stays within the frame's VLAN (VIF ports of fake bridges are access ports).
- private (tunnel access PIF): a full mesh of tunnels; VIF MACs of other hosts go into the
  tunnel to that host; flooding from a local VIF goes to the local VIFs and every tunnel,
  flooding from a tunnel only to the local VIFs (split horizon: never back into the mesh).
- internal (no PIF on this host): only local VIFs.
VIF ports accept untagged frames only — a guest cannot hop VLANs with a tagged frame — except
the VLANs listed in its `VIF.trunks`. A rate-limited VIF's classify flows carry the meter of its
port (`flows.qos`, `vif_meters`): everything the VM sends passes it before anything else.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

from flows.locking import locking_of, port_security_flows
from flows.pipeline import (
    CLASSIFY,
    FORWARD,
    META_FROM_TUNNEL,
    META_MASK,
    META_VLAN_MASK,
    NORMAL,
    OFPP_LOCAL,
    OFPVID_PRESENT,
    PORT_SECURITY,
    TO_CONTROLLER,
    Flow,
    Output,
    PopVlan,
    PushVlan,
    flow,
)
from flows.qos import MeterBand, vif_band
from flows.rules import NO_RULES, port_rule_flows, rules_of, to_port
from netctl.model import NULL_REF, VIF, PifType, PoolQueries, PoolState


@dataclass(frozen=True)
class BridgePorts:
    """OpenFlow port numbers of one bridge as observed on the switch, by role."""

    vifs: Mapping[str, int] = field(default_factory=dict)  # VIF uuid -> ofport
    # VIF uuid -> ofport of its `tap<domid>.<device>` twin (an HVM guest's emulated NIC, until
    # its PV drivers connect): the same VIF, so the same locking and forwarding.
    taps: Mapping[str, int] = field(default_factory=dict)
    uplinks: tuple[int, ...] = ()  # the NIC, or every member of the bond
    tunnels: Mapping[str, int] = field(default_factory=dict)  # peer host uuid -> ofport
    internal: Mapping[int, int] = field(default_factory=dict)  # ofport -> VLAN (0: untagged)
    # ports the switch confirmed OFPPC_NO_FLOOD on (external bridges: VIF ports with traffic
    # rules, set over netctl's OpenFlow 1.0 session, `netctl.sinks.portconfig`): NORMAL floods
    # nothing to them, so the flooding reaches them through explicit flows (`flood_flows`)
    no_flood: frozenset[int] = frozenset()


@dataclass(frozen=True)
class BridgeIntent:
    """What the compiler read from PoolState for one bridge (also tells the controller which
    ports it should expect, and which state changes concern this bridge)."""

    kind: str  # external | private | internal | none
    bond: bool
    vlans: Mapping[str, int]  # network ref -> VLAN on this bridge (0 = the base network)
    local_vifs: tuple[VIF, ...]
    remote_vifs: tuple[tuple[VIF, str], ...]  # (VIF, host uuid it lives on)


def bridge_shape(state: PoolQueries, host_ref: str, bridge: str
                 ) -> tuple[str, bool, dict[str, int]]:
    """(kind, bond uplink?, network ref -> VLAN on this bridge) — what the bridge is, without
    looking at any VIF."""
    base = state.network_by_bridge(bridge)
    if base is None:
        return "none", False, {}
    pif = state.pif_of(base.ref, host_ref)
    vlans: dict[str, int] = {base.ref: 0}
    kind, bond = "internal", False
    if pif is not None:
        ptype = pif.type
        if ptype is PifType.TUNNEL_ACCESS:
            kind = "private"
        else:
            kind = "external"
            bond = ptype is PifType.BOND_MASTER
            for vlan in sorted(state.vlans_on(pif.ref), key=lambda v: v.ref):
                untagged = state.pifs.get(vlan.untagged_pif)
                if untagged is not None and 1 <= vlan.tag <= 4094:
                    vlans[untagged.network] = vlan.tag
    return kind, bond, vlans


def bridge_intent(state: PoolQueries, host_ref: str, bridge: str) -> BridgeIntent:
    """The bridge's shape and the VIFs it serves: its own (local) and, for the flows that
    send straight to another host, the other hosts' (remote). From scratch: reads every VIF
    of the bridge's networks."""
    kind, bond, vlans = bridge_shape(state, host_ref, bridge)
    if kind == "none":
        return BridgeIntent("none", False, {}, (), ())
    local: list[VIF] = []
    remote: list[tuple[VIF, str]] = []
    for net_ref in vlans:
        for vif in state.network_vifs(net_ref):
            if not state.is_vif_active(vif):
                continue
            where = state.vif_host(vif) or NULL_REF
            if where == host_ref:
                local.append(vif)
            elif where in state.hosts and vif.ref not in state.quarantined:
                remote.append((vif, state.hosts[where].uuid))
    local.sort(key=lambda v: v.uuid)
    remote.sort(key=lambda r: r[0].uuid)
    return BridgeIntent(kind, bond, vlans, tuple(local), tuple(remote))


def compile_bridge(
    state: PoolQueries, host_ref: str, bridge: str, ports: BridgePorts
) -> frozenset[Flow]:
    """The complete desired table of `bridge` on `host_ref` (a frozenset: order is priority's):
    the bridge's own flows, each local VIF's, each remote VIF's, and the flooding. The engine
    keeps these parts apart and updates each on its own; this is their from-scratch union."""
    intent = bridge_intent(state, host_ref, bridge)
    flows = base_flows(intent, ports)
    if intent.kind == "none":
        return frozenset(flows)
    taking: dict[int, list[int]] = {}  # VLAN -> local VIF ports that take traffic
    ruled: set[int] = set()  # local VIF ports with traffic rules (`flows.rules`)
    for vif in intent.local_vifs:
        flows += local_vif_flows(state, intent, ports, vif, taking, ruled)
    for vif, host in intent.remote_vifs:
        flows += remote_vif_flows(intent.kind, intent.bond, intent.vlans, ports, vif, host)
    flows += flood_flows(intent, ports, taking, ruled)
    return frozenset(flows)


def compile_meters(state: PoolQueries, host_ref: str, bridge: str, ports: BridgePorts
                   ) -> dict[int, MeterBand]:
    """The meters `compile_bridge`'s flows use (meter id -> band), from scratch."""
    intent = bridge_intent(state, host_ref, bridge)
    out: dict[int, MeterBand] = {}
    if intent.kind != "none":
        for vif in intent.local_vifs:
            out.update(vif_meters(ports, vif))
    return out


def base_flows(shape: BridgeIntent, ports: BridgePorts) -> list[Flow]:
    """What a bridge holds whatever its VIFs: the table-miss entries, drops for its known
    non-VIF ports, how frames from the uplink, tunnels and internal ports are classified, and
    (external) NORMAL for everything the pool does not know."""
    flows: list[Flow] = [
        # A port with no rules yet is a VIF plugged a moment ago: its first frames (often the
        # guest's ARP reply) go to the controller, which replays them through the pipeline
        # once the port's rules are in, instead of losing them to a 1 s ARP retry.
        flow(CLASSIFY, 0, "a port not classified yet: to the controller", actions=(TO_CONTROLLER,)),
        flow(PORT_SECURITY, 0, "a VIF without rules: drop"),
    ]
    if shape.kind == "none":
        return flows
    known = {*ports.uplinks, *ports.tunnels.values(), *ports.internal}
    if shape.kind != "external":
        known.add(OFPP_LOCAL)  # the host's own port on a private bridge takes no part
    for port in sorted(known):
        flows.append(known_port_drop(port))
    for port, vlan in ports.internal.items():
        flows.append(flow(CLASSIFY, 100, "from the host (internal port)", in_port=port,
                          write_metadata=_meta(vlan), goto=FORWARD))
    if shape.kind == "external":
        for uplink in ports.uplinks:
            flows.append(flow(CLASSIFY, 90, "untagged from the uplink", in_port=uplink,
                              vlan_vid=0, write_metadata=_meta(0), goto=FORWARD))
            for vlan in sorted(set(shape.vlans.values()) - {0}):
                flows.append(flow(CLASSIFY, 100, f"VLAN {vlan} from the uplink", in_port=uplink,
                                  vlan_vid=OFPVID_PRESENT | vlan, write_metadata=_meta(vlan),
                                  goto=FORWARD))
        flows.append(flow(FORWARD, 0, "broadcast, unknown, outside the pool: NORMAL (per VLAN)",
                          actions=(NORMAL,)))
    elif shape.kind == "private":
        for peer, port in sorted(ports.tunnels.items()):
            flows.append(from_tunnel(peer, port))
    return flows


@functools.lru_cache(maxsize=1 << 14)
def known_port_drop(port: int) -> Flow:
    """(Shared: the same few port numbers recur on every bridge of a pool.)"""
    return flow(CLASSIFY, 10, "a known port, nothing matched: drop", in_port=port)


@functools.lru_cache(maxsize=1 << 14)
def from_tunnel(peer: str, port: int) -> Flow:
    return flow(CLASSIFY, 100, f"from the tunnel to {peer}", in_port=port,
                write_metadata=_meta(0, tunnel=True), goto=FORWARD)


def flood_flows(shape: BridgeIntent, ports: BridgePorts, taking: Mapping[int, Iterable[int]],
                ruled: Collection[int] = ()) -> list[Flow]:
    """The flooding netctl does itself. `taking`: VLAN -> the local VIF ports that take
    traffic; those in `ruled` get a frame through their traffic rules (`flows.rules.to_port`).
    - private, internal (no uplink): from the tunnels to the local VIFs only (split horizon:
      never back into the mesh), from a local VIF to the local VIFs and every tunnel;
    - external: NORMAL floods, except to ports set NO_FLOOD (`keeps_out_of_normal`: VIF ports
      with traffic rules, confirmed by the switch in `ports.no_flood`); a VLAN with such ports
      gets one flow per form (untagged; tagged from the uplink or a trunk) for its
      broadcast and multicast: NORMAL, then each such port through its rules. Unknown unicast
      is not copied to them (a VIF's own MAC has its own flow)."""
    if shape.kind == "external":
        return _external_floods(ports, taking, ruled) if ports.no_flood else []
    if shape.kind not in ("private", "internal"):
        return []
    tunnels = dict(sorted(ports.tunnels.items())) if shape.kind == "private" else {}
    vifs = tuple(a for p in sorted(taking.get(0, ())) for a in to_port(p, p in ruled))
    mesh = tuple(Output(p) for p in tunnels.values())
    return [
        flow(FORWARD, 10, "flood from the tunnels: local VIFs only (split horizon)",
             metadata=(META_FROM_TUNNEL, META_FROM_TUNNEL), actions=vifs),
        flow(FORWARD, 5, "flood from local: local VIFs and every tunnel", actions=vifs + mesh),
    ]


MULTICAST = ("01:00:00:00:00:00", "01:00:00:00:00:00")  # the group bit: broadcast, multicast


def _external_floods(ports: BridgePorts, taking: Mapping[int, Iterable[int]],
                     ruled: Collection[int]) -> list[Flow]:
    out: list[Flow] = []
    for vlan, vlan_ports in sorted(taking.items()):
        held = sorted(p for p in set(vlan_ports) if p in ports.no_flood)
        if not held:
            continue
        to = tuple(a for p in held for a in to_port(p, p in ruled))
        out.append(flow(FORWARD, 150, f"VLAN {vlan} broadcast, multicast: NORMAL, then the "
                        "ports kept out of its flooding", metadata=(vlan, META_VLAN_MASK),
                        eth_dst=MULTICAST, vlan_vid=0, actions=(NORMAL, *to)))
        out.append(flow(FORWARD, 150, f"VLAN {vlan} broadcast, multicast, tagged: NORMAL, then "
                        "the ports kept out of its flooding", metadata=(vlan, META_VLAN_MASK),
                        eth_dst=MULTICAST, vlan_vid=(OFPVID_PRESENT, OFPVID_PRESENT),
                        actions=(NORMAL, PopVlan(), *to)))
    return out


def keeps_out_of_normal(kind: str, vif: VIF) -> bool:
    """Whether a VIF with traffic rules has its ports set NO_FLOOD, so that NORMAL's flooding
    reaches them only through `flood_flows` (and so through their to-VM rules): on external
    bridges, unless the VIF trunks VLANs (NORMAL alone knows which tagged floods a trunk
    takes; such a VIF keeps NORMAL's flooding, without its to-VM rules)."""
    return kind == "external" and not any(1 <= t <= 4094 for t in vif.trunks)


def _meta(vlan: int, tunnel: bool = False) -> tuple[int, int]:
    """write-metadata of table 0: the frame's network (VLAN on this bridge) and whether it
    came out of a tunnel."""
    return ((vlan & META_VLAN_MASK) | (META_FROM_TUNNEL if tunnel else 0), META_MASK)


def vif_ports(ports: BridgePorts, vif: VIF) -> tuple[int, ...]:
    """The OpenFlow ports of one local VIF on the switch: `vif<domid>.<dev>` and/or its
    `tap<domid>.<dev>` twin (none while it is not plugged)."""
    return tuple(p for p in (ports.vifs.get(vif.uuid), ports.taps.get(vif.uuid))
                 if p is not None)


def local_vif_flows(state: PoolQueries, intent: BridgeIntent, ports: BridgePorts, vif: VIF,
                    local_ports: dict[int, list[int]] | None = None,
                    ruled: set[int] | None = None) -> list[Flow]:
    """Everything a bridge holds because of one VIF plugged into it: classification, its port
    security (locking) and the forwarding to it. A `disabled` VIF (or one quarantined for a
    duplicate MAC) gets its rules (drop all it sends) but nothing is forwarded to it, and it
    is left out of `local_ports` (the explicit flood lists). Ports that take traffic are
    added to `local_ports` (VLAN -> ports) when given; those with traffic rules
    (`flows.rules`) to `ruled`."""
    out: list[Flow] = []
    vlan = intent.vlans[vif.network]
    locking = locking_of(state, vif)
    mac = vif.mac.lower()
    limited = vif_band(vif) is not None
    for port in vif_ports(ports, vif):
        meter = port if limited else None
        out.append(known_port_drop(port))
        out.append(flow(CLASSIFY, 100, f"from VIF {vif.uuid}", in_port=port, vlan_vid=0,
                        write_metadata=_meta(vlan), goto=PORT_SECURITY, meter=meter))
        out += port_security_flows(port, mac, locking)
        if locking.mode == "disabled":
            continue
        if intent.kind == "external" and vlan == 0:
            # VIF.trunks: the guest may also send these VLANs tagged (locking still applies;
            # NORMAL keeps each VLAN to itself, as the port's `trunks` column says).
            for tag in sorted({t for t in vif.trunks if 1 <= t <= 4094}):
                out.append(flow(CLASSIFY, 100, f"VLAN {tag} from trunk VIF {vif.uuid}",
                                in_port=port, vlan_vid=OFPVID_PRESENT | tag,
                                write_metadata=_meta(tag), goto=PORT_SECURITY, meter=meter))
        if local_ports is not None:
            local_ports.setdefault(vlan, []).append(port)
    taking = () if locking.mode == "disabled" else vif_ports(ports, vif)
    rules = rules_of(state, vif) if taking else NO_RULES
    for port in taking if rules else ():
        out += port_rule_flows(port, rules)
        if ruled is not None:
            ruled.add(port)
    to_vif = tuple(a for p in taking for a in to_port(p, bool(rules)))
    if taking:
        out.append(flow(FORWARD, 200, f"to VIF {vif.uuid}", metadata=(vlan, META_VLAN_MASK),
                        eth_dst=mac, actions=to_vif))
        if intent.kind == "external" and vlan:
            out.append(flow(FORWARD, 210, f"to VIF {vif.uuid} from the trunk",
                            metadata=(vlan, META_VLAN_MASK), eth_dst=mac,
                            vlan_vid=(OFPVID_PRESENT, OFPVID_PRESENT),
                            actions=(PopVlan(), *to_vif)))
    return out


def vif_meters(ports: BridgePorts, vif: VIF) -> dict[int, MeterBand]:
    """The meters a VIF's flows use on the switch: meter id (= the port's number) -> band;
    empty without a rate limit. The switch must hold them before the flows that use them."""
    band = vif_band(vif)
    return {} if band is None else dict.fromkeys(vif_ports(ports, vif), band)


def disabled_ports(state: PoolQueries, intent: BridgeIntent, ports: BridgePorts) -> frozenset[int]:
    """VIF ports that must take no traffic at all (`disabled`, or quarantined): the OpenFlow
    side sets them NO_FWD and NO_RECV, which also keeps NORMAL's flooding away from them."""
    out: set[int] = set()
    for vif in intent.local_vifs:
        if state.enforced_locking_mode(vif) == "disabled":
            out.update(vif_ports(ports, vif))
    return frozenset(out)


def remote_vif_flows(kind: str, bond: bool, vlans: Mapping[str, int], ports: BridgePorts,
                     vif: VIF, host_uuid: str) -> list[Flow]:
    """The flows a bridge holds because of one VIF that lives on another host: straight to
    the uplink (a single NIC) or into the tunnel to that host. Nothing else in a table depends
    on a remote VIF, which is what lets a VIF's move be patched into other hosts' tables."""
    mac = vif.mac.lower()
    if kind == "external":
        if len(ports.uplinks) != 1 or bond or vif.network not in vlans:
            return []
        vlan = vlans[vif.network]
        push = (PushVlan(vlan),) if vlan else ()
        return [flow(FORWARD, 180, f"to remote VIF {vif.uuid} via the uplink",
                     metadata=(vlan, META_VLAN_MASK), eth_dst=mac, vlan_vid=0,
                     actions=(*push, Output(ports.uplinks[0])))]
    port = ports.tunnels.get(host_uuid) if kind == "private" else None
    if port is None:
        return []
    return [
        flow(FORWARD, 200, f"to remote VIF {vif.uuid} via its host's tunnel",
             metadata=(0, META_MASK), eth_dst=mac, actions=(Output(port),)),
        flow(FORWARD, 200, f"remote VIF {vif.uuid} seen from a tunnel: not ours",
             metadata=(META_FROM_TUNNEL, META_FROM_TUNNEL), eth_dst=mac),
    ]


def vlan_parent_bridge(state: PoolState, net_ref: str) -> str | None:
    """The bridge a VLAN network's fake bridge sits on (None: not a VLAN network)."""
    for pif in state.network_pifs(net_ref):
        vlan = state.vlan_of(pif)
        if vlan is not None:
            tagged = state.pifs.get(vlan.tagged_pif)
            parent = state.networks.get(tagged.network) if tagged else None
            if parent is not None:
                return parent.bridge
    return None
