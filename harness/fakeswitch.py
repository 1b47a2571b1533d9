"""Many fake OpenFlow 1.3 switches in one process, and a stand-in for ovs-vswitchd's OVSDB ack.

Why: a whole `netctl run` at pool scale (64 hosts x ~2 bridges x up to ~700 ports) needs a
switch per bridge on the other end of its OpenFlow listen port, and a lab of real
ovs-vswitchd instances that size does not fit on this machine. What netctl's OpenFlow side
needs from a switch is small: the handshake, its ports, flow tables kept and reported back,
bundles, barriers and echoes. These switches do that and nothing else, all on one asyncio
loop (one thread), and they time every bundle commit they apply (`time.monotonic()`, the same
clock in every process on Linux), so a benchmark can take "XenAPI call -> the bridge's bundle
committed" from outside netctl.

What a switch does (as OVS does it, for what netctl sends: `netctl/sinks/openflow.py`,
`flows/wire.py`):
- connects to the controller over TCP (retrying every `RETRY_SECONDS`, and again after a lost
  connection), sends HELLO (OpenFlow 1.3), answers FEATURES_REQUEST with its datapath id,
  PORT_DESC with its ports (name, number, hw_addr; the bridge's own port as LOCAL), ECHO and
  BARRIER requests;
- keeps the flows it is sent by (table, priority, match bytes) -> (cookie, instructions): ADD
  replaces, MODIFY(_STRICT) changes the instructions of a flow whose cookie passes the mask,
  DELETE_STRICT removes it (a non-strict DELETE with an empty match removes every flow whose
  cookie passes the mask, in the table or all of them; other non-strict forms are taken as
  strict: netctl sends none);
- answers FLOW_STATS with the flows it holds and AGGREGATE_STATS with their count (both
  filtered by table and cookie/mask), split under OpenFlow's 64 KiB;
- ONF bundles (experimenter 0x4F4E4600): OPEN, ADD (flow-mods kept aside), COMMIT (applied in
  order, then recorded as a `Commit` and answered), DISCARD, CLOSE, each with its reply;
- takes PORT_MOD (the port's config bits change) and PACKET_OUT (counted, dropped);
- answers port statistics (every counter 0) and meter configuration (no meters), as OVS
  answers the statistics poller and the dump that comes with every table read;
- refuses whatever else it is sent (an unknown message, multipart or experimenter type: the
  ONF flow monitor, for one) with OFPET_BAD_REQUEST, as OVS refuses what it does not
  support, and counts it by type (`FakeSwitches.unknown()`);
- can announce a port coming or going (PORT_STATUS), as OVS does when the hypervisor plugs a
  VIF (`FakeSwitches.port_status`).

Which switches and ports: `pool_switches(spec)` derives them for a `harness.synthetic` pool
through `harness.engine_rig.RecordingSwitches` (the bridges of every host's configuration,
their NICs, tunnel and fake-bridge ports, a `vif<domid>.<device>` port per running VIF),
keeps only what OVS shows as OpenFlow ports (a bond's interfaces, not the bond) and adds the
bridge's own port as LOCAL; the datapath ids are `flows.ports.datapath_id(host_uuid, bridge)`.

`CfgAcker` plays the one part of ovs-vswitchd that an OVSDB client waits for: a transaction
that bumps `Open_vSwitch.next_cfg` (ovsdbapp's, like ovs-vsctl's) is answered by writing
`cur_cfg`, as vswitchd does once it applied the configuration. Without it each of netctl's
OVSDB transactions would wait out its timeout on an ovsdb-server that has no vswitchd.
"""

from __future__ import annotations

import asyncio
import json
import struct
import threading
import time
import zlib
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any

OFP_VERSION = 0x04
OFPT_HELLO, OFPT_ERROR, OFPT_ECHO_REQUEST, OFPT_ECHO_REPLY, OFPT_EXPERIMENTER = 0, 1, 2, 3, 4
OFPT_FEATURES_REQUEST, OFPT_FEATURES_REPLY = 5, 6
OFPT_PACKET_OUT, OFPT_FLOW_MOD, OFPT_PORT_MOD = 13, 14, 16
OFPT_PORT_STATUS = 12
OFPT_MULTIPART_REQUEST, OFPT_MULTIPART_REPLY = 18, 19
OFPT_BARRIER_REQUEST, OFPT_BARRIER_REPLY = 20, 21
OFPMP_FLOW, OFPMP_AGGREGATE, OFPMP_PORT_STATS, OFPMP_METER_CONFIG, OFPMP_PORT_DESC = 1, 2, 4, 10, 13
PORT_STATS = struct.Struct("!I4x12QII")  # ofp_port_stats: every counter 0
OFPMP_EXPERIMENTER = 0xFFFF
OFPMPF_REPLY_MORE = 1
OFPET_BAD_REQUEST = 1
OFPBRC_BAD_TYPE, OFPBRC_BAD_MULTIPART, OFPBRC_BAD_EXPERIMENTER, OFPBRC_BAD_EXP_TYPE = 1, 2, 3, 4
OFPFC_ADD, OFPFC_MODIFY, OFPFC_MODIFY_STRICT, OFPFC_DELETE, OFPFC_DELETE_STRICT = range(5)
OFPTT_ALL = 0xFF
OFPP_LOCAL = 0xFFFFFFFE
OFPPR_ADD, OFPPR_DELETE = 0, 1
ONF_EXPERIMENTER_ID = 0x4F4E4600
ONF_ET_BUNDLE_CONTROL, ONF_ET_BUNDLE_ADD_MESSAGE = 2300, 2301
ONF_BCT_OPEN, ONF_BCT_CLOSE, ONF_BCT_COMMIT, ONF_BCT_DISCARD = 0, 2, 4, 6  # requests; reply +1
HEADER = struct.Struct("!BBHI")
FLOW_MOD = struct.Struct("!QQBBHHHIIIH2x")  # after the header: 40 bytes, then the match
FLOW_STATS = struct.Struct("!HBxIIHHHH4xQQQ")  # one ofp_flow_stats without match/instructions
PORT = struct.Struct("!I4x6s2x16sIIIIIIII")  # ofp_port, 64 bytes
MP_HEADER = struct.Struct("!BBHIHH4x")
MAX_REPLY = 60000  # bytes of body per multipart reply (OpenFlow messages stop at 64 KiB)
PORTS_PER_REPLY = 500
KEEP_KEYS = 1000  # a commit of at most this many flow-mods keeps their keys (for attribution)
RETRY_SECONDS = 0.5
PORT_SPEED_KBPS = 10_000_000


@dataclass(frozen=True)
class SwitchSpec:
    """One bridge as its OVS would show it to a controller."""

    dpid: int
    ports: dict[str, int]  # OpenFlow port name -> number (LOCAL included)
    bridge: str = ""
    host: str = ""  # the host's name_label (for reports)


@dataclass(frozen=True)
class Commit:
    """A bundle the switch committed: when (time.monotonic()), and what it held."""

    at: float
    flow_mods: int
    keys: tuple[bytes, ...] | None  # flow keys (table, priority, match) if <= KEEP_KEYS

    def touches_port(self, port_no: int) -> bool:
        """Does a flow-mod of this commit match on in_port == `port_no`?"""
        needle = struct.pack("!II", 0x80000004, port_no)  # OXM in_port, no mask
        return self.keys is not None and any(needle in key for key in self.keys)


@dataclass
class Counters:
    connects: int = 0
    flow_mods: int = 0  # applied (in bundles or not)
    bundles: int = 0  # committed
    barriers: int = 0
    flow_dumps: int = 0  # FLOW_STATS requests answered
    aggregates: int = 0
    echoes: int = 0
    port_mods: int = 0
    packet_outs: int = 0
    unknown: int = 0  # messages it does not know (ignored)


def flow_key(table: int, priority: int, match: bytes) -> bytes:
    """The identity of a flow in a switch: table, priority and the (padded) match bytes."""
    return struct.pack("!BH", table, priority) + match


def hw_addr(dpid: int, name: str) -> bytes:
    """A stable, locally administered MAC per port."""
    return b"\x02" + zlib.crc32(f"{dpid:x}/{name}".encode()).to_bytes(4, "big") + b"\x00"


class FakeSwitch(asyncio.Protocol):
    """One switch: its ports, its flow table and the bundles it committed. Lives on the
    loop's thread; `commits` and `counters` may be read from others (appends only)."""

    def __init__(self, spec: SwitchSpec, owner: FakeSwitches) -> None:
        self.spec = spec
        self.owner = owner
        self.ports = dict(spec.ports)
        self.port_config: dict[int, int] = {}
        self.flows: dict[bytes, bytes] = {}  # key -> cookie (8 bytes) + instructions
        # a cookie-filtered dump's reply bodies (the statistics poller asks the same ones every
        # round) while `flows` is unchanged: (table, cookie, mask) -> (version, bodies). Made
        # anew each time, the 128 switches' 256k drop-flow entries took seconds of this
        # process's one loop, and a bundle commit waited behind them: the benchmark timed
        # its own switches.
        self._version = 0
        self._filtered: dict[tuple[int, int, int], tuple[int, list[bytes]]] = {}
        self.bundles: dict[int, list[bytes]] = {}
        self.commits: list[Commit] = []
        self.counters = Counters()
        self.unknown: dict[tuple[int, int], int] = {}  # (type, multipart/experimenter type)
        self.transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._xid = 0

    # ------------------------------------------------------------------ connection
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.counters.connects += 1
        self._buf.clear()
        self.bundles.clear()
        self._send(OFPT_HELLO, b"", xid=self._next_xid())

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.owner._lost(self)

    def data_received(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        off, size = 0, len(buf)
        while size - off >= 8:
            _v, kind, length, xid = HEADER.unpack_from(buf, off)
            if length < 8:  # not OpenFlow: hang up, as OVS does
                if self.transport is not None:
                    self.transport.close()
                return
            if size - off < length:
                break
            self._message(kind, xid, bytes(buf[off:off + length]))
            off += length
        del buf[:off]

    # ------------------------------------------------------------------ messages in
    def _message(self, kind: int, xid: int, msg: bytes) -> None:
        handler = _HANDLERS.get(kind)
        if handler is None:
            self._refuse(xid, msg, kind, 0, OFPBRC_BAD_TYPE)
            return
        handler(self, xid, msg)

    def _refuse(self, xid: int, msg: bytes, kind: int, subtype: int, code: int) -> None:
        """A request it does not implement: counted, and refused with the error OVS sends
        for what it does not support (OFPET_BAD_REQUEST, the request's first 64 bytes)."""
        self.counters.unknown += 1
        self.unknown[(kind, subtype)] = self.unknown.get((kind, subtype), 0) + 1
        self._send(OFPT_ERROR, struct.pack("!HH", OFPET_BAD_REQUEST, code) + msg[:64], xid)

    def _ignore(self, xid: int, msg: bytes) -> None:
        """HELLO (version 1.3 is all both sides speak), ECHO_REPLY, a controller's ERROR."""

    def _on_echo(self, xid: int, msg: bytes) -> None:
        self.counters.echoes += 1
        self._send(OFPT_ECHO_REPLY, msg[8:], xid)

    def _on_features(self, xid: int, msg: bytes) -> None:
        body = struct.pack("!QIBB2xII", self.spec.dpid, 0, 254, 0, 0x4F, 0)
        self._send(OFPT_FEATURES_REPLY, body, xid)

    def _on_barrier(self, xid: int, msg: bytes) -> None:
        self.counters.barriers += 1
        self._send(OFPT_BARRIER_REPLY, b"", xid)

    def _on_packet_out(self, xid: int, msg: bytes) -> None:
        self.counters.packet_outs += 1

    def _on_port_mod(self, xid: int, msg: bytes) -> None:
        port_no = struct.unpack_from("!I", msg, 8)[0]  # then pad, hw_addr, pad
        config, mask = struct.unpack_from("!II", msg, 24)
        old = self.port_config.get(port_no, 0)
        self.port_config[port_no] = (old & ~mask) | (config & mask)
        self.counters.port_mods += 1

    def _on_flow_mod(self, xid: int, msg: bytes) -> None:
        self._apply_flow_mod(msg)

    def _on_multipart(self, xid: int, msg: bytes) -> None:
        mp_type, _flags = struct.unpack_from("!HH", msg, 8)
        if mp_type == OFPMP_PORT_DESC:
            self._reply_port_desc(xid)
        elif mp_type == OFPMP_PORT_STATS:  # what the statistics poller asks every few seconds
            entries = [PORT_STATS.pack(no, *(0,) * 12, 0, 0) for no in self.ports.values()]
            self._multipart(OFPMP_PORT_STATS, xid, [
                b"".join(entries[i:i + PORTS_PER_REPLY])
                for i in range(0, len(entries), PORTS_PER_REPLY)] or [b""])
        elif mp_type == OFPMP_METER_CONFIG:  # asked with every dump: it holds no meters
            self._multipart(OFPMP_METER_CONFIG, xid, [b""])
        elif mp_type in (OFPMP_FLOW, OFPMP_AGGREGATE):
            table, cookie, mask = _stats_filter(msg)
            if mp_type == OFPMP_FLOW:
                self.counters.flow_dumps += 1
                self._multipart(OFPMP_FLOW, xid, self._dump(table, cookie, mask))
            else:
                self.counters.aggregates += 1
                count = sum(1 for k, v in self.flows.items() if _passes(k, v, table, cookie, mask))
                self._multipart(OFPMP_AGGREGATE, xid, [struct.pack("!QQI4x", 0, 0, count)])
        elif mp_type == OFPMP_EXPERIMENTER:  # e.g. the ONF flow monitor (EXT-187)
            experimenter, exp_type = struct.unpack_from("!II", msg, 16)
            code = OFPBRC_BAD_EXP_TYPE if experimenter == ONF_EXPERIMENTER_ID else \
                OFPBRC_BAD_EXPERIMENTER
            self._refuse(xid, msg, OFPT_MULTIPART_REQUEST, exp_type, code)
        else:
            self._refuse(xid, msg, OFPT_MULTIPART_REQUEST, mp_type, OFPBRC_BAD_MULTIPART)

    def _on_experimenter(self, xid: int, msg: bytes) -> None:
        experimenter, exp_type = struct.unpack_from("!II", msg, 8)
        if experimenter != ONF_EXPERIMENTER_ID:
            self._refuse(xid, msg, OFPT_EXPERIMENTER, experimenter, OFPBRC_BAD_EXPERIMENTER)
        elif exp_type == ONF_ET_BUNDLE_ADD_MESSAGE:
            bundle_id = struct.unpack_from("!I", msg, 16)[0]
            self.bundles.setdefault(bundle_id, []).append(msg[24:])
        elif exp_type == ONF_ET_BUNDLE_CONTROL:
            bundle_id, ctrl, flags = struct.unpack_from("!IHH", msg, 16)
            self._bundle_control(xid, bundle_id, ctrl, flags)
        else:
            self._refuse(xid, msg, OFPT_EXPERIMENTER, exp_type, OFPBRC_BAD_EXP_TYPE)

    def _bundle_control(self, xid: int, bundle_id: int, ctrl: int, flags: int) -> None:
        if ctrl == ONF_BCT_OPEN:
            self.bundles[bundle_id] = []
        elif ctrl == ONF_BCT_COMMIT:
            self._commit(self.bundles.pop(bundle_id, []))
        elif ctrl == ONF_BCT_DISCARD:
            self.bundles.pop(bundle_id, None)
        body = struct.pack("!IIIHH", ONF_EXPERIMENTER_ID, ONF_ET_BUNDLE_CONTROL, bundle_id,
                           ctrl + 1, flags)
        self._send(OFPT_EXPERIMENTER, body, xid)

    # ------------------------------------------------------------------ the table
    def _commit(self, messages: list[bytes]) -> None:
        keys = []
        mods = 0
        for inner in messages:
            if inner[1] == OFPT_FLOW_MOD:
                keys.append(self._apply_flow_mod(inner))
                mods += 1
        self.counters.bundles += 1
        commit = Commit(time.monotonic(), mods, tuple(keys) if mods <= KEEP_KEYS else None)
        self.owner._committed(self, commit)

    def _apply_flow_mod(self, msg: bytes) -> bytes:
        cookie, mask, table, command, _i, _h, priority, _b, _op, _og, _f = \
            FLOW_MOD.unpack_from(msg, 8)
        match_len = struct.unpack_from("!H", msg, 50)[0]
        end = 48 + (match_len + 7) // 8 * 8
        key = flow_key(table, priority, msg[48:end])
        self.counters.flow_mods += 1
        self._version += 1
        flows = self.flows
        if command == OFPFC_ADD:
            flows[key] = self.owner.intern(struct.pack("!Q", cookie) + msg[end:])
        elif command in (OFPFC_MODIFY, OFPFC_MODIFY_STRICT):
            old = flows.get(key)
            if old is not None and _cookie_ok(old, cookie, mask):
                flows[key] = self.owner.intern(old[:8] + msg[end:])
        elif command == OFPFC_DELETE and match_len == 4:
            for k in [k for k, v in flows.items() if _passes(k, v, table, cookie, mask)]:
                del flows[k]
        else:  # DELETE_STRICT (and the DELETE forms netctl never sends)
            old = flows.get(key)
            if old is not None and _cookie_ok(old, cookie, mask):
                del flows[key]
        return key

    # ------------------------------------------------------------------ replies
    def _reply_port_desc(self, xid: int) -> None:
        entries = [self._port_bytes(name, no) for name, no in self.ports.items()]
        chunks = [b"".join(entries[i:i + PORTS_PER_REPLY])
                  for i in range(0, len(entries), PORTS_PER_REPLY)] or [b""]
        self._multipart(OFPMP_PORT_DESC, xid, chunks)

    def _port_bytes(self, name: str, no: int) -> bytes:
        return PORT.pack(no, hw_addr(self.spec.dpid, name), name.encode()[:15],
                         self.port_config.get(no, 0), 0, 0, 0, 0, 0, PORT_SPEED_KBPS,
                         PORT_SPEED_KBPS)

    def _dump(self, table: int, cookie: int, mask: int) -> list[bytes]:
        """The reply bodies of a flow dump; a cookie-filtered one is kept while `flows` is
        unchanged (a whole dump is not: it would hold a copy of every table)."""
        cached = self._filtered.get((table, cookie, mask))
        if cached is not None and cached[0] == self._version:
            return cached[1]
        bodies = self._flow_bodies([(k, v) for k, v in self.flows.items()
                                    if _passes(k, v, table, cookie, mask)])
        if mask:
            self._filtered[(table, cookie, mask)] = (self._version, bodies)
        return bodies

    def _flow_bodies(self, flows: list[tuple[bytes, bytes]]) -> list[bytes]:
        """The bodies of a FLOW_STATS reply holding these flows (each under 64 KiB)."""
        chunks, chunk, size = [], [], 0
        for key, value in flows:
            table, priority = struct.unpack_from("!BH", key)
            match, instructions = key[3:], value[8:]
            length = FLOW_STATS.size + len(match) + len(instructions)
            entry = FLOW_STATS.pack(length, table, 1, 0, priority, 0, 0, 0,
                                    struct.unpack_from("!Q", value)[0], 0, 0) + match + \
                instructions
            if size + length > MAX_REPLY and chunk:
                chunks.append(b"".join(chunk))
                chunk, size = [], 0
            chunk.append(entry)
            size += length
        chunks.append(b"".join(chunk))
        return chunks

    def _multipart(self, mp_type: int, xid: int, bodies: list[bytes]) -> None:
        out = bytearray()
        for i, body in enumerate(bodies):
            flags = OFPMPF_REPLY_MORE if i < len(bodies) - 1 else 0
            out += MP_HEADER.pack(OFP_VERSION, OFPT_MULTIPART_REPLY, 16 + len(body), xid,
                                  mp_type, flags) + body
        if self.transport is not None:
            self.transport.write(bytes(out))

    def _send(self, kind: int, body: bytes, xid: int) -> None:
        if self.transport is not None:
            self.transport.write(HEADER.pack(OFP_VERSION, kind, 8 + len(body), xid) + body)

    def _next_xid(self) -> int:
        self._xid = (self._xid + 1) & 0xFFFFFFFF
        return self._xid

    def send_port_status(self, name: str, number: int, added: bool) -> None:
        """The hypervisor plugged (or removed) a port: tell the controller, as OVS does."""
        if added:
            self.ports[name] = number
        else:
            self.ports.pop(name, None)
        body = struct.pack("!B7x", OFPPR_ADD if added else OFPPR_DELETE) + \
            self._port_bytes(name, number)
        self._send(OFPT_PORT_STATUS, body, self._next_xid())


_HANDLERS: dict[int, Callable[[FakeSwitch, int, bytes], None]] = {
    OFPT_HELLO: FakeSwitch._ignore,
    OFPT_ERROR: FakeSwitch._ignore,
    OFPT_ECHO_REQUEST: FakeSwitch._on_echo,
    OFPT_ECHO_REPLY: FakeSwitch._ignore,
    OFPT_EXPERIMENTER: FakeSwitch._on_experimenter,
    OFPT_FEATURES_REQUEST: FakeSwitch._on_features,
    OFPT_PACKET_OUT: FakeSwitch._on_packet_out,
    OFPT_FLOW_MOD: FakeSwitch._on_flow_mod,
    OFPT_PORT_MOD: FakeSwitch._on_port_mod,
    OFPT_MULTIPART_REQUEST: FakeSwitch._on_multipart,
    OFPT_BARRIER_REQUEST: FakeSwitch._on_barrier,
}


def _stats_filter(msg: bytes) -> tuple[int, int, int]:
    """(table, cookie, cookie mask) of a FLOW or AGGREGATE stats request."""
    table = msg[16]
    cookie, mask = struct.unpack_from("!QQ", msg, 32)
    return table, cookie, mask


def _cookie_ok(value: bytes, cookie: int, mask: int) -> bool:
    return (struct.unpack_from("!Q", value)[0] & mask) == (cookie & mask)


def _passes(key: bytes, value: bytes, table: int, cookie: int, mask: int) -> bool:
    return (table == OFPTT_ALL or key[0] == table) and _cookie_ok(value, cookie, mask)


class FakeSwitches:
    """Every fake switch, on one asyncio loop in a thread of its own (`fakeswitch`).

    `start()` connects them all to host:port (retrying until the controller listens);
    `wait_commit()` blocks until a switch commits a bundle that satisfies a predicate;
    `stop()` closes every connection and ends the thread."""

    def __init__(self, specs: Iterable[SwitchSpec], host: str, port: int) -> None:
        self.host, self.port = host, port
        self.switches = {s.dpid: FakeSwitch(s, self) for s in specs}
        self.changed = threading.Condition()  # notified on every commit
        self._bodies: dict[bytes, bytes] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fakeswitch",
                                        daemon=True)
        self._stopping = False
        self._tasks: set[asyncio.Task] = set()  # the loop keeps only weak references

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> FakeSwitches:
        self._thread.start()
        for sw in self.switches.values():
            self._loop.call_soon_threadsafe(self._connect_soon, sw, 0.0)
        return self

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        self._stopping = True

        def close_all() -> None:
            for sw in self.switches.values():
                if sw.transport is not None:
                    sw.transport.close()
            for task in list(self._tasks):  # ackers, pending connects
                task.cancel()
            self._loop.call_later(0.05, self._loop.stop)

        self._loop.call_soon_threadsafe(close_all)
        self._thread.join(10)
        self._loop.close()

    def _connect_soon(self, sw: FakeSwitch, delay: float) -> None:
        if not self._stopping:
            self._loop.call_later(delay, lambda: self.spawn(self._connect(sw)))

    def spawn(self, coro: Coroutine) -> None:
        """Run `coro` on the loop (call on the loop's thread), holding on to its task."""
        task = self._loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connect(self, sw: FakeSwitch) -> None:
        if self._stopping:
            return
        try:
            await self._loop.create_connection(lambda: sw, self.host, self.port)
        except OSError:
            self._connect_soon(sw, RETRY_SECONDS)

    def _lost(self, sw: FakeSwitch) -> None:
        self._connect_soon(sw, RETRY_SECONDS)  # as OVS does: the controller is reconnected

    # ------------------------------------------------------------------ loop thread
    def intern(self, value: bytes) -> bytes:
        """One bytes object per distinct flow body (remote-VIF flows share a few)."""
        return self._bodies.setdefault(value, value)

    def _committed(self, sw: FakeSwitch, commit: Commit) -> None:
        with self.changed:
            sw.commits.append(commit)
            self.changed.notify_all()

    def port_status(self, dpid: int, name: str, number: int, added: bool) -> None:
        """Announce a port coming (or going) on switch `dpid` (from any thread)."""
        sw = self.switches[dpid]
        self._loop.call_soon_threadsafe(sw.send_port_status, name, number, added)

    # ------------------------------------------------------------------ other threads
    def wait_commit(self, dpid: int, after: float, accept: Callable[[Commit], bool],
                    timeout: float) -> Commit | None:
        """The first commit of switch `dpid` at or after `after` that `accept`s, waiting up to
        `timeout` seconds for it; None if none came."""
        sw = self.switches[dpid]
        deadline = time.monotonic() + timeout
        seen = 0
        with self.changed:
            while True:
                commits = sw.commits
                for commit in commits[seen:]:
                    if commit.at >= after and accept(commit):
                        return commit
                seen = len(commits)
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.changed.wait(left)

    def wait(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Until `predicate()` holds (checked at every commit and every 0.2 s)."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.changed.wait(min(left, 0.2))
        return True

    def all_committed(self) -> bool:
        return all(sw.commits for sw in self.switches.values())

    def last_commit(self) -> float:
        return max((c.at for sw in self.switches.values() for c in sw.commits[-1:]),
                   default=0.0)

    def totals(self) -> Counters:
        total = Counters()
        for sw in self.switches.values():
            for name, value in vars(sw.counters).items():
                setattr(total, name, getattr(total, name) + value)
        return total

    def unknown(self) -> dict[tuple[int, int], int]:
        """(OpenFlow type, multipart or experimenter type) -> how many came, all switches."""
        out: dict[tuple[int, int], int] = {}
        for sw in self.switches.values():
            for kind, n in sw.unknown.items():
                out[kind] = out.get(kind, 0) + n
        return out

    def flow_count(self) -> int:
        return sum(len(sw.flows) for sw in self.switches.values())


# ------------------------------------------------------------------------------- pool -> specs


@dataclass(frozen=True)
class VifPort:
    """Where a VIF's port is: its host's bridge (switch) and its OpenFlow port."""

    ref: str
    host: str
    dpid: int
    name: str
    number: int
    locking_mode: str


@dataclass
class PoolSwitches:
    """Every switch of a pool, where each VIF's port is, and the hosts' uuids."""

    specs: list[SwitchSpec] = field(default_factory=list)
    vifs: dict[str, VifPort] = field(default_factory=dict)  # VIF ref -> its port
    hosts: dict[str, str] = field(default_factory=dict)  # host name_label -> uuid


def pool_switches(spec: Any) -> PoolSwitches:
    """The switches (and every VIF's port) of the `harness.synthetic` pool `spec` as its
    hosts' OVS would show them once netctl built the bridges and the hypervisor plugged the
    VIFs: the engine's host configurations (`NetctlEngine`, as `harness.engine_rig` drives it),
    their ports by `RecordingSwitches.bridge_names`, OpenFlow port numbers as OVS hands them
    out (1, 2, ... in the order the ports were added: the host's own ports, then VIFs by
    domain id and device)."""
    from flows.ports import datapath_id, vif_port_name
    from harness.engine_rig import RecordingSwitches
    from harness.synthetic import pool_state
    from netctl.engine.core import NetctlEngine

    state = pool_state(spec)
    engine = NetctlEngine()
    engine.xapi((o.ref, None, o) for o in state.objects())
    engine.run()
    rig = RecordingSwitches()
    out = PoolSwitches()
    view = engine.view
    by_host_port: dict[tuple[str, str], tuple[int, int]] = {}
    for host_ref in sorted(engine.hosts.configs.hosts):
        cfg = engine.hosts.configs.config(host_ref)
        if cfg is None:
            continue
        host = view.hosts[host_ref]
        out.hosts[host.name_label] = host.uuid
        names = rig.bridge_names(engine, host_ref, cfg)
        for br in cfg.bridges:
            dpid = datapath_id(cfg.host_uuid, br.name)
            bonds = {p.name for p in br.ports
                     if p.interfaces and p.name not in {i.name for i in p.interfaces}}
            ports = _numbered(set(names.get(dpid, {})) - bonds)
            ports[br.name] = OFPP_LOCAL
            out.specs.append(SwitchSpec(dpid, ports, br.name, host.name_label))
            for name, no in ports.items():
                by_host_port[(host_ref, name)] = (dpid, no)
    for vif in view.vifs.values():
        vm = view.vms.get(vif.vm)
        name = vif_port_name(view, vif) if vm is not None else None
        where = by_host_port.get((vm.resident_on, name)) if name is not None else None
        if where is not None:
            out.vifs[vif.ref] = VifPort(vif.ref, view.hosts[vm.resident_on].name_label,
                                        where[0], name, where[1], vif.locking_mode)
    return out


def _numbered(names: set[str]) -> dict[str, int]:
    """OpenFlow port numbers as OVS gives them: in the order ports were added."""
    def order(name: str) -> tuple:
        if name.startswith(("vif", "tap")):
            domid, _, device = name[3:].partition(".")
            return (1, int(domid), int(device or 0), name)
        return (0, 0, 0, name)

    return {name: i for i, name in enumerate(sorted(names, key=order), start=1)}


# ------------------------------------------------------------------------------- OVSDB side


class CfgAcker:
    """Answers every `next_cfg` bump in one ovsdb-server with `cur_cfg`, as ovs-vswitchd does
    after applying a configuration (OVSDB JSON-RPC over a unix socket, on `loop`)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.acks = 0
        self._writer: asyncio.StreamWriter | None = None
        self._next_id = 0

    async def run(self) -> None:
        reader, self._writer = await asyncio.open_unix_connection(self.path)
        self._send({"method": "monitor", "id": self._id(), "params": [
            "Open_vSwitch", None, {"Open_vSwitch": {"columns": ["next_cfg", "cur_cfg"]}}]})
        decoder = json.JSONDecoder()
        text = ""
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                return
            text += chunk.decode()
            while True:
                text = text.lstrip()
                if not text:
                    break
                try:
                    msg, end = decoder.raw_decode(text)
                except json.JSONDecodeError:
                    break  # an incomplete message: read more
                text = text[end:]
                self._on(msg)

    def _on(self, msg: dict) -> None:
        if msg.get("method") == "echo":
            self._send({"id": msg["id"], "result": msg["params"], "error": None})
        elif msg.get("method") == "update":
            self._rows(msg["params"][1])
        elif isinstance(msg.get("result"), dict) and "Open_vSwitch" in msg["result"]:
            self._rows(msg["result"])

    def _rows(self, update: dict) -> None:
        for uuid, change in update.get("Open_vSwitch", {}).items():
            row = change.get("new") or {}
            want, have = row.get("next_cfg", 0), row.get("cur_cfg", 0)
            if isinstance(want, int) and want > (have if isinstance(have, int) else 0):
                self.acks += 1
                self._send({"method": "transact", "id": self._id(), "params": [
                    "Open_vSwitch", {"op": "update", "table": "Open_vSwitch",
                                     "where": [["_uuid", "==", ["uuid", uuid]]],
                                     "row": {"cur_cfg": want}}]})

    def _send(self, msg: dict) -> None:
        assert self._writer is not None
        self._writer.write(json.dumps(msg).encode())

    def _id(self) -> int:
        self._next_id += 1
        return self._next_id


def start_ackers(switches: FakeSwitches, paths: Iterable[str]) -> list[CfgAcker]:
    """A `CfgAcker` per ovsdb-server socket, on the switches' loop (already started)."""
    ackers = [CfgAcker(p) for p in paths]
    for acker in ackers:
        switches._loop.call_soon_threadsafe(switches.spawn, acker.run())
    return ackers
