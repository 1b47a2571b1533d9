"""HostConfig ⇄ one host's OVSDB, through ovsdbapp: read what is there, send only the difference.

`HostOvsdb(endpoint).connect()` opens an IDL connection (TCP `tcp:IP:6640`, SSL `ssl:IP:PORT`
with `SslFiles`, or `unix:PATH`); `apply(config)` computes the difference between the
`HostConfig` and the database and sends it as **one** transaction, computed once, inside the
transaction, on the IDL's copy (the way ovs-vsctl does: the transaction also bumps
`Open_vSwitch.next_cfg`). `apply` returns once the change is *written* (the server's reply);
it does not wait for ovs-vswitchd — at 4094 VLANs vswitchd needs ~93 s more — but records the
transaction's `next_cfg` in `HostOvsdb.progress` (`netctl.sinks.ovsdb_cfg.CfgProgress`), which
the IDL's own updates of `cur_cfg` mark *in effect* (`progress.wait_in_effect` for callers that
need vswitchd's result). When nothing differs no transaction is sent at all;
`ApplyResult.operations` lists what was sent, one entry per row inserted or deleted and per
column (or map key) written, so tests and benchmarks can count them.

What netctl touches:
- rows it created carry `external_ids:netctl-owner=netctl`; only those are ever deleted (an
  owned bridge that still holds ports netctl did not create, e.g. VIFs, is kept and reported);
- in rows it did not create (a bridge networkd made, a NIC port) it writes only the columns
  that `HostConfig` describes, and in map columns only the keys it wants plus the keys
  `netctl.hostconfig.MANAGED_KEYS` names;
- VIF ports (made by the hypervisor) get only `trunks`; they are never created or deleted (a
  VIF's rate limit is an OpenFlow meter, `flows.qos`).
- a bridge's NetFlow, IPFIX and sFlow rows (flow export) are changed or removed only when
  netctl created them; another tool's stays (`netctl.sinks.ovsdb_export`).

After an ovsdb-server restart the IDL reconnects by itself; `reapply_if_reconnected()` (or the
`watch()` thread) notices the new session and applies the last config again, which rebuilds
whatever a wiped database lost and sends nothing when the database survived.
"""

from __future__ import annotations

import json
import logging
import socket
import ssl
import threading
import time
import uuid as uuidlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import ovs.stream
from ovsdbapp.backend.ovs_idl import command as ovs_command
from ovsdbapp.backend.ovs_idl import connection, idlutils, transaction
from ovsdbapp.schema.open_vswitch import impl_idl

from netctl.hostconfig import (
    OWNER_KEY,
    OWNER_VALUE,
    TUNNEL_TYPES,
    BridgeConfig,
    HostConfig,
    InterfaceConfig,
    PortConfig,
    is_managed_key,
)
from netctl.model import tap_twin
from netctl.model.hostport import split_host_port
from netctl.sinks.ovsdb_cfg import CfgProgress
from netctl.sinks.ovsdb_export import sync_export
from netctl.sinks.ovsdb_mirror import sync_mirrors

log = logging.getLogger(__name__)
SCHEMA = "Open_vSwitch"

# Columns ovs-vswitchd keeps writing about what it sees (counters every
# `other_config:stats-update-interval`, 5 s by default; link and LACP state; connection
# state; the port number, MAC and error it gives each new interface) and netctl never reads
# (port numbers come over OpenFlow): left out of the IDL's monitor, so a host's thousands of
# interfaces do not send netctl every row every few seconds, nor once more each as vswitchd
# creates them, to parse under the GIL (16 lab hosts given 4094 VLAN ports each never
# finished applying while this arrived). Kept: what netctl reads back (bfd_status, cur_cfg,
# a bond member's link_state and lacp_current for /status, a mirror's statistics, names,
# external_ids, ...): those change on an event, or on a handful of rows.
UNWATCHED: dict[str, frozenset[str]] = {
    "Open_vSwitch": frozenset({"statistics"}),
    "Bridge": frozenset({"status", "rstp_status", "datapath_version", "datapath_id"}),
    "Port": frozenset({"statistics", "status", "rstp_statistics", "rstp_status",
                       "bond_active_slave"}),
    "Interface": frozenset({"statistics", "status", "link_resets", "link_speed",
                            "duplex", "admin_state", "mtu", "ifindex",
                            "ofport", "mac_in_use", "error",
                            "cfm_fault", "cfm_fault_status", "cfm_flap_count", "cfm_health",
                            "cfm_remote_mpids", "cfm_remote_opstate"}),
    "Controller": frozenset({"status", "is_connected"}),
    "Manager": frozenset({"status", "is_connected"}),
}


# One host's transaction is built and sent at a time, process-wide. The diff and the
# transaction are built in the host's IDL thread, which is also the thread that answers
# ovsdb-server's inactivity probe (5 s, then 5 s more: disconnected). Under the GIL, N hosts
# building big transactions side by side each took N times as long, so none answered its
# probe: 16 lab hosts given 4094 VLANs each were all disconnected, reconnected and started
# over, again and again. One at a time the whole takes as long (the GIL allowed no more) and
# each session stays up; a small change waits for the others' (milliseconds). Held through
# ovsdbapp's retries too: a session dropped anyway rebuilds alone (given back on a retry, the
# rebuild ran beside the next host's build, and in a 16-host run the drops cascaded). The
# cost: a host that goes away in the middle of its commit holds the others' applies up
# until its session is back or the commit times out (`timeout`, 20 s by default), once.
BUILDING = threading.Lock()


def register_watched(helper: Any) -> None:
    """Have the IDL monitor every table and column of the host's schema but `UNWATCHED`
    (whatever that schema's version has: a column it lacks is simply not there)."""
    for table, spec in helper.schema_json["tables"].items():
        skip = UNWATCHED.get(table, frozenset())
        helper.register_columns(table, [c for c in spec["columns"] if c not in skip])


@dataclass(frozen=True)
class SslFiles:
    """Client certificate, key and CA for `ssl:` endpoints (PEM files)."""

    private_key: str
    certificate: str
    ca_cert: str


@dataclass(frozen=True)
class ApplyResult:
    """What one apply sent: one entry per row written (insert/delete) or column/key set."""

    operations: tuple[str, ...] = ()
    kept: tuple[str, ...] = ()  # owned bridges not deleted because foreign ports are on them

    @property
    def count(self) -> int:
        return len(self.operations)


class OvsdbError(RuntimeError):
    """The host's OVSDB could not be reached or refused the transaction."""


# ---------------------------------------------------------------------------------------------
# The difference, computed on the IDL's cache and written through an IDL transaction


class _Writer:
    """Records every write; performs it too when given a transaction (a dry run otherwise)."""

    def __init__(self, tables: Mapping[str, Any], txn: Any | None) -> None:
        self.tables, self.txn = tables, txn
        self.ops: list[str] = []
        self.inserted: set[int] = set()  # id() of rows inserted by this pass

    def insert(self, table: str, name: str) -> Any:
        self.ops.append(f"insert {table} {name}")
        row = _Phantom(table, name) if self.txn is None else self.txn.insert(self.tables[table])
        self.inserted.add(id(row))
        return row

    def delete(self, row: Any, what: str) -> None:
        self.ops.append(f"delete {what}")
        if self.txn is not None:
            row.delete()

    def set(self, row: Any, column: str, value: Any, what: str) -> None:
        self.ops.append(f"set {what} {column}={_fmt(value)}")
        if self.txn is not None:
            if column in ("interfaces", "controller"):
                row.verify(column)
            setattr(row, column, value)

    def setkey(self, row: Any, column: str, key: str, value: str, what: str) -> None:
        self.ops.append(f"set {what} {column}:{key}={value}")
        if self.txn is not None:
            row.setkey(column, key, value)

    def delkey(self, row: Any, column: str, key: str, what: str) -> None:
        self.ops.append(f"remove {what} {column}:{key}")
        if self.txn is not None:
            row.delkey(column, key)

    def addvalue(self, row: Any, column: str, value: Any, what: str) -> None:
        self.ops.append(f"add {what} {column} += {getattr(value, 'name', '')}")
        if self.txn is not None:
            row.addvalue(column, value)

    def delvalue(self, row: Any, column: str, value: Any, what: str) -> None:
        self.ops.append(f"remove {what} {column} -= {getattr(value, 'name', '')}")
        if self.txn is not None:
            row.delvalue(column, value)


def _fmt(value: Any) -> str:
    """A value for the operation log: rows by their name (or target; a row of neither, such
    as a NetFlow row, by its table), the rest by repr."""
    if isinstance(value, list):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    for attr in ("name", "target"):
        try:
            return str(getattr(value, attr)) if not isinstance(value, str | int | dict) \
                else repr(value)
        except AttributeError:
            continue
    table = getattr(getattr(value, "_table", None), "name", None)
    return table if isinstance(table, str) else repr(value)


class _Phantom:
    """Stands for a row a dry run would insert: accepts writes, reads as empty."""

    def __init__(self, table: str, name: str) -> None:
        self.uuid = uuidlib.uuid4()
        self.name = name
        self.table = table
        self.ports: list[Any] = []
        self.interfaces: list[Any] = []
        self.controller: list[Any] = []


def _opt(value: Any) -> list[Any]:
    """A Python value as an OVSDB optional column (a 0- or 1-element set)."""
    return [] if value is None else [value]


def _owned(row: Any) -> bool:
    return dict(getattr(row, "external_ids", {}) or {}).get(OWNER_KEY) == OWNER_VALUE


def _sync_map(w: _Writer, row: Any, table: str, column: str, desired: Mapping[str, str],
              what: str) -> None:
    current = dict(getattr(row, column))
    for key, value in sorted(desired.items()):
        if current.get(key) != value:
            w.setkey(row, column, key, value, what)
    for key in sorted(current):
        if key not in desired and key != OWNER_KEY and is_managed_key(table, column, key):
            w.delkey(row, column, key, what)


def _sync_scalar(w: _Writer, row: Any, column: str, desired: Any, what: str) -> None:
    current = getattr(row, column)
    if isinstance(current, list) and isinstance(desired, list):
        same = sorted(map(str, current)) == sorted(map(str, desired))
    else:
        same = current == desired
    if not same:
        w.set(row, column, desired, what)


class _HostDiff:
    """One host's difference: a HostConfig against the IDL's copy of its database, as the
    operations that make them equal (run inside the IDL thread, in a transaction)."""

    def __init__(self, api: Any, config: HostConfig, txn: Any | None) -> None:
        self.api, self.config = api, config
        self.tables = api.tables
        self.w = _Writer(self.tables, txn)
        self.bridges = {r.name: r for r in self.tables["Bridge"].rows.values()}
        self.ports = {r.name: r for r in self.tables["Port"].rows.values()}
        self.ifaces = {r.name: r for r in self.tables["Interface"].rows.values()}
        self.port_bridge = {p.uuid: b for b in self.bridges.values() for p in b.ports}
        self.iface_port = {i.uuid: p for p in self.ports.values() for i in p.interfaces}
        self.claimed_ports: set[Any] = set()
        self.claimed_ifaces: set[Any] = set()
        self.deleted_ports: set[Any] = set()
        self.kept: list[str] = []

    def run(self) -> list[str]:
        root = next(iter(self.tables["Open_vSwitch"].rows.values()), None)
        if root is None:
            raise OvsdbError("the database has no Open_vSwitch row (not initialised)")
        for bridge in self.config.bridges:
            self._bridge(root, bridge)
        self._vif_ports()
        # port mirroring: Mirror rows and RSPAN flood VLANs (ports that are not there yet wait)
        self.pending = sync_mirrors(self.w, self.config, self.bridges, self.ports,
                                    self.port_bridge)
        self._remove_unwanted(root)
        return self.w.ops

    def _bridge(self, root: Any, want: BridgeConfig) -> None:
        w = self.w
        row = self.bridges.get(want.name)
        what = f"Bridge {want.name}"
        if row is None:
            row = w.insert("Bridge", want.name)
            w.set(row, "name", want.name, what)
            w.set(row, "external_ids", {**want.external_ids, OWNER_KEY: OWNER_VALUE}, what)
            w.addvalue(root, "bridges", row, "Open_vSwitch")
            self.bridges[want.name] = row
            new = True
        else:
            new = False
            _sync_map(w, row, "Bridge", "external_ids", want.external_ids, what)
        if new:
            w.set(row, "other_config", dict(want.other_config), what)
            w.set(row, "fail_mode", [want.fail_mode], what)
            w.set(row, "datapath_type", want.datapath_type, what)
            w.set(row, "protocols", list(want.protocols), what)
            if want.mcast_snooping_enable:
                w.set(row, "mcast_snooping_enable", True, what)
        else:
            _sync_map(w, row, "Bridge", "other_config", want.other_config, what)
            _sync_scalar(w, row, "fail_mode", [want.fail_mode], what)
            _sync_scalar(w, row, "datapath_type", want.datapath_type, what)
            _sync_scalar(w, row, "protocols", list(want.protocols), what)
            _sync_scalar(w, row, "mcast_snooping_enable", want.mcast_snooping_enable, what)
        self._controllers(row, want, new)
        sync_export(w, row, want.name, want.export, new, self.kept)  # NetFlow, IPFIX, sFlow
        for port in want.ports:
            self._port(row, port, what)

    def _controllers(self, row: Any, want: BridgeConfig, new: bool) -> None:
        """The bridge's controllers: netctl's targets (every instance's, with several), and
        any controller another tool configured, which netctl never evicts. netctl's rows carry
        its owner mark (a row with a wanted target and no mark — made by hand, or by a netctl
        before the mark — is used as it is: marking it would be a write with unchanged
        intent; should its target stop being wanted, it is left like another tool's)."""
        if new and not want.controllers:
            return
        existing = [] if new else list(row.controller)
        current = {c.target: c for c in existing}
        foreign = [c for c in existing if c.target not in want.controllers and not _owned(c)]
        if not new and set(current) == set(want.controllers) | {c.target for c in foreign} \
                and len(existing) == len(want.controllers) + len(foreign):
            return
        rows = []
        for target in want.controllers:
            ctl = current.get(target)
            if ctl is None:
                ctl = self.w.insert("Controller", target)
                self.w.set(ctl, "target", target, f"Controller {target}")
                self.w.set(ctl, "external_ids", {OWNER_KEY: OWNER_VALUE},
                           f"Controller {target}")
            rows.append(ctl)
        self.w.set(row, "controller", rows + foreign, f"Bridge {want.name}")

    def _port(self, bridge: Any, want: PortConfig, bridge_what: str) -> None:
        w = self.w
        what = f"Port {want.name}"
        row = self.ports.get(want.name)
        if row is None:
            row = w.insert("Port", want.name)
            w.set(row, "name", want.name, what)
            w.set(row, "external_ids", {**want.external_ids, OWNER_KEY: OWNER_VALUE}, what)
            w.addvalue(bridge, "ports", row, bridge_what)
            self.ports[want.name] = row
            new = True
        else:
            new = False
            owner = self.port_bridge.get(row.uuid)
            if owner is not bridge:
                if owner is not None:
                    w.delvalue(owner, "ports", row, f"Bridge {owner.name}")
                w.addvalue(bridge, "ports", row, bridge_what)
                self.port_bridge[row.uuid] = bridge
            _sync_map(w, row, "Port", "external_ids", want.external_ids, what)
        self.claimed_ports.add(row.uuid)
        ifaces = [self._interface(row, i) for i in want.interfaces]
        current = [] if new else list(row.interfaces)
        if {i.uuid for i in current} != {i.uuid for i in ifaces}:
            w.set(row, "interfaces", ifaces, what)
        columns: list[tuple[str, Any]] = [
            ("tag", _opt(want.tag)), ("fake_bridge", want.fake_bridge),
            ("bond_mode", _opt(want.bond_mode)), ("lacp", _opt(want.lacp)),
            ("bond_updelay", want.bond_updelay), ("bond_downdelay", want.bond_downdelay),
            ("mac", _opt(want.mac)),
        ]
        for column, value in columns:
            if new:
                if value not in ([], False, 0):
                    w.set(row, column, value, what)
            else:
                _sync_scalar(w, row, column, value, what)
        if new:
            if want.other_config:
                w.set(row, "other_config", dict(want.other_config), what)
        else:
            _sync_map(w, row, "Port", "other_config", want.other_config, what)

    def _interface(self, port: Any, want: InterfaceConfig) -> Any:
        w = self.w
        what = f"Interface {want.name}"
        row = self.ifaces.get(want.name)
        if row is None:
            row = w.insert("Interface", want.name)
            w.set(row, "name", want.name, what)
            w.set(row, "external_ids", {**want.external_ids, OWNER_KEY: OWNER_VALUE}, what)
            self.ifaces[want.name] = row
            if want.type:
                w.set(row, "type", want.type, what)
            for column, value in (("mtu_request", _opt(want.mtu_request)),
                                  ("mac", _opt(want.mac))):
                if value:
                    w.set(row, column, value, what)
            for column in ("options", "other_config", "bfd"):
                if getattr(want, column):
                    w.set(row, column, dict(getattr(want, column)), what)
        else:
            old_port = self.iface_port.get(row.uuid)
            if old_port is not None and old_port is not port \
                    and old_port.uuid not in self.claimed_ports \
                    and old_port.uuid not in self.deleted_ports:
                self._release(old_port, row)
            self.iface_port[row.uuid] = port
            _sync_scalar(w, row, "type", want.type, what)
            _sync_scalar(w, row, "mtu_request", _opt(want.mtu_request), what)
            _sync_scalar(w, row, "mac", _opt(want.mac), what)
            _sync_map(w, row, "Interface", "options", want.options, what)
            _sync_map(w, row, "Interface", "other_config", want.other_config, what)
            _sync_map(w, row, "Interface", "external_ids", want.external_ids, what)
            if want.bfd:  # a tunnel's (hostconfig.TUNNEL_BFD); a NIC's bfd is not netctl's
                _sync_map(w, row, "Interface", "bfd", want.bfd, what)
        self.claimed_ifaces.add(row.uuid)
        return row

    def _vif_ports(self) -> None:
        for vif in self.config.vif_ports:
            names = [vif.name, tap_twin(vif.name)] if vif.name.startswith("vif") else [vif.name]
            for name in names:
                row = self.ports.get(name)
                if row is not None:
                    _sync_scalar(self.w, row, "trunks", list(vif.trunks), f"Port {name}")

    def _release(self, old_port: Any, iface: Any) -> None:
        """A wanted interface sits in a port netctl does not want there (e.g. a NIC on its own
        bridge that now joins a bond): take it out, and drop that port if it was its only one."""
        if len(old_port.interfaces) > 1:
            self.w.delvalue(old_port, "interfaces", iface, f"Port {old_port.name}")
            return
        bridge = self.port_bridge.get(old_port.uuid)
        if bridge is not None:
            self.w.delvalue(bridge, "ports", old_port, f"Bridge {bridge.name}")
        self.deleted_ports.add(old_port.uuid)
        self.w.delete(old_port, f"Port {old_port.name}")

    def _remove_unwanted(self, root: Any) -> None:
        w = self.w
        wanted = {b.name for b in self.config.bridges}
        doomed: list[Any] = []
        for name, bridge in sorted(self.bridges.items()):
            if name in wanted or id(bridge) in self.w.inserted or not _owned(bridge):
                continue
            foreign = [p.name for p in bridge.ports if not _owned(p)
                       and p.uuid not in self.claimed_ports | self.deleted_ports]
            if foreign:
                self.kept.append(f"bridge {name} (holds {', '.join(sorted(foreign))})")
            else:
                doomed.append(bridge)
        doomed_ids = {b.uuid for b in doomed}
        # Owned ports no longer wanted anywhere (those of a doomed bridge go with it).
        for name, port in sorted(self.ports.items()):
            if port.uuid in self.claimed_ports | self.deleted_ports \
                    or id(port) in self.w.inserted or not _owned(port):
                continue
            bridge = self.port_bridge.get(port.uuid)
            if bridge is not None and bridge.uuid in doomed_ids:
                continue
            if bridge is not None:
                w.delvalue(bridge, "ports", port, f"Bridge {bridge.name}")
            self._delete_port(port, name)
        for bridge in doomed:
            for port in bridge.ports:
                if port.uuid not in self.claimed_ports | self.deleted_ports:
                    self._delete_port(port, port.name)
            w.delvalue(root, "bridges", bridge, "Open_vSwitch")
            w.delete(bridge, f"Bridge {bridge.name}")

    def _delete_port(self, port: Any, name: str) -> None:
        for iface in port.interfaces:
            if iface.uuid not in self.claimed_ifaces:
                self.w.delete(iface, f"Interface {iface.name}")
        self.deleted_ports.add(port.uuid)
        self.w.delete(port, f"Port {name}")


class _ApplyCommand(ovs_command.BaseCommand):
    """ovsdbapp command that computes the difference inside the transaction (so a retry after a
    concurrent change recomputes the difference on fresh data)."""

    def __init__(self, api: Any, config: HostConfig) -> None:
        super().__init__(api)
        self.config = config
        self.kept: list[str] = []
        self.pending: list[str] = []

    def run_idl(self, txn: Any) -> None:
        rec = _HostDiff(self.api, self.config, txn)
        self.result = rec.run()
        self.kept = rec.kept
        self.pending = rec.pending  # ports a mirror waits for (netctl.sinks.ovsdb_mirror)


class _PlanCommand(ovs_command.BaseCommand):
    """Dry run: the operations an apply would send, without a transaction."""

    READ_ONLY = True

    def __init__(self, api: Any, config: HostConfig) -> None:
        super().__init__(api)
        self.config = config
        self.kept: list[str] = []

    def run_idl(self, txn: Any) -> None:
        rec = _HostDiff(self.api, self.config, None)
        self.result = rec.run()
        self.kept = rec.kept


# ---------------------------------------------------------------------------------------------
# The connection


_api_classes = 0
_api_lock = threading.Lock()

# A tunnel end's BFD state as OVS reports it (port name, Interface.bfd_status; None: the
# interface is gone). Called on the IDL's thread: it must be quick and must not block.
BfdCallback = Callable[[str, "dict[str, str] | None"], None]


class _WatchedIdl(connection.OvsdbIdl):
    """The IDL, telling `on_bfd` each tunnel end's `bfd_status` as it changes (issue 21:
    tunnel liveness). The IDL already mirrors the Interface table for the apply; its `notify`
    hook sees every row change as it is parsed, so this costs one test per changed row (a
    host's VIF statistics refresh every few seconds: that stays a dict lookup) and a callback
    only for a tunnel row whose bfd_status changed — no polling, no extra monitor. After a
    reconnection the IDL loads every row again (creations): the states are fresh."""

    on_bfd: BfdCallback | None = None
    # ovs-vswitchd's Open_vSwitch.cur_cfg, as loaded and whenever it changes (written vs in
    # effect: `netctl.sinks.ovsdb_cfg`)
    on_cur_cfg: Callable[[int], None] | None = None
    # ports a mirror waits for (`netctl.sinks.ovsdb_mirror`) and who to tell when one appears
    waited_ports: frozenset[str] = frozenset()
    on_waited_port: Callable[[], None] | None = None

    _rows_since_yield = 0

    def cooperative_yield(self) -> None:
        """ovsdbapp yields (`time.sleep(0)`) before every row of an update it parses: a green
        thread's turn under eventlet, but with native threads a hand-over of the GIL to every
        other busy thread, each for its 5 ms slice, row after row. 16 hosts' sessions each
        parsing thousands of rows that way answered no inactivity probe in time and were
        disconnected, again and again. Every 256 rows is as fair to green threads (a few ms
        of parsing), and native threads are switched by the interpreter anyway."""
        self._rows_since_yield += 1
        if self._rows_since_yield >= 256:
            self._rows_since_yield = 0
            time.sleep(0)

    def notify(self, event: str, row: Any, updates: Any = None) -> None:
        if row._table.name == "Open_vSwitch":
            self._cur_cfg(event, row, updates)
            return
        if event == "create" and self.waited_ports and row._table.name == "Port" \
                and self.on_waited_port is not None and row.name in self.waited_ports:
            self.waited_ports = frozenset()
            self.on_waited_port()
        callback = self.on_bfd
        if callback is None or row._table.name != "Interface":
            return
        if event == "update" and not hasattr(updates, "bfd_status"):
            return
        try:
            if getattr(row, "type", "") not in TUNNEL_TYPES:
                return
            callback(row.name, None if event == "delete" else dict(row.bfd_status))
        except Exception:  # noqa: BLE001 - never break the IDL's thread
            log.exception("%s: bfd_status of %s not read", self.session_name(),
                          getattr(row, "name", "?"))


    def _cur_cfg(self, event: str, row: Any, updates: Any) -> None:
        """Tell `on_cur_cfg` vswitchd's cur_cfg when the row is loaded or the column changed
        (one attribute test per update of the root row, which every transaction touches)."""
        callback = self.on_cur_cfg
        if callback is None or event == "delete":
            return
        if event == "update" and not hasattr(updates, "cur_cfg"):
            return
        try:
            callback(int(row.cur_cfg))
        except Exception:  # noqa: BLE001 - never break the IDL's thread
            log.exception("%s: cur_cfg not read", self.session_name())


class _CfgTransaction(impl_idl.OvsVsctlTransaction):
    """ovsdbapp's Open_vSwitch transaction (its `pre_commit` bumps `next_cfg`, as ovs-vsctl
    does), whose post-commit records the transaction's `next_cfg` and when it was written in
    the host's `CfgProgress` instead of blocking until ovs-vswitchd has applied it: ovsdbapp's
    waits on the IDL's own thread, up to the timeout (20 s), then only logs — at 4094 VLANs a
    worker held 20 s for a change vswitchd takes ~93 s to absorb, and nobody told when it did.
    cur_cfg reaching it arrives through `_WatchedIdl.notify` (same thread, so in order).
    Runs only on SUCCESS: an unchanged intent sends no transaction and records nothing."""

    def __init__(self, api: Any, conn: Any, progress: CfgProgress, started: float) -> None:
        super().__init__(api, conn, check_error=True, log_errors=True)
        self.progress, self.started = progress, started

    def post_commit(self, txn: Any) -> None:
        transaction.Transaction.post_commit(self, txn)  # the commands' own, not the wait
        self.progress.written(txn.get_increment_new_value(), self.started)


def _api_class() -> type:
    """A fresh ovsdbapp API class: ovsdbapp keeps the connection on the class, and netctl talks
    to many hosts, so each host gets a class of its own."""
    global _api_classes
    with _api_lock:
        _api_classes += 1
        return type(f"HostOvsdbApi{_api_classes}", (impl_idl.OvsdbIdl,), {})


def check_tls_peer(endpoint: str, files: SslFiles, timeout: float) -> None:
    """One TLS handshake with an `ssl:ADDRESS:PORT` endpoint before the IDL connects, for a
    clear reason when it fails: OVS's Python stream only retries a failed handshake, so a
    host whose certificate the CA did not sign (or that refuses netctl's) would just look
    unreachable. Raises OvsdbError saying which side refused and why."""
    # TLS 1.3: the server judges our certificate after the handshake; an echo answered
    # means it accepted us (a refusal arrives as an alert instead)
    _tls_call(endpoint, files, timeout, {"method": "echo", "params": [], "id": "netctl-check"})


def remove_managers(endpoint: str, files: SslFiles | None, timeout: float) -> list[str]:
    """Remove every OVSDB manager of a host (`ovs-vsctl del-manager`), through one of them:
    the targets there were. One raw JSON-RPC transaction rather than an IDL session: the
    session ends as its manager goes, and an IDL transaction would wait for an answer that
    may never come. Raises OvsdbError when the host could not be asked."""
    if not endpoint.startswith("ssl:") or files is None:
        raise OvsdbError(f"{endpoint}: managers are removed over SSL only")
    reply = _tls_call(endpoint, files, timeout, {
        "method": "transact", "id": "netctl-detach", "params": [
            SCHEMA,
            {"op": "select", "table": "Manager", "where": [], "columns": ["target"]},
            {"op": "update", "table": "Open_vSwitch", "where": [],
             "row": {"manager_options": ["set", []]}}]})
    if reply is None:  # the connection ended with its manager before the answer came
        return []
    if reply.get("error"):
        raise OvsdbError(f"{endpoint}: the transaction failed: {reply['error']}")
    return sorted(row["target"] for row in reply["result"][0].get("rows", []))


def _tls_call(endpoint: str, files: SslFiles, timeout: float, request: dict) -> dict | None:
    """Send one JSON-RPC request over a fresh TLS connection, return its answer (None when
    the host closed the connection after accepting the request)."""
    address, port = split_host_port(endpoint[len("ssl:"):])
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False  # OVS identifies peers by the CA, not by name
    try:
        context.load_verify_locations(files.ca_cert)
        context.load_cert_chain(files.certificate, files.private_key)
    except (OSError, ssl.SSLError) as exc:
        raise OvsdbError(f"ovsdb.ssl: cannot load the CA, certificate or key: {exc}") from None
    try:
        with socket.create_connection((address, port), timeout=timeout) as raw, \
                context.wrap_socket(raw) as tls:
            tls.sendall(json.dumps(request).encode())
            decoder, text = json.JSONDecoder(), ""
            while True:
                chunk = tls.recv(65536)
                if not chunk:
                    if request["method"] == "echo":
                        raise ssl.SSLError("the host closed the connection")
                    return None
                text += chunk.decode()
                try:
                    answer, _ = decoder.raw_decode(text.lstrip())
                except ValueError:
                    continue  # not all of it yet
                if answer.get("id") == request["id"]:
                    return answer
                text = ""  # a request of the server's (echo): not ours
    except ssl.SSLCertVerificationError as exc:
        raise OvsdbError(f"{endpoint}: the host's certificate is not signed by the CA in "
                         f"{files.ca_cert} ({exc.verify_message}): refused") from None
    except ssl.SSLError as exc:
        raise OvsdbError(f"{endpoint}: the host refused netctl's certificate "
                         f"{files.certificate} ({exc.reason or exc}): is it signed by the CA the "
                         "host was given (sdn-controller-ca.pem)?") from None
    except OSError as exc:
        raise OvsdbError(f"{endpoint}: {exc}") from None


class HostOvsdb:
    """One host's OVSDB: connect, apply HostConfigs, survive ovsdb-server restarts."""

    def __init__(self, endpoint: str, *, timeout: float = 20.0,
                 ssl: SslFiles | None = None, on_bfd: BfdCallback | None = None,
                 progress: CfgProgress | None = None) -> None:
        """`on_bfd(port, bfd_status)`: each tunnel end's BFD state, from the IDL's thread,
        as it is loaded and whenever it changes (None: the interface went). `progress`:
        where the last write and vswitchd's cur_cfg are recorded (a worker passes its own, so
        the record outlives a session; a new one otherwise)."""
        self.on_bfd = on_bfd
        self.progress = progress if progress is not None else CfgProgress()
        self.endpoint = endpoint
        self.timeout = timeout
        self.ssl = ssl
        self.api: Any = None
        self._conn: connection.Connection | None = None
        self._last: HostConfig | None = None
        self._session_seqno: int | None = None
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self.reapplies = 0
        # called (from the IDL's thread) when a port a mirror waits for appears: apply again
        self.on_waited_port: Callable[[], None] | None = None

    # --- lifecycle ----------------------------------------------------------------------------

    def connect(self) -> HostOvsdb:
        """Fetch the schema and start the IDL (retrying until `timeout`)."""
        if self.endpoint.startswith("ssl:"):
            if self.ssl is None:
                raise OvsdbError(f"{self.endpoint}: an ssl: endpoint needs SslFiles")
            check_tls_peer(self.endpoint, self.ssl, min(self.timeout, 10.0))
            ovs.stream.Stream.ssl_set_private_key_file(self.ssl.private_key)
            ovs.stream.Stream.ssl_set_certificate_file(self.ssl.certificate)
            ovs.stream.Stream.ssl_set_ca_cert_file(self.ssl.ca_cert)
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                helper = idlutils.get_schema_helper(self.endpoint, SCHEMA)
                break
            except Exception as exc:  # noqa: BLE001 - any failure to reach it is retried
                if time.monotonic() > deadline:
                    raise OvsdbError(f"{self.endpoint}: cannot read the OVSDB schema: "
                                     f"{exc}") from exc
                time.sleep(0.2)
        register_watched(helper)
        idl = _WatchedIdl(self.endpoint, helper)
        idl.on_bfd = self.on_bfd
        idl.on_cur_cfg = self.progress.cur_cfg
        idl.on_waited_port = self._waited_port_appeared
        # Come back quickly after an ovsdb-server restart (the default backoff reaches 8 s).
        idl._session.reconnect.set_backoff(100, 1000)
        self._conn = connection.Connection(idl=idl, timeout=self.timeout)
        self.api = _api_class()(self._conn)
        self._wait_synced(deadline)
        return self

    def close(self) -> None:
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=5)
        if self._conn is not None:
            self._conn.stop(timeout=5)
            self._conn = None

    def __enter__(self) -> HostOvsdb:
        return self.connect() if self.api is None else self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def is_connected(self) -> bool:
        """Is the OVSDB session up and the database mirrored (the IDL reconnects by itself)?"""
        return self._conn is not None and self._synced()

    def _waited_port_appeared(self) -> None:
        if self.on_waited_port is not None:
            self.on_waited_port()

    @property
    def _idl(self) -> Any:
        assert self._conn is not None, "connect() first"
        return self._conn.idl

    def _synced(self) -> bool:
        idl = self._idl
        return bool(idl._session.is_connected() and idl.state == idl.IDL_S_MONITORING
                    and idl.tables["Open_vSwitch"].rows)

    def _wait_synced(self, deadline: float) -> None:
        while not self._synced():
            if time.monotonic() > deadline:
                raise OvsdbError(f"{self.endpoint}: no OVSDB session (is ovsdb-server up?)")
            time.sleep(0.02)

    # --- applying -----------------------------------------------------------------------------

    def plan(self, config: HostConfig) -> ApplyResult:
        """The operations `apply(config)` would send now (nothing is sent)."""
        self._wait_synced(time.monotonic() + self.timeout)
        cmd = _PlanCommand(self.api, config)
        ops = cmd.execute(check_error=True)
        return ApplyResult(tuple(ops or ()), tuple(cmd.kept))

    def apply(self, config: HostConfig) -> ApplyResult:
        """Make the database match `config` in one transaction; nothing is sent when it does
        (the difference is computed once, inside the transaction, on the IDL's fresh copy;
        a transaction without operations is not sent: the IDL reports it unchanged).
        Returns once the change is written; `self.progress` says when vswitchd applied it."""
        with self._lock:
            started = self.progress.now()
            self._last = config
            self._wait_synced(time.monotonic() + self.timeout)
            self._session_seqno = self._idl._session.get_seqno()
            cmd = _ApplyCommand(self.api, config)
            try:
                txn = _CfgTransaction(self.api, self._conn, self.progress, started)
                txn.add(cmd)
                with BUILDING:
                    txn.commit()
            except Exception as exc:
                raise OvsdbError(f"{self.endpoint}: transaction failed: {exc}") from exc
            self._idl.waited_ports = frozenset(cmd.pending)
            return ApplyResult(tuple(cmd.result or ()), tuple(cmd.kept))

    def wait_in_effect(self, timeout: float | None = None) -> bool:
        """Wait until ovs-vswitchd has applied the last written change (cur_cfg reached its
        next_cfg): True, or False after `timeout` (default: the session's). For callers that
        act on what vswitchd built (the lab harness, tests, benchmarks); workers never wait."""
        return self.progress.wait_in_effect(self.timeout if timeout is None else timeout)

    # --- surviving restarts -----------------------------------------------------------------

    def reapply_if_reconnected(self) -> ApplyResult | None:
        """If the IDL reconnected since the last apply, apply the last config again."""
        with self._lock:
            if self._last is None or self._conn is None:
                return None
            if self._idl._session.get_seqno() == self._session_seqno or not self._synced():
                return None
            self.reapplies += 1
            result = self.apply(self._last)
            log.info("%s: reconnected; reapplied (%d operations)", self.endpoint, result.count)
            return result

    def watch(self, interval: float = 0.2) -> HostOvsdb:
        """A background thread that reapplies after every reconnection."""
        def loop() -> None:
            while not self._stop.wait(interval):
                try:
                    self.reapply_if_reconnected()
                except Exception:  # noqa: BLE001 - keep watching; the next round retries
                    log.exception("%s: reapply failed", self.endpoint)

        self._watcher = threading.Thread(target=loop, name=f"ovsdb-watch:{self.endpoint}",
                                         daemon=True)
        self._watcher.start()
        return self


__all__ = ["ApplyResult", "HostOvsdb", "OvsdbError", "SslFiles"]
