"""A bridge's NetFlow, IPFIX and sFlow rows: desired (`BridgeExport`) against what OVSDB holds.

Called by `netctl.sinks.ovsdb._HostDiff` for every bridge it wants, inside the host's one
transaction, with its writer (every write is recorded as an operation, and nothing is written
when nothing differs: an unchanged intent on a restart sends zero operations).

Ownership. netctl marks the rows it creates (`external_ids:netctl-owner=netctl`, as every row
it creates) and only ever changes or removes those. A bridge whose NetFlow (IPFIX, sFlow) row
is someone else's — an operator's `ovs-vsctl -- set bridge br0 netflow=@nf` — keeps it: netctl
does not replace it even when its intent asks for export there, and says so in the apply's
`kept` list. The three tables are not root tables in the OVS schema: a row lives while a bridge
refers to it, so taking netctl's row off its bridge removes it (one operation, and never a
row another bridge still uses). netctl writes one row per bridge (none shared), so one
bridge's change never touches another's.
"""

from __future__ import annotations

from typing import Any, Protocol

from netctl.hostconfig import OWNER_KEY, OWNER_VALUE
from netctl.model.export import BridgeExport, IpfixExport, NetFlowExport, SflowExport

# (Bridge column, table) of each kind
KINDS = (("netflow", "NetFlow"), ("ipfix", "IPFIX"), ("sflow", "sFlow"))


class Writer(Protocol):
    """What this module needs of `netctl.sinks.ovsdb._Writer`."""

    def insert(self, table: str, name: str) -> Any: ...
    def set(self, row: Any, column: str, value: Any, what: str) -> None: ...


def columns(want: NetFlowExport | IpfixExport | SflowExport) -> dict[str, Any]:
    """The row's columns as the IDL holds them (an optional column is a 0- or 1-element
    list), so that what is there compares equal to what is wanted."""
    if isinstance(want, NetFlowExport):
        return {"targets": list(want.targets), "active_timeout": want.active_timeout}
    if isinstance(want, IpfixExport):
        return {"targets": list(want.targets), "sampling": [want.sampling],
                "cache_active_timeout": [want.cache_active_timeout]}
    return {"targets": list(want.targets), "sampling": [want.sampling],
            "polling": [want.polling], "header": [want.header],
            "agent": [want.agent] if want.agent else []}


def _same(current: Any, desired: Any) -> bool:
    if isinstance(desired, list):
        return sorted(map(str, current or [])) == sorted(map(str, desired))
    return bool(current == desired)


def owned(row: Any) -> bool:
    return dict(getattr(row, "external_ids", {}) or {}).get(OWNER_KEY) == OWNER_VALUE


def sync_export(w: Writer, bridge: Any, name: str, want: BridgeExport, new: bool,
                kept: list[str]) -> None:
    """Make bridge `name`'s (IDL row `bridge`; `new`: inserted in this transaction) export
    rows what `want` says; a row that is not netctl's is left alone and noted in `kept`."""
    for column, table in KINDS:
        desired = getattr(want, column)
        current = [] if new else list(getattr(bridge, column))
        row = current[0] if current else None
        what = f"{table} of bridge {name}"
        if row is not None and not owned(row):
            if desired is not None:
                kept.append(f"{what} (not netctl's: left as it is, its own export not set)")
            continue
        if desired is None:
            if row is not None:  # unreferenced, OVSDB deletes it (not a root table)
                w.set(bridge, column, [], f"Bridge {name}")
            continue
        cols = columns(desired)
        if row is None:
            row = w.insert(table, name)
            w.set(row, "external_ids", {OWNER_KEY: OWNER_VALUE}, what)
            for col, value in cols.items():
                if value != []:
                    w.set(row, col, value, what)
            w.set(bridge, column, [row], f"Bridge {name}")
            continue
        for col, value in cols.items():
            if not _same(getattr(row, col), value):
                w.set(row, col, value, what)

