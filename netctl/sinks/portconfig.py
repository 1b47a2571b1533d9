"""The bridges' second OpenFlow session, in OpenFlow 1.0, for one port setting only: NO_FLOOD.

Why: on an external bridge OVS's NORMAL action floods broadcast, multicast and unknown unicast
to every port, past any table netctl writes; a VIF with to-VM traffic rules must get those
frames through its rules (`flows.compile.flood_flows`). OpenFlow 1.3 cannot take a port out of
NORMAL's flooding — `OFPPC_NO_FLOOD` exists only in OpenFlow 1.0, and OVS drops the bit from
1.1+ port-mods — so each external bridge also connects here (a second `Controller` row, the
OpenFlow target's port + 1, with `OpenFlow10` in the bridge's `protocols`), and this session
sets and clears NO_FLOOD on the ports the engine names (`FlowTables.flood_wants`).

What the switch reports is the truth: the ports it says are NO_FLOOD (its features reply when
the session comes up, its port status after each change) are handed to the reconcile loop
(`on_state(dpid, ports)`, the whole set each time), and only then does the engine flood to
them itself; so a frame reaches a port once, by NORMAL or by netctl's flow, never twice, and
a session that never comes leaves NORMAL flooding as before. Packet-ins and flow-removed
messages are turned off for the session (Nicira's set-async-config), so it carries nothing
else. Only the instance that masters a switch asks anything of it (the OpenFlow sink calls
`want` for the switches it writes).

The wire: the few fixed-size OpenFlow 1.0 messages this needs, packed with `struct` from
os-ken's OpenFlow 1.0 definitions (its constants and pack strings).
"""

from __future__ import annotations

import logging
import socket
import ssl
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from os_ken.ofproto import nicira_ext, ofproto_common
from os_ken.ofproto import ofproto_v1_0 as ofp

LOG = logging.getLogger(__name__)

HEADER = struct.Struct(ofp.OFP_HEADER_PACK_STR)  # version, type, length, xid
PHY_PORT = struct.Struct(ofp.OFP_PHY_PORT_PACK_STR)
FEATURES = struct.Struct(ofp.OFP_SWITCH_FEATURES_PACK_STR)  # after the header: dpid first
PORT_MOD = struct.Struct("!H6sIII4x")  # port_no, hw_addr, config, mask, advertise
NO_FLOOD = ofp.OFPPC_NO_FLOOD
OFPT_HELLO, OFPT_ERROR, OFPT_ECHO_REQUEST = ofp.OFPT_HELLO, ofp.OFPT_ERROR, ofp.OFPT_ECHO_REQUEST
# async config masks, [role master/equal, role slave]: port status only
ASYNC = struct.Struct("!IIIIII")
HELLO_VERSIONBITMAP = 1  # a hello element (OpenFlow 1.3.1+), which OVS sends


def message(type_: int, xid: int, body: bytes = b"") -> bytes:
    return HEADER.pack(ofp.OFP_VERSION, type_, HEADER.size + len(body), xid) + body


def port_mod(xid: int, port: int, hw_addr: bytes, on: bool) -> bytes:
    return message(ofp.OFPT_PORT_MOD, xid,
                   PORT_MOD.pack(port, hw_addr, NO_FLOOD if on else 0, NO_FLOOD, 0))


def async_config(xid: int) -> bytes:
    """Nicira's set-async-config: port status (every reason) on, packet-in and flow-removed
    off, whatever the session's role."""
    every = (1 << ofp.OFPPR_ADD) | (1 << ofp.OFPPR_DELETE) | (1 << ofp.OFPPR_MODIFY)
    body = struct.pack("!II", ofproto_common.NX_EXPERIMENTER_ID,
                       nicira_ext.NXT_SET_ASYNC_CONFIG) + \
        ASYNC.pack(0, 0, every, every, 0, 0)
    return message(ofp.OFPT_VENDOR, xid, body)


@dataclass
class _Session:
    sock: socket.socket
    peer: str
    dpid: int | None = None
    ports: dict[int, tuple[bytes, bool]] = field(default_factory=dict)  # port -> (hw, NO_FLOOD)
    lock: threading.Lock = field(default_factory=threading.Lock)
    xid: int = 0
    # barrier xid -> the port-mods sent before it: (their xid, port, NO_FLOOD); OVS does not
    # report a port-mod's effect to the session that sent it (before OpenFlow 1.5), so its
    # barrier's reply, without an error for the port-mod, is the confirmation
    pending: dict[int, list[tuple[int, int, bool]]] = field(default_factory=dict)
    refused: set[int] = field(default_factory=set)  # xids of port-mods the switch refused

    def send(self, data: bytes) -> None:
        with self.lock:
            self.sock.sendall(data)

    def next_xid(self) -> int:
        with self.lock:  # the loop's thread (`want`) and the session's own both send
            self.xid = (self.xid + 1) & 0xFFFFFFFF
            return self.xid


class PortConfigServer:
    """Listens for the bridges' OpenFlow 1.0 sessions; keeps, per switch, what netctl wants
    of each port's NO_FLOOD and what the switch reports, and sends the difference."""

    def __init__(self, host: str, port: int, on_state: Callable[[int, frozenset[int]], None],
                 tls: ssl.SSLContext | None = None) -> None:
        self.host, self.port, self.on_state, self.tls = host.strip("[]"), port, on_state, tls
        self._lock = threading.Lock()
        self._sessions: dict[int, _Session] = {}  # dpid -> its current session
        self._wanted: dict[int, dict[int, bool]] = {}  # dpid -> ports wanted NO_FLOOD
        self._listener: socket.socket | None = None
        self._stopped = threading.Event()
        self.port_mods = 0  # sent (for /status and tests)
        self._refused: set[str] = set()  # addresses told once that OpenFlow10 is missing

    # ------------------------------------------------------------------ the loop's side
    def want(self, dpid: int, port: int, on: bool) -> None:
        """netctl wants the port NO_FLOOD (or not): sent now when the session is up and the
        switch says otherwise; NO_FLOOD also when the session (or the port) comes. Only the
        ports wanted NO_FLOOD are kept (a port cleared needs nothing later: the sink asks
        again for every port of a switch whose table it diffs whole)."""
        with self._lock:
            wanted = self._wanted.setdefault(dpid, {})
            if on:
                wanted[port] = True
            else:
                wanted.pop(port, None)
            session = self._sessions.get(dpid)
        if session is not None:
            self._apply(session, {port: on})

    def forget(self, dpid: int) -> None:
        """netctl no longer writes this switch (it went, or another instance masters it)."""
        with self._lock:
            self._wanted.pop(dpid, None)

    def connected(self) -> list[int]:
        with self._lock:
            return sorted(self._sessions)

    # ------------------------------------------------------------------ threads
    def start(self) -> PortConfigServer:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, self.port))
        listener.listen(256)
        self._listener = listener
        threading.Thread(target=self._accept, name="netctl-portconfig", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        if self._listener is not None:
            self._listener.close()
        with self._lock:
            sessions = list(self._sessions.values())
        for session in sessions:
            _close(session.sock)

    def _accept(self) -> None:
        assert self._listener is not None
        while not self._stopped.is_set():
            try:
                sock, addr = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(sock, f"{addr[0]}:{addr[1]}"),
                             name="netctl-portconfig-session", daemon=True).start()

    def _serve(self, sock: socket.socket, peer: str) -> None:
        session = None
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.tls is not None:
                sock = self.tls.wrap_socket(sock, server_side=True)
            session = _Session(sock, peer)
            session.send(message(OFPT_HELLO, session.next_xid()))
            while not self._stopped.is_set():
                head = _read(sock, HEADER.size)
                version, type_, length, xid = HEADER.unpack(head)
                body = _read(sock, length - HEADER.size) if length > HEADER.size else b""
                if not self._handle(session, version, type_, xid, body):
                    return
        except (OSError, ssl.SSLError, EOFError, struct.error) as exc:
            if not self._stopped.is_set():
                LOG.debug("port-config session %s: %s", peer, exc)
        finally:
            _close(sock)
            if session is not None and session.dpid is not None:
                with self._lock:
                    if self._sessions.get(session.dpid) is session:
                        del self._sessions[session.dpid]

    def _handle(self, session: _Session, version: int, type_: int, xid: int,
                body: bytes) -> bool:
        if type_ == OFPT_HELLO:
            if version < ofp.OFP_VERSION or (len(body) >= 8 and not _offers_10(body)):
                address = session.peer.rpartition(":")[0]
                if address not in self._refused:  # said once: OVS retries every few seconds
                    self._refused.add(address)
                    LOG.warning("a switch at %s does not offer OpenFlow 1.0 to the port-config "
                                "session (the bridge's protocols must include OpenFlow10)",
                                address)
                return False
            session.send(async_config(session.next_xid()))
            session.send(message(ofp.OFPT_FEATURES_REQUEST, session.next_xid()))
        elif type_ == OFPT_ECHO_REQUEST:
            session.send(message(ofp.OFPT_ECHO_REPLY, xid, body))
        elif type_ == ofp.OFPT_FEATURES_REPLY:
            self._features(session, body)
        elif type_ == ofp.OFPT_PORT_STATUS:
            self._port_status(session, body)
        elif type_ == ofp.OFPT_BARRIER_REPLY:
            self._confirmed(session, xid)
        elif type_ == OFPT_ERROR:
            session.refused.add(xid)
            err_type, code = struct.unpack_from("!HH", body)
            LOG.warning("switch %s: port-config request %d refused (type %d, code %d)",
                        _name(session), xid, err_type, code)
        return True

    def _features(self, session: _Session, body: bytes) -> None:
        dpid = FEATURES.unpack_from(body)[0]
        ports = {}
        for at in range(FEATURES.size, len(body) - PHY_PORT.size + 1, PHY_PORT.size):
            no, hw, _name, config, *_ = PHY_PORT.unpack_from(body, at)
            if no < ofp.OFPP_MAX:
                ports[no] = (hw, bool(config & NO_FLOOD))
        session.ports = ports
        with self._lock:
            old = self._sessions.get(dpid)
            session.dpid = dpid
            self._sessions[dpid] = session
            wanted = dict(self._wanted.get(dpid, {}))
        if old is not None and old is not session:
            _close(old.sock)
        LOG.info("switch %016x: port-config session (OpenFlow 1.0) from %s", dpid, session.peer)
        self.on_state(dpid, _flooded_off(session))
        self._apply(session, wanted)

    def _port_status(self, session: _Session, body: bytes) -> None:
        reason = body[0]
        no, hw, _name, config, *_ = PHY_PORT.unpack_from(body, 8)
        if session.dpid is None or no >= ofp.OFPP_MAX:
            return
        before = _flooded_off(session)
        if reason == ofp.OFPPR_DELETE:
            session.ports.pop(no, None)
        else:
            session.ports[no] = (hw, bool(config & NO_FLOOD))
        after = _flooded_off(session)
        if after != before:
            self.on_state(session.dpid, after)
        if reason == ofp.OFPPR_ADD:  # a new port (or a number reused): what netctl wants
            with self._lock:
                want = self._wanted.get(session.dpid, {}).get(no)
            if want is not None:
                self._apply(session, {no: want})

    def _confirmed(self, session: _Session, barrier: int) -> None:
        sent = session.pending.pop(barrier, [])
        if not sent or session.dpid is None:
            return
        before = _flooded_off(session)
        for xid, port, on in sent:
            have = session.ports.get(port)
            if xid not in session.refused and have is not None:
                session.ports[port] = (have[0], on)
            session.refused.discard(xid)
        after = _flooded_off(session)
        if after != before:
            self.on_state(session.dpid, after)

    def _apply(self, session: _Session, wanted: dict[int, bool]) -> None:
        sent = []
        for port, on in sorted(wanted.items()):
            have = session.ports.get(port)
            if have is None or have[1] == on:
                continue
            xid = session.next_xid()
            try:
                session.send(port_mod(xid, port, have[0], on))
            except OSError:
                return  # its thread sees the session end
            sent.append((xid, port, on))
            self.port_mods += 1
            LOG.info("switch %s: port %d %s", _name(session), port,
                     "NO_FLOOD (floods reach it through netctl's flows)" if on
                     else "floods by NORMAL again")
        if sent:
            barrier = session.next_xid()
            session.pending[barrier] = sent
            try:
                session.send(message(ofp.OFPT_BARRIER_REQUEST, barrier))
            except OSError:
                return


def tls_context(private_key: str, certificate: str, ca_cert: str) -> ssl.SSLContext:
    """TLS as on the OpenFlow port (`openflow.ssl`): netctl's certificate, and a switch must
    present one the CA signed."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=ca_cert)
    context.load_cert_chain(certificate, private_key)
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def _offers_10(body: bytes) -> bool:
    """A hello's version bitmap element (type 1) names OpenFlow 1.0."""
    at = 0
    while at + 4 <= len(body):
        etype, elen = struct.unpack_from("!HH", body, at)
        if etype == HELLO_VERSIONBITMAP and elen >= 8:
            return bool(struct.unpack_from("!I", body, at + 4)[0] & (1 << ofp.OFP_VERSION))
        if elen < 4:
            break
        at += (elen + 7) // 8 * 8
    return True


def _flooded_off(session: _Session) -> frozenset[int]:
    return frozenset(p for p, (_hw, off) in session.ports.items() if off)


def _name(session: _Session) -> str:
    return f"{session.dpid:016x}" if session.dpid is not None else session.peer


def _read(sock: socket.socket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise EOFError("closed")
        out += chunk
    return out


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
