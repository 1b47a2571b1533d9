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

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client.core import CounterMetricFamily

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


def rows(run: Any) -> Iterator[Row]:
    """Every port read at the last round, labelled (switches that are not the pool's, and
    bridge-internal ports, are left out)."""
    poller = getattr(run, "poller", None)
    if poller is None:
        return
    view, tables = run.engine.view, run.engine.desired
    labels: dict[str, dict[str, Label]] = {}
    for dpid, reading in sorted(poller.table.switches().items()):
        ident = tables.identity(dpid)
        if ident is None:
            continue
        host_ref, bridge = ident
        host = view.hosts.get(host_ref)
        if host is None:
            continue
        names = labels.get(host_ref)
        if names is None:
            names = labels[host_ref] = host_labels(view, host_ref)
        for _number, port in sorted(reading.ports.items()):
            if port.name == bridge:
                continue  # the bridge's own internal port
            yield Row(host.name_label, bridge, port, names.get(port.name, OTHER))


def document(run: Any, query: Mapping[str, Sequence[str]] | None = None) -> dict[str, Any]:
    """/stats: every port's counters and rates (filtered by the query), or the top N."""
    query = query or {}
    hosts, vms = set(query.get("host", ())), set(query.get("vm", ()))
    kinds = set(query.get("kind", ()))
    unknown = kinds - set(KINDS_OF_PORT)
    if unknown:
        raise ValueError(f"kind: {', '.join(sorted(unknown))} is not one of "
                         f"{', '.join(KINDS_OF_PORT)}")
    selected = [r for r in rows(run)
                if (not hosts or r.host in hosts) and (not vms or r.label.vm in vms)
                and (not kinds or r.label.kind in kinds)]
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
        out.update(top_of(selected, n))
    else:
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


def top_of(selected: Iterable[Row], n: int) -> dict[str, list[dict[str, Any]]]:
    selected = list(selected)
    talkers = sorted((r for r in selected if r.reading.bps > 0), key=lambda r: -r.reading.bps)
    droppers = sorted((r for r in selected if r.label.kind == "vif" and r.reading.drops),
                      key=lambda r: (-r.reading.drop_pps, -sum(r.reading.drops.values())))
    droppers = [r for r in droppers if sum(r.reading.drops.values()) > 0]
    return {"talkers": [r.as_dict() for r in talkers[:n]],
            "droppers": [r.as_dict() for r in droppers[:n]]}


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
            "top": top_of(rows(run), 5)}


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


class StatsCollector:
    """The statistics in /metrics, built at each scrape from the latest readings: per port
    (host, bridge, port, kind, vm, device, network, peer) its byte, packet, drop and error
    counters, and per VIF what locking dropped, by the kinds it dropped. No rate gauges:
    Prometheus takes rates of counters itself (`rate()`), and at 64 x 1000 each series per
    port costs ~80,000 lines a scrape (rates are in /stats and `netctl top`)."""

    LABELS = ["host", "bridge", "port", "kind", "vm", "device", "network", "peer"]

    def __init__(self, run: Any) -> None:
        self.run = run

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
