"""Tunnel liveness (issue 21): whether each tunnel of the mesh carries packets, as BFD says.

netctl enables BFD on every tunnel end it creates (`netctl.hostconfig.TUNNEL_BFD`), and each
host's OVSDB session reports every tunnel end's `Interface.bfd_status` as it changes
(`netctl.sinks.ovsdb.HostOvsdb(on_bfd=...)`, from the IDL's thread). `TunnelLiveness` keeps the
latest state of each end by (host uuid, port name) and tells its listeners when one changed, so
the tunnel.status writer walks the tunnels only then: an idle pool costs nothing.

The decision is pure (`peer_state`, `tunnel_active`) and unit-tested: a peer pair is up only
while BFD says *forwarding* at both ends — the host's port towards the peer and the peer's port
back (each end's own view; one end alone can lag the other by a detection time, and an end
netctl cannot read — its host's OVSDB session is down — is not proof of anything). A tunnel
(one xapi `tunnel` object: one host's ends on one private network) is active only while its
ports are applied and every one of its peer pairs is up. A host alone on its network has no
peer pair: applied is all there is to prove.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from netctl.hostconfig import TunnelLink
from vlan.tunnels import tunnel_port_name_for


@dataclass(frozen=True)
class BfdEnd:
    """One tunnel end's BFD state as OVS reports it (`Interface.bfd_status`), and since when
    its verdict (forwarding or not, or not known) holds."""

    state: str  # admin_down, down, init, up ("" before OVS reported anything)
    forwarding: bool
    remote_state: str
    diagnostic: str
    since: float  # wall-clock time the forwarding verdict last changed
    known: bool = True  # False: its host's OVSDB session is down, the state is not known

    @classmethod
    def from_status(cls, status: Mapping[str, str], since: float) -> BfdEnd:
        return cls(state=status.get("state", ""),
                   forwarding=status.get("forwarding") == "true",
                   remote_state=status.get("remote_state", ""),
                   diagnostic=status.get("diagnostic", ""), since=since)

    def same(self, other: BfdEnd) -> bool:
        """The same state, whenever it was reported."""
        return (self.state, self.forwarding, self.remote_state, self.diagnostic,
                self.known) == (other.state, other.forwarding, other.remote_state,
                                other.diagnostic, other.known)

    def as_dict(self) -> dict[str, Any]:
        return {"state": self.state if self.known else "unknown",
                "forwarding": self.forwarding, "remote_state": self.remote_state,
                "diagnostic": self.diagnostic, "since": self.since}


@dataclass(frozen=True)
class PeerLink:
    """A peer pair of one tunnel: `host`'s port towards `peer`, and `peer`'s port back (both
    named by `vlan.tunnels.tunnel_port_name_for`, so each side finds the other's)."""

    host_uuid: str
    port: str
    peer_uuid: str
    peer_port: str
    network_uuid: str = ""

    @classmethod
    def of(cls, host_uuid: str, link: TunnelLink) -> PeerLink:
        back = tunnel_port_name_for(link.protocol, link.network_uuid, host_uuid)
        return cls(host_uuid, link.port, link.peer_host_uuid, back, link.network_uuid)


@dataclass(frozen=True)
class PeerState:
    """What BFD says of one peer pair: each end's state (None: never reported), the verdict,
    and since when it holds (None: nothing was ever reported)."""

    link: PeerLink
    local: BfdEnd | None
    remote: BfdEnd | None
    up: bool
    since: float | None


def _forwarding(end: BfdEnd | None) -> bool:
    return end is not None and end.known and end.forwarding


def peer_state(link: PeerLink, local: BfdEnd | None, remote: BfdEnd | None) -> PeerState:
    """The verdict on one peer pair: up only while both ends say forwarding. Since: when the
    last end came up (up), or when the first end that is not forwarding went (down)."""
    up = _forwarding(local) and _forwarding(remote)
    ends = [e for e in (local, remote) if e is not None]
    if up:
        since: float | None = max(e.since for e in ends)
    else:
        down = [e.since for e in ends if not _forwarding(e)]
        since = min(down) if down else None
    return PeerState(link, local, remote, up, since)


def tunnel_active(applied: bool, peers: Iterable[PeerState]) -> bool:
    """tunnel.status:active: its ports applied and every peer pair up (module docstring)."""
    return applied and all(p.up for p in peers)


class TunnelLiveness:
    """The latest BFD state of every tunnel end, by (host uuid, port name).

    Written from the hosts' IDL threads (`update`, `host_lost`), read from the status writer's
    and the HTTP thread (`end`: one dict lookup, atomic under the GIL). `version` grows with
    every change, and each listener is called after it (they must be quick: they run on an
    IDL thread)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._ends: dict[tuple[str, str], BfdEnd] = {}
        self._sources: dict[str, object] = {}  # host uuid -> the session that reports it
        self._lock = threading.Lock()
        self._listeners: list[Callable[[], None]] = []
        self.version = 0

    def subscribe(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)

    def end(self, host_uuid: str, port: str) -> BfdEnd | None:
        return self._ends.get((host_uuid, port))

    def peer(self, link: PeerLink) -> PeerState:
        return peer_state(link, self.end(link.host_uuid, link.port),
                          self.end(link.peer_uuid, link.peer_port))

    def update(self, host_uuid: str, port: str, status: Mapping[str, str] | None,
               source: object = None) -> None:
        """A tunnel end's bfd_status as its host's OVSDB has it now (None: the port went).
        `source`: who reports it (a host's worker); the latest reporter of a host is the one
        whose loss `host_lost` acts on."""
        key = (host_uuid, port)
        with self._lock:
            self._sources[host_uuid] = source
            old = self._ends.get(key)
            if status is None:
                if old is None:
                    return
                del self._ends[key]
            else:
                new = BfdEnd.from_status(status, self._clock())
                if old is not None:
                    if old.same(new):
                        return
                    if _forwarding(old) == _forwarding(new):  # the verdict holds: keep since
                        new = BfdEnd(new.state, new.forwarding, new.remote_state,
                                     new.diagnostic, old.since)
                self._ends[key] = new
            self.version += 1
        self._changed()

    def host_lost(self, host_uuid: str, source: object = None) -> None:
        """The host's OVSDB session went: its ends' states are no longer known (and so not
        forwarding) until the session is back and reports them again. A `source` that is not
        the host's latest reporter (a worker replaced by another, ending after it) changes
        nothing."""
        now = self._clock()
        with self._lock:
            if self._sources.get(host_uuid, source) is not source:
                return
            changed = False
            for key, end in list(self._ends.items()):
                if key[0] == host_uuid and end.known:
                    self._ends[key] = BfdEnd(end.state, end.forwarding, end.remote_state,
                                             end.diagnostic,
                                             now if _forwarding(end) else end.since,
                                             known=False)
                    changed = True
            if not changed:
                return
            self.version += 1
        self._changed()

    def _changed(self) -> None:
        for listener in tuple(self._listeners):
            listener()
