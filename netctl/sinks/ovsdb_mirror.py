"""A host's Mirror rows and RSPAN flood VLANs: desired (`HostConfig.mirrors`, `.flood_vlans`)
against what OVSDB holds.

Called by `netctl.sinks.ovsdb._HostDiff` once per apply, inside the host's one transaction,
with its writer (every write is recorded as an operation; nothing is written when nothing
differs, so an unchanged intent on a restart sends zero operations).

Ownership. netctl marks the Mirror rows it creates (`external_ids:netctl-owner=netctl`, plus
`netctl-mirror-source`, the xapi object that asked) and only ever changes or removes those: a
mirror an operator made (`ovs-vsctl -- --id=@m create mirror ...`) stays on its bridge. Mirror
is not a root table: a row lives while a bridge refers to it, so taking netctl's row off
`Bridge.mirrors` removes it. `Bridge.flood_vlans` gets the RSPAN VLANs (`vlan.mirror`): on a
bridge netctl created the column is netctl's; on another (networkd's, xapi's) netctl adds
its VLANs beside whatever an operator put there and remembers which it added in
`external_ids:netctl-flood-vlans`, so that it only ever takes its own out again.

Ports. A mirror names its ports (`vif<domid>.<device>`); a port that is not on the mirror's
bridge yet (a VIF plugged a moment ago) is left out, and a mirror whose output port is not
there, or with no selected port left, is not written (OVS would refuse a mirror without an
output) — `pending` lists those ports so the caller can apply again when they appear.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from netctl.hostconfig import OWNER_KEY, OWNER_VALUE, HostConfig, MirrorConfig

SOURCE_KEY = "netctl-mirror-source"
FLOOD_KEY = "netctl-flood-vlans"  # Bridge.external_ids: the flood VLANs netctl added


class Writer(Protocol):
    """What this module needs of `netctl.sinks.ovsdb._Writer`."""

    inserted: set[int]

    def insert(self, table: str, name: str) -> Any: ...
    def set(self, row: Any, column: str, value: Any, what: str) -> None: ...
    def setkey(self, row: Any, column: str, key: str, value: str, what: str) -> None: ...
    def delkey(self, row: Any, column: str, key: str, what: str) -> None: ...


def owned(row: Any) -> bool:
    return dict(getattr(row, "external_ids", {}) or {}).get(OWNER_KEY) == OWNER_VALUE


def _uuids(rows: Iterable[Any]) -> list[str]:
    return sorted(str(r.uuid) for r in rows)


def sync_mirrors(w: Writer, config: HostConfig, bridges: Mapping[str, Any],
                 ports: Mapping[str, Any], port_bridge: Mapping[Any, Any]) -> list[str]:
    """Make every wanted bridge's Mirror rows and flood VLANs what `config` says. `bridges`,
    `ports`: the IDL's rows by name (with the rows this transaction inserts); `port_bridge`:
    port uuid -> the bridge row it is on. Returns the ports mirrors wait for."""
    wanted: dict[str, list[MirrorConfig]] = {}
    for m in config.mirrors:
        wanted.setdefault(m.bridge, []).append(m)
    flood = dict(config.flood_vlans)
    pending: list[str] = []
    for want in config.bridges:
        row = bridges.get(want.name)
        if row is None:
            continue
        new = id(row) in w.inserted
        what = f"Bridge {want.name}"
        _flood_vlans(w, row, new, set(flood.get(want.name, ())), what)
        existing = [] if new else list(getattr(row, "mirrors", []))
        mine = {m.name: m for m in existing if owned(m)}
        rows = [m for m in existing if not owned(m)]  # another tool's: kept as they are
        for m in wanted.get(want.name, ()):
            here = _resolver(ports, port_bridge, row)
            out = here(m.output_port) if m.output_port else None
            src = [p for n in m.select_src if (p := here(n)) is not None]
            dst = [p for n in m.select_dst if (p := here(n)) is not None]
            pending += [n for n in (m.output_port, *m.select_src, *m.select_dst)
                        if n and here(n) is None]
            if (m.output_port and out is None) or not (src or dst):
                continue
            rows.append(_mirror(w, mine.get(m.name), m, src, dst, out))
        if _uuids(rows) != _uuids(existing) or any(id(r) in w.inserted for r in rows):
            w.set(row, "mirrors", rows, what)
    return sorted(set(pending))


def _flood_vlans(w: Writer, row: Any, new: bool, wanted: set[int], what: str) -> None:
    """The bridge's flood VLANs: netctl's RSPAN VLANs, beside an operator's (module
    docstring)."""
    current = set() if new else {int(v) for v in getattr(row, "flood_vlans", [])}
    if new or owned(row):
        if current != wanted:
            w.set(row, "flood_vlans", sorted(wanted), what)
        return
    ids = dict(getattr(row, "external_ids", {}) or {})
    ours_before = {int(v) for v in ids.get(FLOOD_KEY, "").split(",") if v.isdigit()}
    foreign = current - ours_before
    if foreign | wanted != current:
        w.set(row, "flood_vlans", sorted(foreign | wanted), what)
    ours = wanted - foreign
    mark = ",".join(str(v) for v in sorted(ours))
    if mark and ids.get(FLOOD_KEY) != mark:
        w.setkey(row, "external_ids", FLOOD_KEY, mark, what)
    elif not mark and FLOOD_KEY in ids:
        w.delkey(row, "external_ids", FLOOD_KEY, what)


def _resolver(ports: Mapping[str, Any], port_bridge: Mapping[Any, Any], bridge: Any):  # noqa: ANN202
    def here(name: str) -> Any | None:
        port = ports.get(name)
        if port is None:
            return None
        owner = port_bridge.get(port.uuid)
        return port if owner is None or owner is bridge else None
    return here


def _mirror(w: Writer, row: Any | None, m: MirrorConfig, src: list[Any], dst: list[Any],
            out: Any | None) -> Any:
    """One Mirror row: inserted, or its columns brought to what `m` says."""
    what = f"Mirror {m.name} on {m.bridge}"
    columns: dict[str, Any] = {
        "select_src_port": src, "select_dst_port": dst,
        "output_port": [out] if out is not None else [],
        "output_vlan": [m.output_vlan] if m.output_vlan else [],
        "select_all": False, "select_vlan": [],
    }
    ids = {OWNER_KEY: OWNER_VALUE, SOURCE_KEY: m.source}
    if row is None:
        row = w.insert("Mirror", m.name)
        w.set(row, "name", m.name, what)
        w.set(row, "external_ids", ids, what)
        for column, value in columns.items():
            if value not in ([], False):
                w.set(row, column, value, what)
        return row
    if dict(row.external_ids) != ids:
        w.set(row, "external_ids", ids, what)
    for column, value in columns.items():
        current = getattr(row, column)
        if column in ("select_src_port", "select_dst_port", "output_port"):
            same = _uuids(current) == _uuids(value)
        elif isinstance(value, list):
            same = sorted(current) == sorted(value)
        else:
            same = current == value
        if not same:
            w.set(row, column, value, what)
    return row
