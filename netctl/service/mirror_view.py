"""Port mirrors in /status, `netctl status` and /metrics.

One row per Mirror row netctl wants (`HostConfig.mirrors`, `vlan.mirror`), from every host
worker's desired configuration: where (host, bridge), who asked (the VIF or network and its
name), which way, which ports, where the copies go (a monitoring VIF's port, or an RSPAN
VLAN), and what OVSDB holds now: `applied` (the row is on its bridge; false while its output
port is not plugged yet, or the host is down) and the row's `statistics` (the packets and
bytes OVS copied). Sized by mirrors, never by VIFs.

Read from the HTTP thread while the workers replace their configurations and their IDL
updates its copy: a worker's `desired` is a frozen object replaced whole; the IDL's Mirror
rows are read as they are at that moment (a row that changes meanwhile is read on the next
call).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from netctl.hostconfig import OWNER_KEY, OWNER_VALUE, HostConfig, MirrorConfig


def _ovsdb_mirrors(worker: Any) -> dict[tuple[str, str], dict[str, int]]:
    """(bridge, mirror name) -> statistics of netctl's Mirror rows in the host's IDL copy."""
    db = getattr(worker, "db", None)
    api = getattr(db, "api", None)
    if api is None:
        return {}
    try:
        out = {}
        for bridge in list(api.tables["Bridge"].rows.values()):
            for row in list(bridge.mirrors):
                if dict(row.external_ids).get(OWNER_KEY) == OWNER_VALUE:
                    out[(bridge.name, row.name)] = {k: int(v) for k, v
                                                    in dict(row.statistics).items()}
        return out
    except Exception:  # noqa: BLE001 - a copy changing under us: read again next time
        return {}


def _who(view: Any, source: str) -> dict[str, str]:
    cls, _, uuid = source.partition(" ")
    obj = view.by_uuid(uuid) if view is not None else None
    name = ""
    if obj is not None and cls == "VIF":
        vm = view.vms.get(obj.vm)
        name = f"{vm.name_label if vm else '?'} VIF {obj.device}"
    elif obj is not None:
        name = obj.name_label
    return {"class": cls, "uuid": uuid, "name": name}


def _direction(m: MirrorConfig) -> str:
    if m.select_src and m.select_dst:
        return "both"
    return "from-vm" if m.select_src else "to-vm"


def rows(run: Any, hosts: set[str] | None = None) -> list[dict[str, Any]]:
    """/status's `mirrors` for all hosts or those in `hosts` (refs)."""
    out = []
    view = getattr(run, "view", None)
    for ref, worker in list(run.workers.items()):
        if hosts is not None and ref not in hosts:
            continue
        desired: HostConfig | None = getattr(worker, "desired", None)
        if desired is None or not desired.mirrors:
            continue
        there = _ovsdb_mirrors(worker)
        for m in desired.mirrors:
            stats = there.get((m.bridge, m.name))
            out.append({
                "host": worker.status.name, "bridge": m.bridge, "name": m.name,
                "source": _who(view, m.source), "direction": _direction(m),
                "ports": sorted(set(m.select_src) | set(m.select_dst)),
                "output": ({"vlan": m.output_vlan} if m.output_vlan
                           else {"port": m.output_port}),
                "applied": stats is not None, "statistics": stats or {},
            })
    return sorted(out, key=lambda r: (r["host"], r["bridge"], r["name"]))


class MirrorCollector:
    """/metrics: `netctl_mirrors{host,state}` (applied: in OVSDB; pending: wanted, not there
    yet) and `netctl_mirror_tx_{packets,bytes}_total{host,bridge,source}`, what OVS copied."""

    def __init__(self, run: Any) -> None:
        self.run = run

    def describe(self) -> list:
        return []  # built per scrape

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        count = GaugeMetricFamily("netctl_mirrors", "Port mirrors netctl wants, by whether "
                                  "OVSDB holds them", labels=["host", "state"])
        packets = CounterMetricFamily("netctl_mirror_tx_packets", "Packets a port mirror "
                                      "copied (OVS Mirror statistics)",
                                      labels=["host", "bridge", "source"])
        octets = CounterMetricFamily("netctl_mirror_tx_bytes", "Bytes a port mirror copied",
                                     labels=["host", "bridge", "source"])
        states: dict[tuple[str, str], int] = {}
        for r in rows(self.run):
            key = (r["host"], "applied" if r["applied"] else "pending")
            states[key] = states.get(key, 0) + 1
            source = f"{r['source']['class']} {r['source']['name'] or r['source']['uuid']}"
            labels = [r["host"], r["bridge"], source]
            packets.add_metric(labels, r["statistics"].get("tx_packets", 0))
            octets.add_metric(labels, r["statistics"].get("tx_bytes", 0))
        for (host, state), n in sorted(states.items()):
            count.add_metric([host, state], n)
        yield count
        yield packets
        yield octets
