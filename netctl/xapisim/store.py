"""The simulator's database: rows, derived sets, and xapi's generation counter for events.

Why a generation model and not an event queue: `event.from` is defined by it (spec §2.4/2.7).
Each row keeps the generations it was created and last modified at; deletions leave
tombstones, capped per table the way xapi caps them (511, truncated to the newest 256; the cap
is a parameter so tests can exceed it cheaply). A scan since a token yields at most one event
per object: `add` if created after it, `mod` if only modified after it, `del` from tombstones.

Relations (schema.RELATIONS) keep the derived ref sets (`network.VIFs`, `PIF.bond_master_of`...)
in step and stamp the row on the other side as modified, which is xapi's relation fan-out.

All access goes through one re-entrant lock; `changed` is a Condition on it that `event.from`
waits on.

Snapshots (`record`, the events of `scan`) are copies, because the caller encodes them after
the lock is released: a shallow copy of the row plus a copy of each set and map field (the only
values ever changed in place), not a call per field. A full `event.from("")` of a 64-host x
1000-VIF pool copies ~100k rows of up to 90 fields; the scan also pauses the cyclic GC, which
would otherwise rescan the heap several times over while those copies pile up.
"""

from __future__ import annotations

import threading
import uuid as uuidlib
from dataclasses import dataclass
from typing import Any

from netctl.sources.xapi.transport import gc_paused
from netctl.xapisim.errors import XapiError
from netctl.xapisim.schema import CLASSES, LAB_DEFAULTS, RELATIONS, ClassDef, copy_value

TOMBSTONE_CAP = 511
TOMBSTONE_KEEP = 256


def new_ref() -> str:
    return f"OpaqueRef:{uuidlib.uuid4()}"


@dataclass
class Row:
    table: Table
    ref: str
    fields: dict[str, Any]
    created: int
    modified: int


@dataclass(frozen=True)
class Tombstone:
    created: int
    deleted: int
    ref: str


class Table:
    def __init__(self, cls: ClassDef) -> None:
        self.cls = cls
        self.rows: dict[str, Row] = {}
        self.by_uuid: dict[str, str] = {}
        self.tombstones: list[Tombstone] = []  # oldest first
        # ref -> generation of its last write, in write order: scans walk it backwards and stop
        # at the token, so an event.from costs what changed, not the size of the table.
        self.recent: dict[str, int] = {}
        # set and map fields: copied into a snapshot (everything else is immutable)
        self.mutable: tuple[str, ...] = tuple(f.name for f in cls.fields
                                              if f.is_map or f.is_set)
        # a new row's fields before its own values: the lab's defaults, else the schema's
        lab = LAB_DEFAULTS.get(cls.name, {})
        self.defaults: dict[str, Any] = {
            f.name: copy_value(lab[f.name]) if f.name in lab else f.empty() for f in cls.fields}

    def snapshot(self, row: Row) -> dict[str, Any]:
        """A copy of the row's fields that later writes cannot change."""
        snap = row.fields.copy()
        for name in self.mutable:
            snap[name] = snap[name].copy()
        return snap


class Store:
    """Rows of every class, a generation counter and change notification."""

    def __init__(self, tombstone_cap: int = TOMBSTONE_CAP, tombstone_keep: int = TOMBSTONE_KEEP
                 ) -> None:
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.generation = 1  # >0 so objects seeded at start appear in event.from("")
        self.tables = {name: Table(cls) for name, cls in CLASSES.items()}
        self.tombstone_cap = tombstone_cap
        self.tombstone_keep = min(tombstone_keep, tombstone_cap)
        # stored field -> derived field, by class
        self._forward: dict[str, list[tuple[str, str, str]]] = {}
        for child, fld, parent, derived in RELATIONS:
            self._forward.setdefault(child, []).append((fld, parent, derived))

    # --- reading --------------------------------------------------------------------------

    def table(self, cls: str) -> Table:
        return self.tables[cls]

    def row(self, cls: str, ref: str) -> Row:
        """The row, or HANDLE_INVALID [class, ref] as xapi says it."""
        row = self.tables[cls].rows.get(ref)
        if row is None:
            raise XapiError("HANDLE_INVALID", cls, ref)
        return row

    def exists(self, cls: str, ref: str) -> bool:
        return ref in self.tables[cls].rows

    def get(self, cls: str, ref: str, field: str) -> Any:
        return self.row(cls, ref).fields[field]

    def record(self, cls: str, ref: str) -> dict[str, Any]:
        """A copy of the row's fields: what get_record and event snapshots return."""
        return self.tables[cls].snapshot(self.row(cls, ref))

    def refs(self, cls: str) -> list[str]:
        return list(self.tables[cls].rows)

    def find(self, cls: str, **match: Any) -> list[str]:
        """Refs of rows whose fields equal all of `match`."""
        return [r.ref for r in self.tables[cls].rows.values()
                if all(r.fields.get(k) == v for k, v in match.items())]

    def ref_of_uuid(self, cls: str, uuid: str) -> str:
        ref = self.tables[cls].by_uuid.get(uuid)
        if ref is None:
            raise XapiError("UUID_INVALID", cls, uuid)
        return ref

    # --- writing --------------------------------------------------------------------------

    def _stamp(self, row: Row) -> None:
        row.modified = self.generation
        recent = row.table.recent
        recent.pop(row.ref, None)
        recent[row.ref] = self.generation

    def _bump(self) -> None:
        self.generation += 1
        self.changed.notify_all()

    def insert(self, cls: str, values: dict[str, Any], ref: str | None = None) -> str:
        """A new row with `values` over the lab's defaults and the schema's; returns its ref."""
        table = self.tables[cls]
        with self.lock:
            # The table's defaults copied once per row, not worked out per field: seeding a
            # 64-host x 1000-VM pool inserts ~200k rows of up to 90 fields.
            fields = table.defaults.copy()
            for name in table.mutable:
                fields[name] = fields[name].copy()
            for name, value in values.items():
                if name in fields:
                    fields[name] = copy_value(value)
            if not fields.get("uuid"):
                fields["uuid"] = str(uuidlib.uuid4())
            ref = ref or new_ref()
            row = Row(table, ref, fields, self.generation, self.generation)
            table.rows[ref] = row
            table.recent[ref] = self.generation
            table.by_uuid[fields["uuid"]] = ref
            for fld, parent, derived in self._forward.get(cls, ()):
                self._link(parent, fields[fld], derived, ref)
            self._bump()
            return ref

    def update(self, cls: str, ref: str, **values: Any) -> None:
        """Set fields of one row (maintains relations); one generation for the whole write."""
        with self.lock:
            row = self.row(cls, ref)
            for fld, value in values.items():
                old = row.fields[fld]
                row.fields[fld] = copy_value(value)
                for rfld, parent, derived in self._forward.get(cls, ()):
                    if rfld == fld and old != value:
                        self._unlink(parent, old, derived, ref)
                        self._link(parent, value, derived, ref)
            self._stamp(row)
            self._bump()

    def touch(self, cls: str, ref: str) -> int:
        """Mark the row modified (event.inject); returns the generation it was stamped with."""
        with self.lock:
            row = self.row(cls, ref)
            self._stamp(row)
            gen = self.generation
            self._bump()
            return gen

    def delete(self, cls: str, ref: str) -> None:
        with self.lock:
            table = self.tables[cls]
            row = self.row(cls, ref)
            for fld, parent, derived in self._forward.get(cls, ()):
                self._unlink(parent, row.fields[fld], derived, ref)
            del table.rows[ref]
            table.recent.pop(ref, None)
            table.by_uuid.pop(row.fields["uuid"], None)
            table.tombstones.append(Tombstone(row.created, self.generation, ref))
            if len(table.tombstones) > self.tombstone_cap:
                del table.tombstones[: len(table.tombstones) - self.tombstone_keep]
            self._bump()

    def _link(self, parent: str, pref: str, derived: str, child: str) -> None:
        prow = self.tables[parent].rows.get(pref)
        if prow is not None:  # callers only link a child that is not there yet (no O(n) check)
            prow.fields[derived].append(child)
            self._stamp(prow)

    def _unlink(self, parent: str, pref: str, derived: str, child: str) -> None:
        prow = self.tables[parent].rows.get(pref)
        if prow is not None and child in prow.fields[derived]:
            prow.fields[derived].remove(child)
            self._stamp(prow)

    # --- events ---------------------------------------------------------------------------

    def scan(self, classes: dict[str, set[str] | None], since: int
             ) -> tuple[list[dict[str, Any]], int]:
        """Events since generation `since` for the given tables (one per object), and the
        highest generation among them (or `since`). `classes` maps a table to the refs
        subscribed (None = all). Call with the lock held."""
        adds: list[dict[str, Any]] = []
        mods: list[dict[str, Any]] = []
        dels: list[dict[str, Any]] = []
        last = since
        with gc_paused():
            for cls, only in classes.items():
                last = self._scan_table(cls, only, since, last, adds, mods, dels)
        return adds + mods + dels, last

    def _scan_table(self, cls: str, only: set[str] | None, since: int, last: int,
                    adds: list[dict[str, Any]], mods: list[dict[str, Any]],
                    dels: list[dict[str, Any]]) -> int:
        """`scan` for one table: appends its events, returns the highest generation seen."""
        table = self.tables[cls]
        lower = cls.lower()
        snapshot = table.snapshot
        for ref, gen in reversed(table.recent.items()):
            if gen <= since:
                break
            row = table.rows[ref]
            if only is not None and ref not in only:
                continue
            created = row.created > since
            (adds if created else mods).append({
                "id": str(row.modified), "timestamp": "0.0", "class": lower,
                "operation": "add" if created else "mod", "ref": ref,
                "snapshot": snapshot(row)})
            if row.modified > last:
                last = row.modified
        for tomb in reversed(table.tombstones):
            if tomb.deleted <= since:
                break
            if tomb.created <= since and (only is None or tomb.ref in only):
                dels.append({"id": str(tomb.deleted), "timestamp": "0.0", "class": lower,
                             "operation": "del", "ref": tomb.ref})
                last = max(last, tomb.deleted)
        return last

    def counts(self) -> dict[str, int]:
        return {name.lower(): len(t.rows) for name, t in self.tables.items()}
