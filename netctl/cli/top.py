"""`netctl top`: which VMs move the most traffic and which are dropped by VIF locking, live.

It reads `netctl run`'s /stats?top=N (the figures the statistics poller read from the
switches, `netctl.service.stats_view`) every interval and redraws: the top talkers (VIFs,
NICs, bond members, tunnels) by bits per second, and the VIFs whose frames locking drops,
by kind. `--once` prints one screen and ends (for scripts and tests).
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import click

from netctl.cli.fetch import fetch_json


def fetch(url: str, n: int, host: str | None, kind: str | None) -> dict[str, Any]:
    query = {"top": str(n)}
    if host:
        query["host"] = host
    if kind:
        query["kind"] = kind
    return fetch_json(url, "/stats", query)


def rate(bits: float) -> str:
    for unit, size in (("Gb/s", 1e9), ("Mb/s", 1e6), ("kb/s", 1e3)):
        if bits >= size:
            return f"{bits / size:.1f} {unit}"
    return f"{bits:.0f} b/s"


def whose(row: dict[str, Any]) -> str:
    if row["kind"] == "vif":
        return f"{row['vm']}/{row['device']}"
    if row["kind"] == "tunnel":
        return f"tunnel to {row['peer']}"
    return row["kind"]


def screen(data: dict[str, Any]) -> str:
    """One screen of `netctl top` as text."""
    at = data.get("at")
    when = time.strftime("%H:%M:%S", time.localtime(at)) if at else "not read yet"
    lines = [f"netctl top — every {data.get('interval', 0):g} s, last read {when}", "",
             f"{'HOST':<12} {'PORT':<16} {'WHOSE':<22} {'NETWORK':<14} {'RX (from it)':>14} "
             f"{'TX (to it)':>14} {'PKT/S':>9}"]
    for row in data.get("talkers", []):
        lines.append(f"{row['host']:<12} {row['port']:<16} {whose(row):<22} "
                     f"{(row['network'] or '-'):<14} {rate(row['rx_bps']):>14} "
                     f"{rate(row['tx_bps']):>14} {row['rx_pps'] + row['tx_pps']:>9.0f}")
    if not data.get("talkers"):
        lines.append("(no traffic)")
    lines += ["", "Dropped by VIF locking", f"{'HOST':<12} {'VM':<22} {'DROPS/S':>8}  BY KIND"]
    for row in data.get("droppers", []):
        kinds = ", ".join(f"{k} {v}" for k, v in sorted((row["drops"] or {}).items()) if v)
        lines.append(f"{row['host']:<12} {whose(row):<22} {row['drop_pps']:>8.1f}  {kinds}")
    if not data.get("droppers"):
        lines.append("(nothing dropped)")
    return "\n".join(lines)


@click.command("top")
@click.option("--url", default="http://127.0.0.1:9464", show_default=True,
              help="Where `netctl run` serves /stats (its metrics.listen).")
@click.option("-n", "count", default=15, show_default=True, type=click.IntRange(min=1),
              help="Rows in each list.")
@click.option("--host", help="Only this host's ports (name_label).")
@click.option("--kind", type=click.Choice(["vif", "pif", "bond-member", "tunnel", "other"]),
              help="Only ports of this kind.")
@click.option("--once", is_flag=True, help="Print one screen and end.")
@click.option("--json", "as_json", is_flag=True, help="Print /stats?top=N's JSON (with --once).")
def top(url: str, count: int, host: str | None, kind: str | None, once: bool,
        as_json: bool) -> None:
    """Top talkers and locking drops across the pool, redrawn every statistics interval."""
    while True:
        data = fetch(url, count, host, kind)
        if as_json:
            click.echo(json.dumps(data, indent=1))
        else:
            if not once and sys.stdout.isatty():
                click.echo("\033[H\033[2J", nl=False)  # home, clear
            click.echo(screen(data))
        if once:
            return
        try:
            time.sleep(max(float(data.get("interval") or 5), 1.0))
        except KeyboardInterrupt:
            return
