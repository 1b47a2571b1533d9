"""A migrating VIF's traffic follows its port, not xapi's `resident_on` (pure).

During a live migration xapi and the hypervisor disagree for a while about where a VIF is:
real xapi changes `VM.resident_on` (and `domid`) at the end, after the destination's port has
existed for the whole memory copy; a simulator or another toolstack may change it first, while
the guest still runs behind its old port. Either way, pointing the pool at the new host before
the new port exists sends the guest's traffic into nothing.

So when xapi moves a running VIF to another host while its old port is still on the old host's
switch and its new port is not yet on the new host's, the VIF is *held* where it was: the old
host keeps its local flows (for the old port's name, `vif<old domid>.<dev>`) and every other
host keeps forwarding there. The hold ends the moment the old port goes or the new one
appears (whichever comes first), or when xapi no longer says the VIF moved.

`HeldPool` is the pool as the flow compiler must read it under holds: held VIFs live on their
old host with their old domain id. The engine compiles through it, and the from-scratch
compile given the same holds must equal the engine's tables (the property test).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from netctl.model import VIF, PoolQueries, tap_port, vif_port


@dataclass(frozen=True)
class Held:
    """Where a moving VIF still is: the host whose switch has its old port, and the domain id
    that port is named for."""

    host: str
    domid: int


class HeldPool:
    """`pool` as the flows see it while some VIFs are held (`flows.handover`): everything is
    the pool's, except where a held VIF lives and which domain its port is named for."""

    def __init__(self, pool: PoolQueries, holds: Mapping[str, Held]) -> None:
        self._base = pool  # not `pool`: that is the pool's `Pool` object
        self.holds = holds

    def __getattr__(self, name: str) -> Any:  # every other lookup is the pool's own
        return getattr(self.__dict__["_base"], name)

    def vif_host(self, vif: VIF) -> str | None:
        held = self.holds.get(vif.ref)
        return held.host if held is not None else self._base.vif_host(vif)

    def vif_domid(self, vif: VIF) -> int:
        held = self.holds.get(vif.ref)
        return held.domid if held is not None else self._base.vif_domid(vif)


def port_names(domid: int, device: str) -> tuple[str, str]:
    """A VIF's two possible port names for a domain id: `vif<domid>.<dev>`, `tap<domid>.<dev>`."""
    return vif_port(domid, device), tap_port(domid, device)
