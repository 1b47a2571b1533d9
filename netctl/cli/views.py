"""What netctl shows a person: the lab's pool, connectivity matrices, `netctl status`.

Rendering only (rich tables); the data comes from the lab, the probes and `netctl run`'s
/status, so the CLI and the demo print the same views.
"""

from __future__ import annotations

import sys
import time

from rich.console import Console
from rich.table import Table

from netctl.cli.probe_view import failures_by_pair, matrix_fits

# A wide console when piped (CI logs, `make demo | tee`): the tables are meant to be read whole.
# emoji=False: a MAC such as 02:cd:18:... must never render as an emoji shortcode (":cd:").
console = Console(width=None if sys.stdout.isatty() else 200, emoji=False)


def show_lab(running) -> None:  # noqa: ANN001 - a Lab
    topo = running.topology
    hosts = Table(title=f"Pool hosts of lab '{topo.prefix}' ({topo.name})")
    for col in ("host", "namespace", "management", "OVSDB", "bridges"):
        hosts.add_column(col)
    for h in topo.hosts:
        hosts.add_row(
            h.name,
            running.ns(h.name),
            topo.management_address(h.name),
            running.ovsdb_endpoint(h.name),
            " ".join(running.bridges(h.name)) or "-",
        )
    console.print(hosts)

    cabling = Table(title=f"Cabling to switch '{topo.switch.name}'")
    for col in ("host NIC", "switch port", "VLANs", "LACP"):
        cabling.add_column(col)
    lacp = running.tor.appctl("lacp/show", check=False) if topo.switch.bonds else ""
    for c in topo.switch.cables:
        host = topo.host(c.host)
        bond = next((b for b in topo.switch.bonds if b.host == c.host and c.nic in b.nics), None)
        vlans = (
            f"trunk {','.join(map(str, c.trunk))} + native {c.native}"
            if c.trunk
            else f"access {c.vlan}"
        )
        state = "-"
        if bond:
            section = lacp.split(f"---- po{host.index} ----")[-1].split("----")[0]
            state = f"po{host.index} " + (
                "negotiated" if "negotiated" in section else "not negotiated"
            )
        cabling.add_row(f"{c.host}/{c.nic}", f"h{host.index}-{c.nic}", vlans, state)
    for o in topo.switch.outside:
        cabling.add_row(f"{o.name} (outside)", f"o-{o.name}"[:15], f"access {o.vlan}", "-")
    console.print(cabling)

    vms = Table(title="VMs (as the lab runs them: the topology's and any xapi started)")
    for col in ("VM", "host", "port", "network", "MAC", "addresses"):
        vms.add_column(col)
    names = {n.uuid: f"{n.name} ({n.bridge})" for n in topo.networks}
    topology_vms = {v.name: v for v in topo.vms}

    def vif_row(vm: str, host: str, port: str, spec) -> None:  # noqa: ANN001 - a VifSpec
        vms.add_row(vm, host, port, names.get(spec.network_uuid, spec.bridge), spec.mac,
                    " ".join(spec.addresses) or "(the guest's own)")

    for vm, host in running.state.vm_host.items():
        plugged = sorted(running.state.plugged.get(vm, []))
        for device in plugged:
            vif_row(vm, host, running.vif_port(vm, device), running.vif_spec(vm, device))
        seeded = topology_vms.get(vm)
        unplugged = [v.device for v in seeded.vifs if v.device not in plugged] if seeded else []
        for device in unplugged:  # the topology's VIF, not plugged now
            vif_row(vm, host, "(not plugged)", running.topology_vif_spec(vm, device))
        if not plugged and not unplugged:
            vms.add_row(vm, host, "(no VIF)", "-", "-", "-")
    for v in topo.vms:  # a topology VM that does not run now (xapi has it halted, or gone)
        if v.name not in running.state.vm_host:
            for vif in v.vifs:
                vif_row(v.name, "-", "(VM stopped)", running.topology_vif_spec(v.name, vif.device))
            if not v.vifs:
                vms.add_row(v.name, "-", "(VM stopped)", "-", "-", "-")
    console.print(vms)


def show_probes(results, title: str) -> bool:  # noqa: ANN001 - list of probe Results
    """One matrix a person reads at a glance: row = from, column = to; per address family
    `4`/`6` reached as expected, `·` isolated as expected, red `!4`/`!6` where observed differs
    from expected; blank where the two share no subnet (nothing to probe)."""
    labels: list[str] = []
    for r in results:
        for ep in (r.probe.src, r.probe.dst):
            if ep.label not in labels:
                labels.append(ep.label)
    cells: dict[tuple[str, str], list[str]] = {}
    for r in results:
        fam = "6" if r.probe.family == "IPv6" else "4"
        if not r.ok:
            mark = f"[bold red]!{fam}[/bold red]"
        elif r.observed:
            mark = f"[green]{fam}[/green]"
        else:
            mark = "[dim]·[/dim]"
        cells.setdefault((r.probe.src.label, r.probe.dst.label), []).append(mark)
    table = Table(
        title=title,
        caption="4/6: reached over IPv4/IPv6 as expected; "
        "·: isolated as expected; [bold red]!4/!6[/bold red]: not as expected",
    )
    table.add_column("from \\ to")
    short = [label.split(" ")[0] for label in labels]
    for name in short:
        table.add_column(name, justify="center")
    for label in labels:
        table.add_row(label, *(" ".join(cells.get((label, dst), [])) for dst in labels))
    # the matrix only where it can be read; the failures by pair always (netctl.cli.probe_view)
    if matrix_fits(table, console):
        console.print(table)
    else:
        console.print(f"{title}: {len(labels)} endpoints, a matrix wider than this terminal "
                      f"({console.width} columns): failures by pair below")
    failed = [r for r in results if not r.ok]
    for line in failures_by_pair(results):
        console.print(f"[red]unexpected:[/red] {line}", soft_wrap=True)
    console.print(
        f"connectivity: {len(results) - len(failed)} probes as expected, " f"{len(failed)} not"
    )
    return not failed


# `netctl status` prints at most this many rows per table of the summary, trouble first (a pool
# of 64 hosts has ~250 switches); a query's rows are capped by the controller (`limit`), and
# `--full` prints everything, as asked.
SUMMARY_ROWS = 64


def show_host_configs(rows: dict[str, dict]) -> None:
    """Per host, its last OVSDB change: written, and in effect (ovs-vswitchd applied it) —
    the two figures of issue 24, from the /status row of the instance that wrote the host."""
    t = Table(title="Host configuration over OVSDB: written vs in effect")
    for col in ("host", "next_cfg", "cur_cfg", "written in", "in effect after", "writes"):
        t.add_column(col)
    for name in sorted(rows):
        cfg = rows[name].get("config") or {}
        written, effect = config_cells(cfg)
        t.add_row(name, _or_dash(cfg.get("next_cfg")), _or_dash(cfg.get("cur_cfg")), written,
                  effect, str(cfg.get("writes", 0)))
    console.print(t)


def _or_dash(value: object) -> str:
    return "-" if value is None else str(value)


def show_status(data: dict) -> None:
    """`netctl status`: the summary, a query's answer or the full document (`view` says which;
    a controller older than the summary sends the full document without it)."""
    view = data.get("view", "full")
    # the summary's tables are capped here; a query's rows were capped by the controller, and
    # its empty tables (nothing of that kind on the path) are left out; --full prints all
    cap = SUMMARY_ROWS if view == "summary" else None
    quiet = view == "query"
    x = data["xapi"]
    console.print(f"xapi {x['url']}: {'connected' if x['connected'] else '[red]unreachable[/red]'}"
                  f" ({x['full_syncs']} full syncs, {x['reconnects']} reconnects)")
    if x.get("master"):
        console.print(f"pool master {x['master']} ({x.get('master_address')}) since "
                      f"{x.get('master_since') or '?'}; {x.get('members', 1)} members known")
    if data.get("coordination"):
        _coordination(data["coordination"])
    if view == "summary":
        _counts(data["counts"])
    elif view == "query":
        for what, found in data["match"].items():
            for m in found:
                extra = f", bridge {m['bridge']}" if "bridge" in m else (
                    f", {m['power_state']}" if "power_state" in m else "")
                note = "" if m["applied"] else (" [red]not applied: invalid intent, see "
                                                "problems[/red]")
                console.print(f"{what} [bold]{m['name']}[/bold] ({m['uuid']}{extra}){note}")
    _hosts(data["hosts"], cap, quiet)
    _switches(data["switches"], cap, quiet)
    _bonds(data["bonds"], cap, quiet)
    _tunnels(data["tunnels"], cap, quiet)
    _export(data.get("export") or [], cap, quiet)
    _mirrors(data.get("mirrors") or [], cap, quiet)
    if "vifs" in data:
        _vifs(data, view)
    elif view == "summary":
        console.print(f"VIFs: {data['counts']['vifs']}, too many to list here: "
                      "netctl status --host NAME, --vm NAME or --network NAME (or --full)")
    f = data.get("flows")
    if f:
        console.print(f"flow-mods sent {f['flow_mods']} in {f['bundles']} bundles; audits "
                      f"{f['audits']}, repairs {f['repairs']}, refused {f['refused']}; "
                      f"errors {f['errors']}")
    engine = data.get("engine")
    if engine:
        t = Table(title="Engine (changes taken by a handler, or by a recompute)")
        for col in ("node", "rounds", "handled", "recomputes"):
            t.add_column(col)
        for name, st in engine["nodes"].items():
            t.add_row(name, str(st["runs"]), str(st["handled"]), str(st["recomputes"]))
        console.print(t)
        r = engine["rounds"]
        console.print(f"{r['rounds']} rounds ({r['xapi_objects']} xapi objects, "
                      f"{r['switch_events']} switch events), last {r['last_round_ms']:.1f} ms; "
                      f"hosts rebuilt {engine['hosts_rebuilt']}, bridges rebuilt "
                      f"{engine['bridges_rebuilt']}, VIF parts updated {engine['vif_updates']}")
    _problems(data, view)


def _coordination(c: dict) -> None:
    """Several instances: this one, the live ones, who masters which host."""
    state = ("[green]writer[/green]" if c["writer"] else
             "[red]not a writer (no live lease)[/red]" if c["joined"] or c["instances"] else
             "[red]not joined (etcd unreachable?)[/red]")
    console.print(f"instance [bold]{c['instance']}[/bold] on {c['url']} (lease TTL {c['ttl']} s): "
                  f"{state}; live instances: {', '.join(c['instances']) or 'none'}; "
                  f"{c['gained']} masterships gained, {c['lost']} lost")
    t = Table(title="Masters (host -> instance, generation)")
    for col in ("host", "master", "generation", "this instance"):
        t.add_column(col)
    for host, m in c["masters"].items():
        if host.startswith("@"):
            continue
        t.add_row(host, m["instance"], str(m["generation"]),
                  "yes" if m["instance"] == c["instance"] else "")
    console.print(t)


def _counts(c: dict) -> None:
    console.print(
        f"{c['hosts']} hosts ({c['hosts_connected']} with OVSDB), {c['vms']} VMs, "
        f"{c['vifs']} VIFs, {c['networks']} networks, {c['pifs']} PIFs, {c['bonds']} bonds, "
        f"{c['vlans']} VLANs, {c['tunnels']} tunnels; {c['bridges']} bridges, "
        f"{c['switches']} OpenFlow switches ({c['switches_with_table']} with their table), "
        f"{c['flows']} netctl flows; {c['problems']} problems"
        + (f"; [yellow]{c['hosts_config_pending']} hosts with an OVSDB change not yet in "
           "effect[/yellow]" if c.get("hosts_config_pending") else ""))


def _print(t: Table, rows: list[tuple[str, ...]], cap: int | None, quiet: bool,
           what: str) -> None:
    """A table of `rows` (already sorted trouble first); past `cap`, one line saying how many
    were left out and how to see them; nothing at all for no rows when `quiet`."""
    if quiet and not rows:
        return
    for row in rows[:cap]:
        t.add_row(*row)
    console.print(t)
    if cap is not None and len(rows) > cap:
        console.print(f"  ... {len(rows) - cap} more {what}: netctl status --host NAME shows "
                      "one host's, --full all")


def _hosts(hosts: list[dict], cap: int | None, quiet: bool) -> None:
    t = Table(title="Hosts")
    for col in ("host", "OVSDB", "connected", "bridges", "applies/ops", "written",
                "in effect", "VMs", "VIFs", "error"):
        t.add_column(col)
    rows = sorted(hosts, key=lambda h: (h["connected"] and not h["error"], h["name"]))
    _print(t, [(h["name"], h["endpoint"], "yes" if h["connected"] else "[red]no[/red]",
                " ".join(h["bridges"]), f"{h['applies']}/{h['operations']}",
                *config_cells(h.get("config")),
                str(h.get("vms", "")), str(h.get("vifs", "")), h["error"][:60]) for h in rows],
           cap, quiet, "hosts")


def config_cells(cfg: dict | None) -> tuple[str, str]:
    """A host's last OVSDB change as two cells: written (seconds to the server's reply) and
    in effect (seconds until ovs-vswitchd's cur_cfg reached the change's next_cfg, from the
    start of the apply) — or how long it has waited so far. Issue 24: at scale vswitchd takes
    many times the write, and the operator must see which of the two a host is at."""
    if not cfg or not cfg.get("written"):
        return "-", "-"
    written = f"{cfg['write_seconds']:.2f} s" if cfg.get("write_seconds") is not None else "yes"
    if cfg.get("in_effect"):
        effect = f"{cfg['effect_seconds']:.2f} s" if cfg.get("effect_seconds") is not None \
            else "yes"
    else:
        waited = cfg.get("waiting_seconds")
        effect = (f"[yellow]not yet ({waited:.0f} s; cur_cfg {cfg.get('cur_cfg')} < "
                  f"{cfg.get('next_cfg')})[/yellow]" if waited is not None
                  else "[yellow]not yet[/yellow]")
    return written, effect


def _switches(switches: list[dict], cap: int | None, quiet: bool) -> None:
    t = Table(title="OpenFlow switches")
    for col in ("host", "bridge", "datapath", "ports", "netctl flows"):
        t.add_column(col)
    rows = sorted(switches, key=lambda s: (s["flows"] is not None, s["host"], s["bridge"] or ""))
    _print(t, [(s["host"], s["bridge"] or "?", s["dpid"], str(s["ports"]),
                str(s["flows"]) if s["flows"] is not None else "[yellow]not yet[/yellow]")
               for s in rows], cap, quiet, "switches")


def _member_trouble(state: str) -> int:
    """0: a member down or its LACP expired; 1: not known; 2: up."""
    if state == "unknown":
        return 1
    return 0 if not state.startswith("link up") or "expired" in state else 2


def _bonds(bonds: list[dict], cap: int | None, quiet: bool) -> None:
    t = Table(title="Bonds")
    for col in ("host", "bond", "network", "mode", "members"):
        t.add_column(col)
    rows = sorted(bonds, key=lambda b: (min(map(_member_trouble, b["members"].values()),
                                            default=2), b["host"], b["bond"]))
    _print(t, [(b["host"], b["bond"], b.get("network", ""), b["mode"],
                "; ".join(f"{m}: {s}" for m, s in sorted(b["members"].items())))
               for b in rows], cap, quiet, "bonds")


def _tunnels(tunnels: list[dict], cap: int | None, quiet: bool) -> None:
    t = Table(title="Tunnels")
    for col in ("host", "network", "protocol", "status", "peers (BFD)"):
        t.add_column(col)
    rows = sorted(tunnels, key=lambda tu: (tu["status"].get("active") == "true", tu["host"],
                                           tu["network"]))
    _print(t, [(tu["host"], tu["network"], tu["protocol"],
                " ".join(f"{k}={v}" for k, v in sorted(tu["status"].items())),
                "; ".join(_peer(p) for p in tu.get("peers", ())))
               for tu in rows], cap, quiet, "tunnels")


def _export(rows: list[dict], cap: int | None, quiet: bool) -> None:
    """Flow export (NetFlow, IPFIX, sFlow; netctl.service.export_view): shown only when the
    pool exports flows at all."""
    if not rows:
        return
    t = Table(title="Flow export")
    for col in ("kind", "collectors", "settings", "bridges (hosts)", "networks"):
        t.add_column(col)
    _print(t, [(r["kind"], " ".join(r["targets"]),
                " ".join(f"{k}={v}" for k, v in r["settings"].items()),
                f"{r['bridges']} ({r['hosts']})" + (f", [yellow]{r['pending']} pending"
                                                    "[/yellow]" if r["pending"] else ""),
                " ".join(r["networks"])) for r in rows], cap, quiet, "export rows")


def _mirrors(rows: list[dict], cap: int | None, quiet: bool) -> None:
    """Port mirrors (netctl.service.mirror_view): shown only when there are some."""
    if not rows:
        return
    t = Table(title="Port mirrors")
    for col in ("host", "bridge", "source", "direction", "ports", "output", "copied"):
        t.add_column(col)
    _print(t, [(r["host"], r["bridge"],
                f"{r['source']['class']} {r['source']['name'] or r['source']['uuid']}",
                r["direction"], " ".join(r["ports"]),
                f"VLAN {r['output']['vlan']} (RSPAN)" if "vlan" in r["output"]
                else r["output"]["port"],
                f"{r['statistics'].get('tx_packets', 0)} packets" if r["applied"]
                else "[yellow]pending[/yellow]") for r in rows], cap, quiet, "mirrors")


def _peer(p: dict) -> str:
    """One peer pair of a tunnel: `host2 up since 12:00:03`, or down with why (each end's
    BFD state and diagnostic, as OVS reports it)."""
    since = time.strftime("%H:%M:%S", time.localtime(p["since"])) if p.get("since") else "?"
    if p["up"]:
        return f"{p['peer']} [green]up[/green] since {since}"

    def end(e: dict | None) -> str:
        if e is None:
            return "not reported"
        return e["state"] + (f" ({e['diagnostic']})" if e.get("diagnostic") and
                             e["diagnostic"] != "No Diagnostic" else "")
    return (f"{p['peer']} [red]down[/red] since {since} (here: {end(p.get('local'))}; "
            f"there: {end(p.get('remote'))})")


def _vifs(data: dict, view: str) -> None:
    t = Table(title="VIFs")
    for col in ("VM", "VIF", "host", "network", "port", "MAC", "locking", "limit", "rules",
                "flows"):
        t.add_column(col)
    vifs = sorted(data["vifs"], key=lambda v: (v["vm"], v["device"]))
    for v in vifs:
        kind = v.get("vm_kind", "guest")
        qos = v.get("qos")
        t.add_row(v["vm"] + (f" ({kind})" if kind != "guest" else ""), v["device"], v["host"],
                  v["network"], v["port"] or "-", v.get("mac", ""), v["locking"],
                  f"{qos['kbps']} KiB/s" if qos else "-", str(len(v.get("rules") or ()) or "-"),
                  str(v["flows"]))
    console.print(t)
    _rules([v for v in vifs if v.get("rules")])
    if view == "query" and data["vifs_truncated"]:
        console.print(f"  showing {len(data['vifs'])} of {data['vifs_total']} VIFs: narrow with "
                      "--host/--vm/--network, or --limit N (at most 5000)")


def _rules(vifs: list[dict]) -> None:
    """The traffic rules of the VIFs shown (netctl.flows.rules), in order, with their hits."""
    if not vifs:
        return
    t = Table(title="Traffic rules (first match wins; replies of allowed connections pass)")
    for col in ("VM", "VIF", "from", "#", "rule", "packets"):
        t.add_column(col)
    for v in vifs:
        for r in v["rules"]:
            t.add_row(v["vm"], v["device"], r["from"], str(r["number"]), r["rule"],
                      str(r["packets"]))
        passed = v.get("rules_passed") or {}
        t.add_row(v["vm"], v["device"], "", "", "(replies / no rule matched)",
                  f"{passed.get('replies', 0)} / {passed.get('unmatched', 0)}")
        if v.get("floods_through_rules") is False:
            t.add_row(v["vm"], v["device"], "", "", "(broadcasts, multicasts: by NORMAL, "
                      "past the to-VM rules)", "")
    console.print(t)


def _problems(data: dict, view: str) -> None:
    problems = data["problems"]
    total = data.get("problems_total", len(problems))
    if not problems:
        console.print("no problems" if view != "query" else "no problems about these")
        return
    console.print("[yellow]Problems:[/yellow]")
    for p in problems:
        console.print(f"  - {p}")
    if total > len(problems):
        console.print(f"  ... {total - len(problems)} more problems (netctl status --json "
                      "--full lists them all)")
