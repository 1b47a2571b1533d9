"""Every host of the simulated pool with a xapi endpoint of its own (issue 19).

In a real pool each host runs xapi on its management address; only the master serves the API
and the others answer `HOST_IS_SLAVE [master address]`. A client that must follow the master
(netctl's XapiSync) can only be tested against that, so `serve_members` gives each host its
own `RunningServer` on `host.address:port`, all on one simulator (one database, as the pool
has one): the server tells the simulator which host a call came in on and the simulator
answers as that host (`netctl.xapisim.sim`, "Pool roles").

Where they listen: in the lab, each host's management address lives in the host's network
namespace, so `netns(host_ref)` names the namespace to make that host's socket in; standalone,
`loopback_addresses` gives the hosts 127.0.0.N so they share one port on loopback.

The master dies when its endpoint stops (`servers[ref].stop()`, `.start()` brings it back).
From outside the process (a lab test, the demo), `install_control` adds three calls to the
plain `serve()` endpoint only — never to a member's, never to `system.listMethods`, and named
`simulator.*` so nobody mistakes them for xapi's:
- `simulator.stop_member(session, host)` / `simulator.start_member(session, host)`: `host` is a
  host's name_label or ref; an unknown one fails with `["UUID_INVALID", "host", <host>]`;
- `simulator.get_members(session)` -> {name_label: {ref, address, url, running, master}}.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from typing import Any

from netctl.xapisim.errors import XapiError
from netctl.xapisim.server import RunningServer
from netctl.xapisim.sim import Method, SessionInfo, Simulator

NetnsOf = Callable[[str], str | None]


def serve_members(sim: Simulator, port: int, *, host: str | None = None,
                  netns: NetnsOf | None = None, certfile: str | None = None,
                  keyfile: str | None = None, jsonrpc: bool = True,
                  control: bool = True) -> dict[str, RunningServer]:
    """One endpoint per host of `sim`'s pool, by host ref: each listens on that host's
    `host.address` (or on `host` for every member, e.g. "0.0.0.0" inside namespaces) and
    `port`; with `netns`, inside the namespace it names for the host (None: the current one).
    Port 0: the first member gets an ephemeral port and the others take the same one (so a
    HOST_IS_SLAVE address is enough to reach the master), retried if that port is taken on
    another address. `control`: also serve the `simulator.*` calls on the plain endpoint."""
    with sim.store.lock:
        addresses = [(ref, sim.store.get("host", ref, "address"))
                     for ref in sim.store.refs("host")]
    for attempt in range(8):
        servers: dict[str, RunningServer] = {}
        chosen = port
        try:
            for ref, address in addresses:
                srv = RunningServer(sim, host or address, chosen, certfile, keyfile, jsonrpc,
                                    member=ref, netns=netns(ref) if netns else None)
                chosen = srv.port
                servers[ref] = srv
        except OSError as exc:
            stop_members(servers)
            if port != 0 or exc.errno != errno.EADDRINUSE or attempt == 7:
                raise
            continue
        if control:
            install_control(sim, servers)
        return servers
    raise AssertionError("unreachable")


def stop_members(servers: dict[str, RunningServer]) -> None:
    """Stop every member endpoint and forget them (the simulator then has no members)."""
    for ref, srv in servers.items():
        srv.stop()
        with srv.sim.store.lock:
            srv.sim.endpoints.pop(ref, None)


def loopback_addresses(sim: Simulator, first: int = 10) -> dict[str, str]:
    """Give the hosts (in pool order) `host.address` 127.0.0.<first>, <first+1>, ... so their
    endpoints share one port on loopback; returns host ref -> address. Only for standalone use:
    the lab's hosts keep their management addresses."""
    out: dict[str, str] = {}
    with sim.store.lock:
        for i, ref in enumerate(sim.store.refs("host")):
            out[ref] = f"127.0.0.{first + i}"
            sim.store.update("host", ref, address=out[ref])
    return out


def member_ref(sim: Simulator, host: str) -> str:
    """A host ref from a name_label or a ref (what the control calls accept)."""
    with sim.store.lock:
        if sim.store.exists("host", host):
            return host
        found = sim.store.find("host", name_label=host)
    if len(found) != 1:
        raise XapiError("UUID_INVALID", "host", host)
    return found[0]


def install_control(sim: Simulator, servers: dict[str, RunningServer]) -> None:
    """Serve `simulator.stop_member`, `simulator.start_member` and `simulator.get_members` on
    the plain endpoint of `sim` (see the module docstring)."""

    def server_of(host: str) -> RunningServer:
        ref = member_ref(sim, host)
        if ref not in servers:
            raise XapiError("UUID_INVALID", "host", host)
        return servers[ref]

    def stop(session: SessionInfo, host: str) -> str:
        server_of(host).stop()
        return ""

    def start(session: SessionInfo, host: str) -> str:
        server_of(host).start()
        return ""

    def members(session: SessionInfo) -> dict[str, Any]:
        master = sim.master()
        with sim.store.lock:
            return {sim.store.get("host", ref, "name_label"): {
                "ref": ref, "address": sim.store.get("host", ref, "address"), "url": srv.url,
                "running": srv.running, "master": ref == master}
                for ref, srv in servers.items()}

    sim.control = {
        "simulator.stop_member": Method("simulator.stop_member", ("s",), stop),
        "simulator.start_member": Method("simulator.start_member", ("s",), start),
        "simulator.get_members": Method("simulator.get_members", (), members),
    }
