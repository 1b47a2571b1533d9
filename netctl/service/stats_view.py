"""The switches' traffic figures as people ask for them: `/stats` (JSON), the statistics in
`/metrics`, and the top talkers and droppers `netctl top` shows.

The poller (`netctl.sources.stats_poller`) stores counters by switch and port number; this
names them at read time (`netctl.stats.labels`: a VIF of which VM and network, a NIC, a bond
member, the tunnel to which peer), from the live pool, on the HTTP server's thread. Nothing
here runs on the reconcile loop.

/stats takes `?host=NAME`, `?vm=NAME`, `?kind=vif|pif|bond-member|tunnel|other` (each may be
repeated) and `?top=N`: then only the N ports moving the most bits, and the N VIFs dropping
the most frames by locking (both by their rates over the last interval).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from flows.ports import vif_port_name
from flows.qos import vif_band
from flows.rules import rules_of
from netctl.stats.drops import KINDS
from netctl.stats.labels import OTHER, Label, host_labels
from netctl.stats.table import COUNTERS, PortReading

KINDS_OF_PORT = ("vif", "pif", "bond-member", "tunnel", "other")


@dataclass(frozen=True)
class Row:
    host: str
    bridge: str
    reading: PortReading
    label: Label

    def as_dict(self) -> dict[str, Any]:
        out = {"host": self.host, "bridge": self.bridge, "port": self.reading.name}
        out.update(self.label.as_dict())
        out.update(self.reading.as_dict())
        if out["drops"] is None and self.label.kind == "vif":
            out["drops"] = {}  # nothing dropped (the switch reports no drop counted)
        return out


def _ports(run: Any, hosts: set[str] | None = None
           ) -> Iterator[tuple[str, str, str, PortReading]]:
    """(host ref, host name, bridge, reading) of every port read at the last round, on the
    hosts named (all: None); switches that are not the pool's and bridges' own internal ports
    are left out. Nothing is labelled yet: naming costs a walk of the host's VMs."""
    poller = getattr(run, "poller", None)
    if poller is None:
        return
    view, tables = run.engine.view, run.engine.desired
    for dpid, reading in sorted(poller.table.switches().items()):
        ident = tables.identity(dpid)
        if ident is None:
            continue
        host_ref, bridge = ident
        host = view.hosts.get(host_ref)
        if host is None or (hosts is not None and host.name_label not in hosts):
            continue
        for _number, port in sorted(reading.ports.items()):
            if port.name != bridge:
                yield host_ref, host.name_label, bridge, port


def _labelled(run: Any, ports: Iterable[tuple[str, str, str, PortReading]]) -> list[Row]:
    """Rows for these ports, each host's names worked out once (`host_labels`)."""
    view = run.engine.view
    labels: dict[str, dict[str, Label]] = {}
    out = []
    for host_ref, host, bridge, port in ports:
        names = labels.get(host_ref)
        if names is None:
            names = labels[host_ref] = host_labels(view, host_ref, _tunnels(run, host_ref))
        out.append(Row(host, bridge, port, names.get(port.name, OTHER)))
    return out


def _tunnels(run: Any, host_ref: str) -> tuple:
    """The host's tunnel ports as its configuration names them (`HostConfig.tunnels`)."""
    config = run.engine.hosts.configs.config(host_ref)
    return config.tunnels if config is not None else ()


def rows(run: Any, hosts: set[str] | None = None) -> list[Row]:
    """Every port read at the last round on the hosts named (all: None), labelled."""
    return _labelled(run, _ports(run, hosts))


def document(run: Any, query: Mapping[str, Sequence[str]] | None = None) -> dict[str, Any]:
    """/stats: every port's counters and rates (filtered by the query), or the top N."""
    query = query or {}
    hosts, vms = set(query.get("host", ())), set(query.get("vm", ()))
    kinds = set(query.get("kind", ()))
    unknown = kinds - set(KINDS_OF_PORT)
    if unknown:
        raise ValueError(f"kind: {', '.join(sorted(unknown))} is not one of "
                         f"{', '.join(KINDS_OF_PORT)}")
    poller = getattr(run, "poller", None)
    out: dict[str, Any] = {
        "interval": poller.interval if poller is not None else 0,
        "at": poller.table.last_round if poller is not None else None,
    }
    top = query.get("top")
    if top:
        try:
            n = int(top[-1])
        except ValueError:
            raise ValueError(f"top: a number of ports, not {top[-1]!r}") from None
        out.update(top_of(run, n, hosts or None, vms, kinds))
    else:
        selected = [r for r in rows(run, hosts or None)
                    if (not vms or r.label.vm in vms) and (not kinds or r.label.kind in kinds)]
        out["ports"] = [r.as_dict() for r in selected]
        members = [r for r in selected if r.label.kind == "bond-member"]
        states = _member_states(run, members) if members else {}
        for row in out["ports"]:
            if row["kind"] == "bond-member":
                row["member_state"] = states.get((row["host"], row["port"]), "unknown")
    return out


def _member_states(run: Any, members: list[Row]) -> dict[tuple[str, str], str]:
    """(host, NIC) -> "link up lacp current" for bond members, from the hosts' OVSDB (as
    /status's bond rows read it)."""
    from netctl.service.status import member_states

    wanted: dict[str, set[str]] = {}
    for row in members:
        wanted.setdefault(row.host, set()).add(row.reading.name)
    return member_states(run, wanted)


def top_of(run: Any, n: int, hosts: set[str] | None = None, vms: set[str] | None = None,
           kinds: set[str] | None = None) -> dict[str, list[dict[str, Any]]]:
    """The n ports moving the most bits, and the n VIFs whose frames locking drops the most.
    Only the winners are named (a summary at 64 x 1000 must not name 80,000 ports), unless a
    VM or kind filter needs every port's name to choose."""
    if vms or kinds:
        chosen: list[tuple[Any, Row | None]] = [
            ((None, r.host, r.bridge, r.reading), r) for r in rows(run, hosts)
            if (not vms or r.label.vm in vms) and (not kinds or r.label.kind in kinds)]
    else:
        chosen = [(port, None) for port in _ports(run, hosts)]

    def dropped(c: tuple[Any, Row | None]) -> int:
        return sum(c[0][3].drops.values()) if c[0][3].drops else 0

    talkers = heapq.nlargest(n, (c for c in chosen if c[0][3].bps > 0),
                             key=lambda c: c[0][3].bps)
    droppers = heapq.nlargest(n, (c for c in chosen if dropped(c)),
                              key=lambda c: (c[0][3].drop_pps, dropped(c)))

    def named(top: list[tuple[Any, Row | None]]) -> list[dict[str, Any]]:
        if vms or kinds:
            return [row.as_dict() for _port, row in top if row is not None]
        return [r.as_dict() for r in _labelled(run, (port for port, _row in top))]

    return {"talkers": named(talkers), "droppers": named(droppers)}


def summary(run: Any) -> dict[str, Any] | None:
    """For /status: how the poller is doing, and the top five talkers."""
    poller = getattr(run, "poller", None)
    if poller is None:
        return None
    st = poller.stats
    return {"interval": poller.interval, "at": poller.table.last_round,
            "rounds": st.rounds, "unanswered": st.unanswered,
            "cpu_seconds": round(st.cpu_seconds, 3),
            "last_round_cpu_ms": round(st.last_round_cpu * 1000, 2),
            "top": top_of(run, 5)}


def readings(run: Any, host_refs: Iterable[str]) -> dict[tuple[str, str], PortReading]:
    """(host ref, port name) -> the latest reading, for these hosts' switches only (VIF rows
    in /status: costs the switches, and the ports of the hosts asked about)."""
    poller = getattr(run, "poller", None)
    wanted = set(host_refs)
    if poller is None or not wanted:
        return {}
    tables = run.engine.desired
    out: dict[tuple[str, str], PortReading] = {}
    for dpid, reading in poller.table.switches().items():
        ident = tables.identity(dpid)
        if ident is not None and ident[0] in wanted:
            for port in reading.ports.values():
                out[(ident[0], port.name)] = port
    return out


def rule_hits(run: Any, host_refs: Iterable[str] | None = None
              ) -> dict[tuple[str, str], Mapping[tuple[str, str, int], int]]:
    """(host ref, VIF port name) -> packets per (direction, origin, rule number) of its
    traffic rules (`flows.rules`), as the poller last read them, on these hosts (None: all)."""
    poller = getattr(run, "poller", None)
    hits = getattr(poller, "rule_hits", None)
    if not hits:
        return {}
    wanted = set(host_refs) if host_refs is not None else None
    tables = run.engine.desired
    out: dict[tuple[str, str], Mapping[tuple[str, str, int], int]] = {}
    for dpid, ports in list(hits.items()):
        ident = tables.identity(dpid)
        if ident is not None and (wanted is None or ident[0] in wanted):
            for name, counted in ports.items():
                out[(ident[0], name)] = counted
    return out


def rule_rows(rules: Any, hits: Mapping[tuple[str, str, int], int] | None
              ) -> dict[str, Any]:
    """A VIF's rules as /status shows them: each rule of its own list then its network's,
    in order, with the packets it matched (both directions), and the packets let through as
    replies of allowed connections and as matched by no rule."""
    hits = hits or {}

    def packets(origin: str, number: int) -> int:
        return sum(hits.get((d, origin, number), 0) for d in ("out", "in"))
    listed = [{"from": origin, "number": i + 1, "rule": str(rule),
               "packets": packets(origin, i)}
              for origin, rules_ in (("vif", rules.vif), ("network", rules.network))
              for i, rule in enumerate(rules_)]
    return {"rules": listed, "replies": packets("reply", 0),
            "unmatched": packets("default", 0)}


def rule_hit_rows(run: Any) -> Iterator[tuple[list[str], int]]:
    """([host, vm, device, network, list, number, rule], packets) per rule of every VIF with
    rules, on the switches this instance reads."""
    hits = rule_hits(run)
    if not hits:
        return
    view = run.engine.view
    for vif in list(view.vifs.values()):
        rules = rules_of(view, vif)
        if not rules:
            continue
        vm = view.vms.get(vif.vm)
        host = view.hosts.get(vm.resident_on) if vm is not None else None
        port = vif_port_name(view, vif) if view.is_vif_active(vif) else None
        counted = hits.get((vm.resident_on, port)) if vm is not None and port else None
        if host is None or counted is None:
            continue
        net = view.networks.get(vif.network)
        shown = rule_rows(rules, counted)
        for row in shown["rules"]:
            yield ([host.name_label, vm.name_label, vif.device,
                    net.name_label if net else "", row["from"], str(row["number"]),
                    row["rule"]], row["packets"])


def rate_limit_rows(view: Any) -> Iterator[tuple[list[str], int, int]]:
    """Each rate-limited VIF: ([host, vm, device, network], kbit/s, burst kbit) of its meter."""
    for vif in view.vifs.values():
        if vif.qos_algorithm_type != "ratelimit" or (band := vif_band(vif)) is None:
            continue
        vm = view.vms.get(vif.vm)
        host = view.hosts.get(vm.resident_on) if vm is not None else None
        net = view.networks.get(vif.network)
        yield ([host.name_label if host else "", vm.name_label if vm else "", vif.device,
                net.name_label if net else ""], band.rate_kbit, band.burst_kbit)


class StatsCollector:
    """The statistics in /metrics, built at each scrape from the latest readings: per port
    (host, bridge, port, kind, vm, device, network, peer) its byte, packet, drop and error
    counters, and per VIF what locking dropped, by the kinds it dropped. No rate gauges:
    Prometheus takes rates of counters itself (`rate()`), and at 64 x 1000 each series per
    port costs ~80,000 lines a scrape (rates are in /stats and `netctl top`)."""

    LABELS = ["host", "bridge", "port", "kind", "vm", "device", "network", "peer"]

    def __init__(self, run: Any) -> None:
        self.run = run

    def _rate_limits(self) -> GaugeMetricFamily:
        family = GaugeMetricFamily(
            "netctl_vif_rate_limit_kbits", "A VIF's rate limit on what its VM sends (xapi's "
            "ratelimit kbps as an OpenFlow meter, kbit/s of 1000 bits; flows.qos)",
            labels=["host", "vm", "device", "network"])
        for labels, rate, _burst in rate_limit_rows(self.run.view):
            family.add_metric(labels, rate)
        return family

    def describe(self) -> list:
        return []  # built per scrape: no fixed description (prometheus_client then skips it)

    def collect(self) -> Iterator[Any]:
        families = {name: CounterMetricFamily(
            f"netctl_port_{name}", f"{name.replace('_', ' ')} counted by the switch port "
            "(rx: what the port received; for a VIF, what its VM sent)", labels=self.LABELS)
            for name in COUNTERS}
        drops = CounterMetricFamily(
            "netctl_vif_locking_drops", "Frames VIF locking dropped, by kind (flows.drops)",
            labels=["host", "vm", "device", "network", "kind"])
        for row in rows(self.run):
            lab, rd = row.label, row.reading
            values = [row.host, row.bridge, rd.name, lab.kind, lab.vm or "", lab.device or "",
                      lab.network or "", lab.peer or ""]
            for name, value in zip(COUNTERS, rd.counters, strict=False):
                families[name].add_metric(values, value)
            if lab.kind == "vif" and rd.drops:
                for kind in KINDS:
                    if rd.drops.get(kind):  # a kind never dropped: no series (absent = 0)
                        drops.add_metric([row.host, lab.vm or "", lab.device or "",
                                          lab.network or "", kind], rd.drops[kind])
        yield from families.values()
        yield drops
        hits = CounterMetricFamily(
            "netctl_vif_rule_packets", "Packets each traffic rule of a VIF matched, both "
            "directions (flows.rules)",
            labels=["host", "vm", "device", "network", "list", "number", "rule"])
        for labels, packets in rule_hit_rows(self.run):
            hits.add_metric(labels, packets)
        yield hits
        yield self._rate_limits()
        poller = getattr(self.run, "poller", None)
        if poller is not None:
            st = poller.stats
            yield CounterMetricFamily("netctl_stats_rounds", "Statistics poll rounds",
                                      value=st.rounds)
            yield CounterMetricFamily("netctl_stats_cpu_seconds", "CPU time the statistics "
                                      "poller spent (asking, reading replies)",
                                      value=st.cpu_seconds)
            yield CounterMetricFamily("netctl_stats_unanswered", "Switches that had not "
                                      "answered a statistics request by the next round",
                                      value=st.unanswered)
