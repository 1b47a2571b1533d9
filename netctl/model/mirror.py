"""Port mirroring: how a mirror is written in xapi. Pure data and parsing, no I/O.

The intent is in `other_config` of a VIF (mirror that VIF) or of a network (mirror every VIF
of the network), keys declared in `netctl.model.keys`; `vlan.mirror` places it on each host's
bridges as OVSDB `Mirror` rows (`netctl.hostconfig.MirrorConfig`) and `netctl.sinks.ovsdb_mirror`
writes them.

- `netctl-mirror-to` names where the copies go, in one of two forms:
  - a VIF's uuid: the monitoring VM's VIF, which must run on the same host and sit on the
    same OVS bridge as the mirrored VIF (a VLAN network's VIFs sit on its parent's bridge):
    OVS mirrors within one bridge. The monitoring VIF becomes the mirror's output port, which
    OVS reserves for mirroring (its NORMAL flooding leaves it out);
  - `vlan:N` (1-4094), RSPAN: the copies leave tagged N on every port of the bridge that
    carries VLAN N (the uplink or bond, a trunk), so a monitoring VM plugged into a xapi
    network with VLAN tag N sees them on any host. Bridges carrying VLAN N get it in
    `Bridge.flood_vlans` (no MAC learning on it: the copies carry other VMs' MACs, which
    learning would place on the uplink and then drop).
- `netctl-mirror-direction`: `both` (the default), `from-vm` (what the VM sends: OVS
  `select_src_port`) or `to-vm` (what it receives: `select_dst_port`).

One key per purpose, not a compound value: a typo in the direction then costs only the
direction (both are mirrored), never the mirror.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from netctl.model.export import ValueReason

DIRECTIONS = ("both", "from-vm", "to-vm")
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@dataclass(frozen=True)
class MirrorTarget:
    """Where a mirror's copies go: a monitoring VIF (`vif_uuid`) or an RSPAN VLAN (`vlan`)."""

    vif_uuid: str = ""
    vlan: int = 0

    @property
    def rspan(self) -> bool:
        return self.vlan > 0

    def __str__(self) -> str:
        return f"vlan:{self.vlan}" if self.rspan else self.vif_uuid


def parse_target(raw: str) -> MirrorTarget:
    """`<VIF uuid>` or `vlan:N`; raises ValueReason saying what is wrong."""
    text = raw.strip().lower()
    if text.startswith("vlan:"):
        tag = text[5:].strip()
        if not tag.isdigit() or not 1 <= int(tag) <= 4094:
            raise ValueReason(f"'{tag}' is not a VLAN tag 1-4094")
        return MirrorTarget(vlan=int(tag))
    if not _UUID.match(text):
        raise ValueReason("neither a VIF uuid nor vlan:N")
    return MirrorTarget(vif_uuid=text)


def selects(direction: str) -> tuple[bool, bool]:
    """(select what the VM sends, select what it receives) for a direction."""
    return direction in ("both", "from-vm"), direction in ("both", "to-vm")
