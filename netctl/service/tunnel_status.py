"""tunnel.status, written back to xapi as the tunnelling design asks of a controller.

netctl owns each tunnel's status: `key` (the key netctl allocated for the network), `active`
once every host that should hold the tunnel's ports has applied them (a change of those hosts'
configuration in flight does not make it inactive) *and*, given the hosts' BFD states
(`netctl.service.tunnel_liveness`), while BFD says forwarding at both ends of every one of its
peer pairs — proven to carry packets, not merely configured (issue 21) — and `error` while the
tunnel is a Problem.

What it should say changes only when a host's configuration changes (which hosts hold which
tunnel), when a host's OVSDB applied one, when a Problem about a tunnel comes or goes, or when a
tunnel end's BFD state changes. Each of those marks it due; the once-a-second writer then walks
the tunnels, and otherwise does nothing: an idle pool costs no walk of its tunnels.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from netctl.hostconfig import HostConfig
from netctl.model import Problem, Tunnel
from netctl.service.tunnel_liveness import PeerLink, PeerState, TunnelLiveness, tunnel_active


@dataclass
class Want:
    key: int | None
    hosts: set[str] = field(default_factory=set)  # hosts that should hold its ports


class TunnelStatus:
    """Which host should hold which tunnel (from the host configurations the engine hands
    on), and whether tunnel.status is due to be written again."""

    def __init__(self) -> None:
        self._of_host: dict[str, dict[str, int | None]] = {}  # host -> tunnel uuid -> key
        # host -> tunnel uuid -> its peer pairs (replaced whole: /status reads it unlocked)
        self._links: dict[str, dict[str, tuple[PeerLink, ...]]] = {}
        self.generation = 0  # grows when which host holds which tunnel ends changes
        self._wants: dict[str, Want] = {}  # tunnel uuid -> what its status should say
        self._errors: dict[str, str] = {}  # tunnel uuid -> Problem, as last written
        self._due = True

    def host_changed(self, host_ref: str, config: HostConfig | None) -> None:
        """A host's new configuration (None: it left the pool): only its tunnels move."""
        old = self._of_host.pop(host_ref, {})
        new = {link.tunnel_uuid: link.key for link in config.tunnels} if config else {}
        for uuid in old.keys() - new.keys():
            want = self._wants.get(uuid)
            if want is not None:
                want.hosts.discard(host_ref)
                if not want.hosts:
                    del self._wants[uuid]
        for uuid, key in new.items():
            want = self._wants.setdefault(uuid, Want(key))
            want.key = key
            want.hosts.add(host_ref)
        if new:
            self._of_host[host_ref] = new
        if old != new:
            self._due = True
        links: dict[str, list[PeerLink]] = {}
        for link in config.tunnels if config else ():
            links.setdefault(link.tunnel_uuid, []).append(PeerLink.of(config.host_uuid, link))
        frozen = {uuid: tuple(sorted(ls, key=lambda x: x.peer_uuid))
                  for uuid, ls in links.items()}
        if frozen != self._links.get(host_ref, {}):
            self.generation += 1
            self._due = True
            if frozen:
                self._links[host_ref] = frozen
            else:
                self._links.pop(host_ref, None)

    def peers(self, uuid: str, liveness: TunnelLiveness) -> list[PeerState]:
        """What BFD says of each peer pair of tunnel `uuid` (any thread: reads copies)."""
        want = self._wants.get(uuid)
        out = []
        for host in tuple(want.hosts) if want is not None else ():
            for link in self._links.get(host, {}).get(uuid, ()):
                out.append(liveness.peer(link))
        return out

    def tunnel_uuids(self) -> tuple[str, ...]:
        """Every tunnel some host holds ends of (a copy)."""
        return tuple(self._wants)

    def touch(self) -> None:
        """Something it depends on changed (an apply, a failed write): walk again."""
        self._due = True

    def due(self, tunnels: Mapping[str, Tunnel], applied: Mapping[str, HostConfig | None],
            problems: Iterable[Problem], liveness: TunnelLiveness | None = None
            ) -> list[tuple[str, dict]]:
        """The status every tunnel should have (uuid, keyword arguments of
        `XapiSync.write_tunnel_status`) when something changed since the last call; [] when
        nothing did. `tunnels`: the valid ones; a tunnel that is a Problem is written with
        its error. `liveness`: the tunnel ends' BFD states (active only while every peer pair
        forwards); without it, active means applied."""
        errors = {p.uuid: p.message for p in problems if p.object_class == "tunnel"}
        if not self._due and errors == self._errors:
            return []
        self._due = False
        self._errors = errors
        built = {ref: {link.tunnel_uuid for link in cfg.tunnels}
                 for ref, cfg in applied.items() if cfg is not None}
        out = []
        for uuid in sorted({t.uuid for t in tunnels.values()} | errors.keys()):
            want = self._wants.get(uuid, Want(None))
            active = bool(want.hosts) and all(uuid in built.get(h, ()) for h in want.hosts)
            if liveness is not None:
                active = tunnel_active(active, self.peers(uuid, liveness))
            error = errors.get(uuid)
            out.append((uuid, {"active": active and error is None, "key": want.key,
                               "error": error}))
        return out


def _name(view: Any, uuid: str) -> str:
    obj = view.by_uuid(uuid)
    return getattr(obj, "name_label", None) or uuid


def describe_peers(view: Any, peers: Iterable[PeerState]) -> list[dict[str, Any]]:
    """/status's rows for a tunnel's peer pairs: the peer host, whether the pair is up and
    since when (wall-clock seconds), and each end's BFD state (None: never reported)."""
    return [{"peer": _name(view, p.link.peer_uuid), "port": p.link.port,
             "peer_port": p.link.peer_port, "up": p.up, "since": p.since,
             "local": p.local.as_dict() if p.local else None,
             "remote": p.remote.as_dict() if p.remote else None}
            for p in sorted(peers, key=lambda p: _name(view, p.link.peer_uuid))]


class PeerGauges:
    """`netctl_tunnel_peer_up{network,host,peer}`: 1 while BFD says the pair forwards, 0
    otherwise; a pair that is no longer wanted loses its series. Refreshed only when which
    ends exist or a BFD state changed (`TunnelStatus.generation`, `TunnelLiveness.version`):
    an idle pool walks nothing."""

    def __init__(self, gauge: Any) -> None:
        self.gauge = gauge
        self._shown: set[tuple[str, str, str]] = set()
        self._seen: tuple[int, int] | None = None

    def refresh(self, view: Any, tunnels: TunnelStatus, liveness: TunnelLiveness) -> bool:
        mark = (tunnels.generation, liveness.version)
        if mark == self._seen:
            return False
        self._seen = mark
        shown: dict[tuple[str, str, str], bool] = {}
        for uuid in tunnels.tunnel_uuids():
            for p in tunnels.peers(uuid, liveness):
                labels = (_name(view, p.link.network_uuid), _name(view, p.link.host_uuid),
                          _name(view, p.link.peer_uuid))
                shown[labels] = shown.get(labels, True) and p.up
        for labels, up in shown.items():
            self.gauge.labels(*labels).set(1 if up else 0)
        for labels in self._shown - shown.keys():
            self.gauge.remove(*labels)
        self._shown = set(shown)
        return True
