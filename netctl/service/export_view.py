"""Flow export targets (NetFlow, IPFIX, sFlow) in /status, `netctl status` and /metrics.

One row per kind and setting (collectors, sampling, timeouts) the pool exports with, gathered
from every host worker's desired configuration (`HostConfig`, `BridgeExport` per bridge) and
what the worker last applied: how many bridges on how many hosts export that way, how many of
those are not in OVSDB yet (`pending`: a host that is down, or an apply under way), and the
networks whose bridges they are (which tells a network's own setting from the pool's). Sized
by hosts and bridges, never by VIFs: at 64 hosts x 10 bridges it is 640 bridges looked at.

Read from the HTTP thread while the workers replace their configurations: a worker's
`desired` and `status.applied` are frozen objects replaced whole, so each read is one
reference, never a half-written value.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict
from typing import Any

from prometheus_client.core import GaugeMetricFamily

from netctl.hostconfig import BridgeConfig, HostConfig
from netctl.model.export import KINDS

_Key = tuple[str, Any]  # (kind, its NetFlowExport / IpfixExport / SflowExport)


def _applied_exports(applied: HostConfig | None) -> dict[str, Any]:
    if applied is None:
        return {}
    return {b.name: b.export for b in applied.bridges}


def _gather(run: Any, hosts: set[str] | None = None) -> dict[_Key, dict[str, Any]]:
    groups: dict[_Key, dict[str, Any]] = {}
    view = run.view
    for ref, worker in list(run.workers.items()):
        if hosts is not None and ref not in hosts:
            continue
        desired: HostConfig | None = getattr(worker, "desired", None)
        if desired is None:
            continue
        applied = _applied_exports(worker.status.applied)
        for bridge in desired.bridges:
            _add(groups, bridge, worker.status.name, applied, view)
    return groups


def _add(groups: dict[_Key, dict[str, Any]], bridge: BridgeConfig, host: str,
         applied: dict[str, Any], view: Any) -> None:
    for kind in KINDS:
        want = getattr(bridge.export, kind)
        if want is None:
            continue
        g = groups.setdefault((kind, want), {"bridges": 0, "pending": 0, "hosts": set(),
                                             "networks": set()})
        g["bridges"] += 1
        g["hosts"].add(host)
        net = view.network_by_bridge(bridge.name)
        g["networks"].add(net.name_label or net.uuid if net is not None else bridge.name)
        there = applied.get(bridge.name)
        if there is None or getattr(there, kind) != want:
            g["pending"] += 1


def rows(run: Any, hosts: set[str] | None = None) -> list[dict[str, Any]]:
    """/status's `export`: one row per kind and setting (module docstring), for all hosts or
    those in `hosts` (refs)."""
    out = []
    for (kind, want), g in _gather(run, hosts).items():
        settings = {k: v for k, v in asdict(want).items() if k != "targets"}
        out.append({"kind": kind, "targets": list(want.targets), "settings": settings,
                    "bridges": g["bridges"], "pending": g["pending"],
                    "hosts": len(g["hosts"]), "networks": sorted(g["networks"])})
    return sorted(out, key=lambda r: (r["kind"], r["targets"], sorted(r["settings"].items())))


class ExportCollector:
    """/metrics: `netctl_flow_export_bridges{kind,target}`, the bridges whose OVSDB rows
    export to that collector as netctl last applied them, and
    `netctl_flow_export_pending_bridges{kind,target}`, those that should and do not yet."""

    def __init__(self, run: Any) -> None:
        self.run = run

    def describe(self) -> list:
        return []  # built per scrape

    def collect(self) -> Iterator[GaugeMetricFamily]:
        done = GaugeMetricFamily("netctl_flow_export_bridges", "Bridges exporting flows to a "
                                 "collector (NetFlow, IPFIX, sFlow), as applied to OVSDB",
                                 labels=["kind", "target"])
        pending = GaugeMetricFamily("netctl_flow_export_pending_bridges", "Bridges that "
                                    "should export flows to a collector and are not applied "
                                    "yet", labels=["kind", "target"])
        totals: dict[tuple[str, str], list[int]] = {}
        for (kind, want), g in _gather(self.run).items():
            for target in want.targets:
                t = totals.setdefault((kind, target), [0, 0])
                t[0] += g["bridges"] - g["pending"]
                t[1] += g["pending"]
        for (kind, target), (applied, waiting) in sorted(totals.items()):
            done.add_metric([kind, target], applied)
            pending.add_metric([kind, target], waiting)
        yield done
        yield pending
