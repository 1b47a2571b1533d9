"""Recording targets for the reconcile engine: what a pool's switches and OVSDB servers would
receive, counted (and, for switches, optionally kept), without a socket. Shared by the engine's
proofs (`tests/unit/test_engine.py`) and `bench/scale.py`.

`RecordingSwitches` plays every host's OVS towards the engine: a switch per bridge the host's
configuration holds, with the ports OVSDB and the hypervisor put on it (NICs or bond members,
tunnel ports, fake-bridge ports, a VIF port per running VIF); it applies the engine's deltas,
checking each one's add/modify/delete claim against what it holds when `keep=True`.
`config_ops` counts what an OVSDB transaction would change between two HostConfigs.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

from flows.compile import bridge_shape
from flows.ports import datapath_id, vif_port_name
from netctl.engine.core import NetctlEngine, SwitchEvent
from netctl.hostconfig import HostConfig


def port_number(name: str) -> int:
    """A stable OpenFlow port number per port name (as a switch would keep it)."""
    return zlib.crc32(name.encode()) % 60000 + 1


@dataclass
class Counts:
    adds: int = 0
    modifies: int = 0
    deletes: int = 0
    full: int = 0  # tables handed on whole (a connect or a rebuild)

    @property
    def flow_mods(self) -> int:
        return self.adds + self.modifies + self.deletes


@dataclass
class RecordingSwitches:
    keep: bool = False
    names: dict[int, dict[str, int]] = field(default_factory=dict)  # dpid -> port names
    installed: dict[int, dict] = field(default_factory=dict)
    disabled: dict[int, dict[int, bool]] = field(default_factory=dict)  # dpid -> port -> set
    meters: dict[int, dict] = field(default_factory=dict)  # dpid -> meter id -> band (as sent)
    counts: Counts = field(default_factory=Counts)

    def bridge_names(self, engine: NetctlEngine, host_ref: str, cfg: HostConfig
                     ) -> dict[int, dict[str, int]]:
        """Every switch of one host as its OVS shows it now."""
        view = engine.view
        out = {}
        for br in cfg.bridges:
            names = {p.name for p in br.ports} | {i.name for p in br.ports for i in p.interfaces}
            names.discard(br.name)
            _kind, _bond, vlans = bridge_shape(view, host_ref, br.name)
            for net in vlans:
                for vif in view.host_network_vifs(host_ref, net):
                    if view.is_vif_active(vif):
                        name = vif_port_name(view, vif)
                        if name is not None:
                            names.add(name)
            out[datapath_id(cfg.host_uuid, br.name)] = {n: port_number(n) for n in names}
        return out

    def connect_all(self, engine: NetctlEngine) -> int:
        """Every host's switches connect (a cold start); returns how many."""
        configs = engine.hosts.configs
        for host_ref in sorted(configs.hosts):
            cfg = configs.config(host_ref)
            if cfg is None:
                continue
            for dpid, names in self.bridge_names(engine, host_ref, cfg).items():
                self.names[dpid] = dict(names)
                engine.switch(SwitchEvent("connect", dpid, names=dict(names)))
        return len(self.names)

    def follow(self, engine: NetctlEngine, host_refs: set[str]) -> int:
        """What OVS does after the OVSDB side applied these hosts' new configurations: new
        bridges connect, gone ones disconnect, new ports (tunnels, fake bridges, NICs) appear.
        VIF ports are the hypervisor's (`port`). Returns the number of switch events fed."""
        fed = 0
        configs = engine.hosts.configs
        for host_ref in sorted(host_refs):
            cfg = configs.config(host_ref)
            wanted = self.bridge_names(engine, host_ref, cfg) if cfg is not None else {}
            mine = {d for d, t in engine.flows.tables.tables.items() if t.host_ref == host_ref}
            for dpid in sorted(mine - wanted.keys()):
                self.names.pop(dpid, None)
                engine.switch(SwitchEvent("gone", dpid))
                fed += 1
            for dpid, names in wanted.items():
                have = self.names.get(dpid)
                if have is None:
                    self.names[dpid] = dict(names)
                    engine.switch(SwitchEvent("connect", dpid, names=dict(names)))
                    fed += 1
                    continue
                for name in sorted(names.keys() - have.keys()):
                    if not name.startswith(("vif", "tap")):
                        self.port(engine, dpid, name, True)
                        fed += 1
                for name in sorted(have.keys() - names.keys()):
                    if not name.startswith(("vif", "tap")):
                        self.port(engine, dpid, name, False)
                        fed += 1
        return fed

    def port(self, engine: NetctlEngine, dpid: int, name: str, up: bool) -> None:
        """The hypervisor plugged (or removed) a port."""
        names = self.names.setdefault(dpid, {})
        if up:
            names[name] = port_number(name)
        else:
            names.pop(name, None)
        engine.switch(SwitchEvent("port", dpid, name=name, number=names.get(name)))

    def apply(self, engine: NetctlEngine) -> Counts:
        """Take the round's deltas (as the OpenFlow sink would send them) and its port modes
        (as the sink's port-mods set them: `disabled`); returns this round's counts."""
        round_counts = Counts()
        tables = engine.flows.tables
        out = engine.output().flows
        for dpid, modes in out.port_modes.items():
            self.disabled.setdefault(dpid, {}).update(modes)
        for dpid in out.meters:  # the sink puts a switch's meters when the round says so
            self.meters[dpid] = dict(tables.meters(dpid))
        for dpid, delta in out.deltas.items():
            if dpid not in tables.tables:
                continue
            if delta.full:  # the sink diffs it against the switch's dump: a new bridge's
                round_counts.full += 1  # whole table is sent (counted as adds)
                self.disabled[dpid] = dict(tables.port_modes(dpid))  # and every port set
                self.meters[dpid] = dict(tables.meters(dpid))  # and every meter
                entries = dict(tables.entries(dpid))
                if dpid not in self.installed or not self.keep:
                    round_counts.adds += len(entries)
                if self.keep:
                    self.installed[dpid] = entries
                else:
                    self.installed[dpid] = {}
                continue
            table = self.installed.setdefault(dpid, {}) if self.keep else None
            for key, (body, existed) in delta.ops.items():
                if table is not None:
                    assert (key in table) == existed, f"delta claims existed={existed}: {key}"
                    if body is None:
                        del table[key]
                    else:
                        table[key] = body
                if body is None:
                    round_counts.deletes += 1
                elif existed:
                    round_counts.modifies += 1
                else:
                    round_counts.adds += 1
        for name in ("adds", "modifies", "deletes", "full"):
            setattr(self.counts, name, getattr(self.counts, name) + getattr(round_counts, name))
        return round_counts


def config_ops(old: HostConfig | None, new: HostConfig | None) -> int:
    """Rows an OVSDB transaction would insert, update or delete to go from `old` to `new`
    (bridges, ports, interfaces, VIF-port settings, addresses): what the OVSDB side sends."""
    def rows(cfg: HostConfig | None) -> dict:
        out: dict = {}
        if cfg is None:
            return out
        for br in cfg.bridges:
            out[("Bridge", br.name)] = (br.fail_mode, br.datapath_type, br.protocols,
                                        br.controllers, br.mcast_snooping_enable,
                                        br.other_config, br.external_ids)
            for p in br.ports:
                out[("Port", p.name)] = (br.name, p.tag, p.fake_bridge, p.bond_mode, p.lacp,
                                         p.bond_updelay, p.bond_downdelay, p.mac,
                                         p.other_config, p.external_ids)
                for i in p.interfaces:
                    out[("Interface", i.name)] = i
        for v in cfg.vif_ports:
            out[("VifPort", v.name)] = v.trunks
        for a in cfg.addresses:
            out[("Address", a.device, a.cidr)] = a
        return out

    before, after = rows(old), rows(new)
    return sum(1 for k in before.keys() | after.keys() if before.get(k) != after.get(k))
