"""The controller's logic: keep every connected bridge's netctl flows equal to what PoolState
requires — proactively, incrementally, never wiping a switch (OVN's ofctrl lesson).

Per switch: on (re)connect, dump the flows that carry netctl's cookie, diff against the compiled
table, send only the difference inside one ONF bundle (atomic), then a barrier. Afterwards the
installed table is tracked, so a PoolState change only diffs and sends what changed, and only
for the bridges that change concerns (`flows.compile.affected_bridges`; a full recompute is the
fallback and is counted). Flows without netctl's cookie are never touched.

This module is hub-agnostic and takes os-ken datapaths as opaque objects (`send_msg`,
`ofproto`, `ofproto_parser`, `id`, `ports`); all message construction is in `messages`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from flows.compile import (
    BridgePorts,
    affected_bridges,
    bridge_intent,
    compile_bridge,
    disabled_ports,
    remote_flows_of,
)
from flows.pipeline import COOKIE, COOKIE_MASK, OFPP_LOCAL
from flows.ports import datapaths, tap_port_name, tunnel_peers, uplink_devices, vif_port_name
from netctl.model import PoolState, Problem
from netctl.openflow import messages

LOG = logging.getLogger("netctl.openflow")
HELD_PER_PORT = 32
SEND_CHUNK = 256 * 1024
HOLD_SECONDS = 1.0
# OpenFlow 1.3 port config bits netctl manages on VIF ports: a `disabled` VIF takes no traffic
# in either direction (NO_FWD also keeps NORMAL's flooding away, verified on OVS 3.1).
OFPPC_NO_RECV, OFPPC_NO_FWD, OFPPC_NO_PACKET_IN = 1 << 2, 1 << 5, 1 << 6
DISABLED_PORT = OFPPC_NO_RECV | OFPPC_NO_FWD | OFPPC_NO_PACKET_IN
RETRY_FIRST, RETRY_MAX = 0.5, 60.0  # back-off after a switch refused a bundle (seconds)
REFUSED_RETRY = 600.0  # a flow the switch refused is offered again after this long
AUDIT_INTERVAL = 60.0  # default period of the dump-and-diff that repairs drift


@dataclass
class Stats:
    """Counters a person (and the metrics endpoint) can read."""

    flow_mods: int = 0  # adds + modifies + deletes sent
    bundles: int = 0
    full_recomputes: int = 0
    incremental_recomputes: int = 0
    bridges_compiled: int = 0
    bridges_patched: int = 0  # other hosts' tables patched for a VIF that moved/came/went
    errors: int = 0
    connects: int = 0
    replayed: int = 0  # frames held from a just-plugged port and replayed once it had rules
    port_mods: int = 0  # VIF ports set (or cleared) NO_FWD/NO_RECV for `disabled`
    refused: int = 0  # flow-mods the switch refused (each reported as a Problem)
    retries: int = 0  # re-dumps after a refused bundle (backed off)
    audits: int = 0  # periodic dump-and-diff rounds
    repairs: int = 0  # flows found missing, changed or extra by an audit, and put right
    foreign_blocked: int = 0  # desired flows not sent: another owner's flow holds the match


@dataclass
class Switch:
    dp: Any
    host_ref: str | None = None
    bridge: str | None = None
    ports: dict[str, int] = field(default_factory=dict)  # port name -> ofport
    installed: dict | None = None  # canonical key -> canonical body (None: not dumped yet)
    dumping: list = field(default_factory=list)
    pending_barriers: dict[int, float] = field(default_factory=dict)  # xid -> sent at
    converged_at: float = 0.0
    classified: set[int] = field(default_factory=set)  # ports the installed table knows
    wanted: dict = field(default_factory=dict)  # key -> (body, note) of the last desired table
    disabled: frozenset[int] = frozenset()  # VIF ports that must take no traffic
    canon: dict = field(default_factory=dict)  # Flow -> (key, body), from the last compile
    held: dict[int, list[tuple[float, bytes]]] = field(default_factory=dict)  # port -> frames
    port_hw: dict[int, str] = field(default_factory=dict)  # ofport -> hw_addr (for port-mods)
    port_config: dict[int, int] = field(default_factory=dict)  # ofport -> config bits reported
    inflight: dict[int, Any] = field(default_factory=dict)  # xid -> canonical key (flow-mods)
    refused: dict = field(default_factory=dict)  # key -> Refusal
    foreign: dict = field(default_factory=dict)  # key -> cookie of another owner's flow
    blocked: dict = field(default_factory=dict)  # key -> note: desired but held by foreign
    failures: int = 0  # consecutive refused bundles
    last_error: str = ""
    retry_at: float | None = None  # re-dump then (after a refused bundle)
    audit_at: float = 0.0
    dump_reason: str = "connect"  # connect | audit | retry
    audit_believed: dict | None = None  # what we believed installed when the audit started


@dataclass
class Refusal:
    """A flow the switch refused: reported, not resent until it changes or REFUSED_RETRY."""

    text: str
    body: Any
    at: float
    note: str = ""


class FlowController:
    def __init__(self, on_converged: Callable[[Switch, float], None] | None = None,
                 audit_interval: float = AUDIT_INTERVAL) -> None:
        self.lock = threading.RLock()
        self.audit_interval = audit_interval
        self.state: PoolState | None = None
        self.switches: dict[int, Switch] = {}
        self.stats = Stats()
        self._identities: dict[int, tuple[str, str]] = {}
        self._bundle_id = 0
        self._since = time.monotonic()
        self.on_converged = on_converged

    # ------------------------------------------------------------------ intent
    def set_state(self, state: PoolState, changed_refs: set[str] | None = None,
                  since: float | None = None) -> None:
        """A new PoolState. `changed_refs` = refs that changed (None: unknown, recompute all);
        `since` = when the change was first seen (monotonic), for the convergence time."""
        with self.lock:
            self._since = since if since is not None else time.monotonic()
            previous, self.state = self.state, state
            self._identities = datapaths(state)
            plan = None
            if previous is not None and changed_refs is not None:
                # A VIF quarantined (or freed) for a duplicate MAC changed for the flows even
                # when xapi did not change it.
                moved = set(previous.quarantined ^ state.quarantined)
                plan = _plan(previous, state, set(changed_refs) | moved)
            if plan is not None and not plan[0] and not plan[1]:
                return  # nothing a flow table depends on (e.g. only tunnel.status changed)
            if plan is None:
                self.stats.full_recomputes += 1
            else:
                self.stats.incremental_recomputes += 1
            full, patches = plan if plan is not None else (set(), {})
            for sw in list(self.switches.values()):
                self._identify(sw)
                if sw.installed is None:
                    continue
                if plan is None or (None, sw.bridge) in full or (sw.host_ref, sw.bridge) in full:
                    self._reconcile(sw)
                elif sw.bridge in patches and previous is not None:
                    self._patch(sw, previous, patches[sw.bridge])

    # ------------------------------------------------------------------ switch events
    def switch_ready(self, dp: Any) -> None:
        """A switch finished its handshake: learn its ports, dump its flows."""
        with self.lock:
            sw = Switch(dp)
            for no, port in dict(dp.ports).items():
                sw.ports[_name(port)] = no
                sw.port_hw[no] = port.hw_addr
                sw.port_config[no] = port.config
            self.switches[dp.id] = sw
            self.stats.connects += 1
            self._identify(sw)
            self._request_dump(sw, "connect")

    def _request_dump(self, sw: Switch, reason: str) -> None:
        """Ask for every flow of the switch (netctl's by cookie, and the others, so that a
        desired flow that would overwrite another owner's is noticed instead of sent)."""
        dp = sw.dp
        ofp, parser = dp.ofproto, dp.ofproto_parser
        sw.dumping = []
        sw.dump_reason = reason
        sw.audit_believed = dict(sw.installed) if reason == "audit" and sw.installed else None
        sw.audit_at = time.monotonic() + self.audit_interval
        dp.send_msg(parser.OFPFlowStatsRequest(dp, 0, ofp.OFPTT_ALL, ofp.OFPP_ANY,
                                               ofp.OFPG_ANY, 0, 0, parser.OFPMatch()))

    def flow_stats(self, dp: Any, body: list, more: bool) -> None:
        with self.lock:
            sw = self.switches.get(dp.id)
            if sw is None:
                return
            sw.dumping.extend(body)
            if more:
                return
            ours, foreign = {}, {}
            for stat in sw.dumping:
                key, canon_body = messages.canon_stats(stat, dp.ofproto)
                if stat.cookie & COOKIE_MASK == COOKIE:
                    ours[key] = canon_body
                else:
                    foreign[key] = stat.cookie
            sw.dumping = []
            sw.foreign = foreign
            reason, believed = sw.dump_reason, sw.audit_believed
            sw.audit_believed = None
            if reason == "audit" and believed is not None:
                self.stats.audits += 1
                drift = _drift(believed, ours)
                if not drift and not (sw.blocked.keys() - foreign.keys()):
                    return  # the switch holds what we believe: nothing to do
                if drift:
                    self.stats.repairs += drift
                    LOG.warning("switch %016x (%s %s): %d flows drifted from netctl's table "
                                "(changed by hand?): repairing", dp.id, sw.host_ref,
                                sw.bridge, drift)
            sw.installed = ours
            self._since = time.monotonic()
            self._reconcile(sw)

    def port_changed(self, dp: Any, name: str, port_no: int, deleted: bool,
                     config: int = 0, hw_addr: str | None = None) -> None:
        with self.lock:
            sw = self.switches.get(dp.id)
            if sw is None:
                return
            known = sw.ports.get(name) == port_no
            if deleted:
                sw.ports.pop(name, None)
                sw.port_config.pop(port_no, None)
                sw.port_hw.pop(port_no, None)
            else:
                sw.ports[name] = port_no
                sw.port_config[port_no] = config
                if hw_addr is not None:
                    sw.port_hw[port_no] = hw_addr
            if known and not deleted:
                return  # a port's state or config changed (link, LACP, our own port-mod)
            if sw.installed is not None:
                self._since = time.monotonic()
                self._reconcile(sw)

    def switch_gone(self, dp: Any) -> None:
        with self.lock:
            sw = self.switches.get(dp.id)
            if sw is not None and sw.dp is dp:
                del self.switches[dp.id]

    def packet_in(self, dp: Any, in_port: int, data: bytes) -> None:
        """A frame from a port the table does not know yet (a VIF plugged a moment ago): hold
        it until that port's rules are installed, then replay it through the pipeline."""
        with self.lock:
            sw = self.switches.get(dp.id)
            if sw is None:
                return
            held = sw.held.setdefault(in_port, [])
            if len(held) < HELD_PER_PORT:
                held.append((time.monotonic(), bytes(data)))
            if in_port in sw.classified:  # its rules went in while this was on the way
                self._replay(sw)

    def _replay(self, sw: Switch) -> None:
        """Send held frames of now-classified ports back through the table (after the
        bundle: a switch processes one connection's messages in order); forget old ones."""
        dp = sw.dp
        ofp, parser = dp.ofproto, dp.ofproto_parser
        now = time.monotonic()
        for port in list(sw.held):
            frames = [(t, d) for t, d in sw.held[port] if now - t < HOLD_SECONDS]
            if port in sw.classified:
                for _t, data in frames:
                    dp.send_msg(parser.OFPPacketOut(
                        datapath=dp, buffer_id=ofp.OFP_NO_BUFFER, in_port=port,
                        actions=[parser.OFPActionOutput(ofp.OFPP_TABLE)], data=data))
                    self.stats.replayed += 1
                frames = []
            if frames:
                sw.held[port] = frames
            else:
                del sw.held[port]

    def barrier_reply(self, dp: Any, xid: int) -> None:
        with self.lock:
            sw = self.switches.get(dp.id)
            if sw is None or xid not in sw.pending_barriers:
                return
            sent = sw.pending_barriers.pop(xid)
            sw.converged_at = time.monotonic()
            if not sw.pending_barriers:
                sw.inflight.clear()
            if sw.retry_at is None:
                sw.failures = 0
        if self.on_converged is not None:
            self.on_converged(sw, sw.converged_at - sent)

    def error(self, dp: Any, text: str, xid: int | None = None) -> None:
        """The switch refused something. A refused flow-mod (found by its xid) is reported
        and left out until it changes; the table is re-read after a back-off (never at once:
        a switch that keeps refusing must not cause an endless resend loop), and the rest of
        the table is sent again without the refused flow (a bundle is atomic)."""
        with self.lock:
            self.stats.errors += 1
            sw = self.switches.get(dp.id)
            if sw is None:
                LOG.error("switch %016x: %s", dp.id, text)
                return
            sw.last_error = text
            key = sw.inflight.get(xid) if xid is not None else None
            now = time.monotonic()
            if key is not None:
                self.stats.refused += 1
                body, note = sw.wanted.get(key, (None, ""))
                sw.refused[key] = Refusal(text, body, now, note)
                LOG.error("switch %016x (%s %s) refused flow %r: %s", dp.id, sw.host_ref,
                          sw.bridge, note, text)
            else:
                LOG.error("switch %016x (%s %s): %s", dp.id, sw.host_ref, sw.bridge, text)
            if sw.retry_at is None:
                delay = min(RETRY_FIRST * (2 ** sw.failures), RETRY_MAX)
                sw.failures += 1
                sw.retry_at = now + delay

    def tick(self, now: float | None = None) -> None:
        """Timers, driven every fraction of a second by the process: back-off retries after a
        refused bundle, and the periodic audit (dump and diff) that repairs drift."""
        now = time.monotonic() if now is None else now
        with self.lock:
            for sw in list(self.switches.values()):
                if sw.installed is None or sw.dumping or sw.host_ref is None:
                    continue
                if sw.retry_at is not None and now >= sw.retry_at:
                    sw.retry_at = None
                    self.stats.retries += 1
                    self._request_dump(sw, "retry")
                elif self.audit_interval > 0 and now >= sw.audit_at:
                    self._request_dump(sw, "audit")

    def problems(self) -> list[Problem]:
        """What the switches refused or would not let netctl install, said per bridge."""
        out: list[Problem] = []
        with self.lock:
            for dpid, sw in sorted(self.switches.items()):
                where = f"{sw.host_ref}/{sw.bridge}"
                name = f"{self._host_name(sw.host_ref)} {sw.bridge}"
                for key, refusal in sorted(sw.refused.items(), key=lambda kv: repr(kv[0])):
                    out.append(Problem(
                        "bridge", where, f"{dpid:016x}", name, f"table {key[0]} priority {key[1]}",
                        f"the switch refused flow '{refusal.note}': {refusal.text}; the rest "
                        f"of the table is installed, this flow is offered again when it "
                        f"changes or in {int(REFUSED_RETRY)} s"))
                for key, note in sorted(sw.blocked.items(), key=lambda kv: repr(kv[0])):
                    cookie = sw.foreign.get(key, 0)
                    out.append(Problem(
                        "bridge", where, f"{dpid:016x}", name, f"table {key[0]} priority {key[1]}",
                        f"flow '{note}' not installed: another owner's flow (cookie "
                        f"{cookie:#x}) holds the same match and priority, and netctl never "
                        "replaces a flow it does not own"))
        return out

    def _host_name(self, host_ref: str | None) -> str:
        state = self.state
        host = state.hosts.get(host_ref) if state is not None and host_ref else None
        return host.name_label if host is not None else str(host_ref)

    # ------------------------------------------------------------------ internals
    def _identify(self, sw: Switch) -> None:
        ident = self._identities.get(sw.dp.id)
        if ident is None:
            sw.host_ref = sw.bridge = None
        else:
            sw.host_ref, sw.bridge = ident

    def desired(self, sw: Switch) -> dict:
        """Desired table of a switch: canonical key -> (canonical body, Flow); empty if the
        switch is not one of the pool's."""
        if self.state is None or sw.host_ref is None or sw.bridge is None:
            return {}
        ports = self.bridge_ports(self.state, sw)
        sw.classified = {*ports.vifs.values(), *ports.taps.values(), *ports.uplinks,
                         *ports.tunnels.values(), *ports.internal}
        sw.disabled = disabled_ports(self.state, bridge_intent(self.state, sw.host_ref,
                                                               sw.bridge), ports)
        self.stats.bridges_compiled += 1
        out = {}
        # Most flows of a bridge are the same from one compile to the next: canonicalise
        # only the new ones (the cache holds exactly this switch's current flows).
        previous, sw.canon = sw.canon, {}
        for f in compile_bridge(self.state, sw.host_ref, sw.bridge, ports):
            canon = previous.get(f) or messages.canon_flow(f)
            sw.canon[f] = canon
            key, body = canon
            out[key] = (body, f)
        return out

    def assume_in_sync(self, sw: Switch) -> None:
        """Take the switch as already holding exactly its desired table (what a flow dump
        after a restart with unchanged intent returns): for benchmarks of the diff."""
        sw.installed = {key: body for key, (body, _flow) in self.desired(sw).items()}

    @staticmethod
    def bridge_ports(state: PoolState, sw: Switch) -> BridgePorts:
        """Port roles from what the switch reports (names) and what xapi intends."""
        host, bridge = sw.host_ref or "", sw.bridge or ""
        intent = bridge_intent(state, host, bridge)
        vifs, taps = {}, {}
        for vif in intent.local_vifs:
            name = vif_port_name(state, vif)
            if name in sw.ports:
                vifs[vif.uuid] = sw.ports[name]
            tap = tap_port_name(state, vif)
            if tap in sw.ports:
                taps[vif.uuid] = sw.ports[tap]
        uplinks = tuple(sw.ports[d] for d in uplink_devices(state, host, bridge) if d in sw.ports)
        tunnels = {peer: sw.ports[name] for name, peer in tunnel_peers(state, host, bridge).items()
                   if name in sw.ports}
        internal = {}
        if intent.kind == "external":
            internal[OFPP_LOCAL] = 0
            for net_ref, vlan in intent.vlans.items():
                net = state.networks.get(net_ref)
                if vlan and net is not None and net.bridge in sw.ports:
                    internal[sw.ports[net.bridge]] = vlan  # a fake bridge's internal port
        return BridgePorts(vifs=vifs, taps=taps, uplinks=uplinks, tunnels=tunnels,
                           internal=internal)

    def _reconcile(self, sw: Switch) -> None:
        if self.state is None or sw.installed is None:
            return
        if sw.host_ref is None:
            return  # not a bridge of this pool: never touch it
        want = self.desired(sw)
        sw.wanted = {key: (body, f.note) for key, (body, f) in want.items()}
        self._send_diff(sw, {key: body for key, (body, _f) in want.items()})
        self._port_mods(sw)
        if sw.held:
            self._replay(sw)

    def _send_diff(self, sw: Switch, want: dict) -> None:
        """Send what `want` (key -> body) needs over what is installed, minus what must not be
        sent: flows the switch refused (until they change, or REFUSED_RETRY), and flows whose
        match another owner's flow holds (an ADD would silently replace it)."""
        have = sw.installed or {}
        ofp = sw.dp.ofproto
        now = time.monotonic()
        msgs, installed, blocked = [], {}, {}
        for key in [k for k in sw.refused if k not in want]:
            del sw.refused[key]  # no longer wanted: nothing left to report
        for key, body in want.items():
            refusal = sw.refused.get(key)
            if refusal is not None:
                if refusal.body == body and now - refusal.at < REFUSED_RETRY:
                    if key in have:
                        installed[key] = have[key]
                    continue
                del sw.refused[key]
            if key in sw.foreign and key not in have:
                blocked[key] = sw.wanted.get(key, (None, ""))[1]
                continue
            installed[key] = body
            if key not in have:
                msgs.append((ofp.OFPFC_ADD, key, body))
            elif have[key] != body:
                msgs.append((ofp.OFPFC_MODIFY_STRICT, key, body))
        for key in have:
            if key not in want:
                msgs.append((ofp.OFPFC_DELETE_STRICT, key, None))
        if blocked.keys() - sw.blocked.keys():
            self.stats.foreign_blocked += len(blocked.keys() - sw.blocked.keys())
            LOG.error("switch %016x (%s %s): %d desired flows held by another owner's flows; "
                      "not replaced", sw.dp.id, sw.host_ref, sw.bridge, len(blocked))
        sw.blocked = blocked
        if msgs:
            self._send_bundle(sw, msgs)
        sw.installed = installed

    def _port_mods(self, sw: Switch) -> None:
        """Make the config of the bridge's VIF ports say what their locking says: a disabled
        VIF's ports NO_RECV|NO_FWD|NO_PACKET_IN, every other VIF port clear of those bits."""
        dp = sw.dp
        parser = dp.ofproto_parser
        for port in sorted(sw.classified | sw.disabled):
            if port not in sw.port_hw:
                continue
            want = DISABLED_PORT if port in sw.disabled else 0
            have = sw.port_config.get(port, 0) & DISABLED_PORT
            if want == have:
                continue
            dp.send_msg(parser.OFPPortMod(dp, port_no=port, hw_addr=sw.port_hw[port],
                                          config=want, mask=DISABLED_PORT, advertise=0))
            sw.port_config[port] = (sw.port_config.get(port, 0) & ~DISABLED_PORT) | want
            self.stats.port_mods += 1

    def _patch(self, sw: Switch, previous: PoolState, vif_refs: set[str]) -> None:
        """Other hosts' view of VIFs that moved, came or went: only the flows about those VIFs
        change there (`flows.compile.remote_vif_flows`), so swap exactly those instead of
        recompiling the whole bridge."""
        assert self.state is not None and sw.host_ref is not None and sw.bridge is not None
        ports = BridgePorts(
            uplinks=tuple(sw.ports[d] for d in uplink_devices(self.state, sw.host_ref, sw.bridge)
                          if d in sw.ports),
            tunnels={peer: sw.ports[name] for name, peer in
                     tunnel_peers(self.state, sw.host_ref, sw.bridge).items()
                     if name in sw.ports})
        old, new = [], []
        for ref in sorted(vif_refs):
            old += remote_flows_of(previous, sw.host_ref, sw.bridge, ports, ref)
            new += remote_flows_of(self.state, sw.host_ref, sw.bridge, ports, ref)
        want = {key: body for key, (body, _note) in sw.wanted.items()}
        for f in old:
            key = messages.canon_flow(f)[0]
            want.pop(key, None)
            sw.wanted.pop(key, None)
        for f in new:
            key, body = messages.canon_flow(f)
            want[key] = body
            sw.wanted[key] = (body, f.note)
        self.stats.bridges_patched += 1
        self._send_diff(sw, want)

    def _send_bundle(self, sw: Switch, msgs: list) -> None:
        """Open, add, commit, barrier. Each (command, key, body) is written as bytes from its
        canonical form (`messages`: byte-identical to os-ken's, far cheaper), many messages
        per socket write."""
        dp = sw.dp
        ofp, parser = dp.ofproto, dp.ofproto_parser
        self._bundle_id = (self._bundle_id + 1) & 0xFFFFFFFF
        bid = self._bundle_id
        flags = ofp.ONF_BF_ATOMIC | ofp.ONF_BF_ORDERED
        dp.send_msg(parser.ONFBundleCtrlMsg(dp, bid, ofp.ONF_BCT_OPEN_REQUEST, flags, []))
        chunk = bytearray()  # OpenFlow is a byte stream: many messages per socket write
        for command, key, body in msgs:
            dp.xid = xid = (dp.xid + 1) & ofp.MAX_XID  # as Datapath.set_xid does
            inner = (messages.delete_bytes(key, xid) if body is None
                     else messages.flow_mod_bytes(key, body, command, xid))
            sw.inflight[xid] = key
            chunk += messages.bundle_add_bytes(bid, flags, inner, xid)
            if len(chunk) >= SEND_CHUNK:
                dp.send(bytes(chunk))
                chunk.clear()
        if chunk:
            dp.send(bytes(chunk))
        dp.send_msg(parser.ONFBundleCtrlMsg(dp, bid, ofp.ONF_BCT_COMMIT_REQUEST, flags, []))
        barrier = parser.OFPBarrierRequest(dp)
        dp.set_xid(barrier)
        sw.pending_barriers[barrier.xid] = self._since
        dp.send_msg(barrier)
        self.stats.flow_mods += len(msgs)
        self.stats.bundles += 1
        LOG.info("switch %016x (%s %s): %d flow-mods in bundle %d", dp.id, sw.host_ref,
                 sw.bridge, len(msgs), bid)


def _drift(believed: dict, found: dict) -> int:
    """How many of netctl's flows differ between what it believed installed and a dump:
    missing, changed, or present without being wanted."""
    missing = sum(1 for key, body in believed.items() if found.get(key) != body)
    return missing + sum(1 for key in found if key not in believed)


def _name(port: Any) -> str:
    name = port.name
    return name.decode() if isinstance(name, bytes) else str(name)


def _only_status(previous: PoolState, state: PoolState, ref: str) -> bool:
    """A tunnel whose only change is its status (netctl's own write-back) changes no flow."""
    old, new = previous.tunnels.get(ref), state.tunnels.get(ref)
    return old is not None and new is not None and replace(old, status=new.status) == new


def _plan(previous: PoolState, state: PoolState, changed: set[str]
          ) -> tuple[set[tuple[str | None, str]], dict[str, set[str]]] | None:
    """What a change needs, judged in the new state and (for what left) in the old one:
    (host ref, bridge) pairs to recompute — host None: that bridge on every host — and, per
    bridge, the VIFs whose flows other hosts must swap (patch); None: recompute everything.

    A VIF whose MAC, network, VM, host and activity stay the same (a locking-mode change, its
    allowed addresses) only concerns its own host. A VIF that moves, comes or goes (or whose
    VM does) is recomputed on the host(s) it leaves and reaches; everywhere else only its own
    flows change."""
    changed = {r for r in changed if not _only_status(previous, state, r)}
    full: set[tuple[str | None, str]] = set()
    patches: dict[str, set[str]] = {}
    for ref in changed:
        if ref in state.vifs or ref in previous.vifs:
            vif_refs = {ref}
        elif ref in state.vms or ref in previous.vms:
            vif_refs = ({v.ref for v in state.vm_vifs(ref)}
                        | {v.ref for v in previous.vm_vifs(ref)})
        elif state.get(ref) is None and previous.get(ref) is None:
            return None  # unknown
        elif ref in state.networks or ref in previous.networks:
            bridges = _bridges(previous, state, {ref})
            if bridges is None:
                return None
            full |= {(None, b) for b in bridges}
            continue
        else:
            return None  # structural: PIF, bond, VLAN, tunnel, host, pool
        for vref in vif_refs:
            bridges = _bridges(previous, state, {vref})
            if bridges is None:
                return None
            local = _local_host(previous, state, vref)
            if local is not None:
                full |= {(local, b) for b in bridges}
                continue
            hosts = {h for st in (previous, state) if vref in st.vifs
                     for h in [st.vif_host(st.vifs[vref])] if h is not None}
            full |= {(h, b) for h in hosts for b in bridges}
            for b in bridges:
                patches.setdefault(b, set()).add(vref)
    return full, patches


def _bridges(previous: PoolState, state: PoolState, refs: set[str]) -> set[str] | None:
    out: set[str] = set()
    for st in (state, previous):
        present = {r for r in refs if st.get(r) is not None}
        if present:
            found = affected_bridges(st, present)
            if found is None:
                return None
            out |= found
    return out


def _local_host(previous: PoolState, state: PoolState, ref: str) -> str | None:
    """The host a VIF change is confined to, or None when other hosts must hear of it."""
    old, new = previous.vifs.get(ref), state.vifs.get(ref)
    if old is None or new is None:
        return None
    if (old.mac, old.network, old.vm) != (new.mac, new.network, new.vm):
        return None
    if previous.is_vif_active(old) != state.is_vif_active(new):
        return None
    host = state.vif_host(new)
    return host if host == previous.vif_host(old) else None
