"""Tunnel liveness (issue 21) on a lab pool under `netctl run`: BFD on every tunnel port, and
`tunnel.status:active` only while BFD says the peers forward. A host's underlay cut (its NIC's
cable pulled at the switch) shows as that host's peer pairs down in /status, /metrics and
`netctl status`, and as `active=false` in xapi, within 3 s; plugged back, it all comes back by
itself — with no OVSDB write either way (BFD state is read, never written)."""

from __future__ import annotations

import re
import subprocess
import sys
import time
import urllib.request

import pytest

from harness.running import running_pool, until
from tests.conftest import ROOT

pytestmark = pytest.mark.lab
PREFIX = "tbd"
PORTS = (28681, 26881, 29681)
HOSTS = ("host1", "host2", "host3")
BRIDGE = "xapi1"  # trio-pool's private (VXLAN) network
CUT = "host3"
DETECT = 3.0  # seconds the issue allows from the cut to "down" (and to active=false)


@pytest.fixture(scope="module")
def pool():
    with running_pool("trio-pool.yaml", PREFIX, "198.18.61.0/24", PORTS, lacp=False) as demo:
        yield demo


def tunnel_actives(pool) -> dict[str, str]:
    """host name -> its tunnel's tunnel.status:active, read from xapi through XenAPI."""
    x = pool.session.xenapi
    out = {}
    for ref in x.tunnel.get_all():
        host = x.host.get_name_label(x.PIF.get_host(x.tunnel.get_access_PIF(ref)))
        out[host] = x.tunnel.get_status(ref).get("active", "")
    return out


def peers(pool) -> dict[tuple[str, str], dict]:
    """(host, peer) -> /status's row for that peer pair of the host's tunnel."""
    return {(t["host"], p["peer"]): p for t in pool.status().get("tunnels", [])
            for p in t.get("peers", [])}


def peer_gauges() -> dict[tuple[str, str], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{PORTS[2]}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    out = {}
    for labels, value in re.findall(r"^netctl_tunnel_peer_up\{(.*)\} (\S+)$", text, re.M):
        got = dict(re.findall(r'(\w+)="([^"]*)"', labels))
        assert got["network"] == "priv", got
        out[(got["host"], got["peer"])] = float(value)
    return out


def operations(pool) -> dict[str, int]:
    return {h["name"]: h["operations"] for h in pool.status()["hosts"]}


def all_pairs() -> set[tuple[str, str]]:
    return {(h, p) for h in HOSTS for p in HOSTS if h != p}


def test_every_tunnel_port_runs_bfd_and_every_tunnel_is_active(pool):
    lab = pool.lab
    for host in HOSTS:
        ovs = lab.ovs(host)
        ports = [p for p in ovs.vsctl("list-ports", BRIDGE).split()
                 if ovs.vsctl("get", "interface", p, "type") == "vxlan"]
        assert len(ports) == 2, (host, ports)
        for port in ports:
            bfd = ovs.vsctl("get", "interface", port, "bfd")
            assert bfd == '{enable="true", min_rx="300", min_tx="300"}', (host, port, bfd)
            assert until(lambda ovs=ovs, port=port: ovs.vsctl(
                "get", "interface", port, "bfd_status:forwarding").strip('"') == "true", 20), \
                (host, port, ovs.vsctl("get", "interface", port, "bfd_status"))
    assert until(lambda: set(tunnel_actives(pool).values()) == {"true"}, 20), \
        tunnel_actives(pool)
    rows = peers(pool)
    assert set(rows) == all_pairs(), rows
    for pair, row in rows.items():
        assert row["up"] and row["since"], (pair, row)
        assert row["local"]["state"] == "up" and row["remote"]["state"] == "up", (pair, row)
    assert until(lambda: peer_gauges() == dict.fromkeys(all_pairs(), 1.0), 5), peer_gauges()


def test_a_cut_underlay_shows_down_within_3s_and_comes_back_by_itself(pool):
    lab = pool.lab
    assert until(lambda: set(tunnel_actives(pool).values()) == {"true"}, 20)
    before = operations(pool)
    cut_pairs = {pair for pair in all_pairs() if CUT in pair}

    start, wall = time.monotonic(), time.time()
    lab.set_cable(CUT, "eth0", up=False)
    try:
        seen_down = until(lambda: all(not peers(pool)[pair]["up"] for pair in cut_pairs),
                          DETECT, 0.05)
        status_after = time.monotonic() - start
        inactive = until(lambda: set(tunnel_actives(pool).values()) == {"false"}, DETECT, 0.05)
        xapi_after = time.monotonic() - start
        assert seen_down, f"/status still shows {CUT}'s peers up {status_after:.2f} s after " \
                          f"the cut: {peers(pool)}"
        assert inactive, f"tunnel.status:active not false everywhere {xapi_after:.2f} s " \
                         f"after the cut: {tunnel_actives(pool)}"
        print(f"cut {CUT}: /status down after {status_after:.2f} s, "
              f"tunnel.status active=false after {xapi_after:.2f} s")
        rows = peers(pool)
        assert rows[("host1", "host2")]["up"] and rows[("host2", "host1")]["up"], rows
        down = rows[("host1", CUT)]
        assert down["since"] >= wall and not (
            down["local"]["forwarding"] and down["remote"]["forwarding"]), down
        # the pair went down with the first end that noticed; host1's own end follows within
        # a detection time (each end's BFD session expires on its own clock)
        assert until(lambda: peers(pool)[("host1", CUT)]["local"]["state"] != "up", DETECT,
                     0.05), peers(pool)[("host1", CUT)]
        gauges = peer_gauges()
        assert {pair for pair, v in gauges.items() if v == 0} == cut_pairs, gauges
        out = subprocess.run([sys.executable, "-m", "netctl.cli", "status", "--url",
                              f"http://127.0.0.1:{PORTS[2]}"], capture_output=True, text=True,
                             timeout=60, cwd=ROOT).stdout
        assert f"{CUT} down since" in out and "host2 up since" in out, out
    finally:
        lab.set_cable(CUT, "eth0", up=True)
    start = time.monotonic()
    assert until(lambda: set(tunnel_actives(pool).values()) == {"true"}, 20), \
        tunnel_actives(pool)
    print(f"restored: active=true after {time.monotonic() - start:.2f} s")
    assert all(row["up"] for row in peers(pool).values())
    assert until(lambda: peer_gauges() == dict.fromkeys(all_pairs(), 1.0), 5), peer_gauges()
    assert operations(pool) == before  # BFD state is read, never written
