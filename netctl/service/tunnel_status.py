"""tunnel.status, written back to xapi as the tunnelling design asks of a controller.

netctl owns each tunnel's status: `key` (the key netctl allocated for the network), `active`
once every host that should hold the tunnel's ports has applied them (a change of those hosts'
configuration in flight does not make it inactive), and `error` while the tunnel is a Problem.

What it should say changes only when a host's configuration changes (which hosts hold which
tunnel), when a host's OVSDB applied one, or when a Problem about a tunnel comes or goes. Each
of those marks it due; the once-a-second writer then walks the tunnels, and otherwise does
nothing: an idle pool costs no walk of its tunnels.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from netctl.hostconfig import HostConfig
from netctl.model import Problem, Tunnel


@dataclass
class Want:
    key: int | None
    hosts: set[str] = field(default_factory=set)  # hosts that should hold its ports


class TunnelStatus:
    """Which host should hold which tunnel (from the host configurations the engine hands
    on), and whether tunnel.status is due to be written again."""

    def __init__(self) -> None:
        self._of_host: dict[str, dict[str, int | None]] = {}  # host -> tunnel uuid -> key
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

    def touch(self) -> None:
        """Something it depends on changed (an apply, a failed write): walk again."""
        self._due = True

    def due(self, tunnels: Mapping[str, Tunnel], applied: Mapping[str, HostConfig | None],
            problems: Iterable[Problem]) -> list[tuple[str, dict]]:
        """The status every tunnel should have (uuid, keyword arguments of
        `XapiSync.write_tunnel_status`) when something changed since the last call; [] when
        nothing did. `tunnels`: the valid ones; a tunnel that is a Problem is written with
        its error."""
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
            error = errors.get(uuid)
            out.append((uuid, {"active": active and error is None, "key": want.key,
                               "error": error}))
        return out
