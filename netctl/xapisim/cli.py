"""`netctl xapi-sim`: serve a simulated pool master seeded from a topology file."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import click
import yaml

from netctl.topology import TopologyError, parse_file


def _users(users_file: Path | None, user: str | None, password: str | None) -> dict[str, str]:
    if users_file is not None:
        data = yaml.safe_load(users_file.read_text()) or {}
        if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                 for k, v in data.items()):
            raise click.BadParameter("must be a YAML mapping of user name to password",
                                     param_hint="--users")
        return data
    if user is not None:
        if password is None:
            raise click.BadParameter("--user needs --password", param_hint="--password")
        return {user: password}
    return {"root": "netctl"}


def _listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise click.BadParameter(f"{value!r} is not HOST:PORT", param_hint="--listen")
    return host or "127.0.0.1", int(port)


@click.command("xapi-sim")
@click.option("--topology", "topology_file", required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Topology YAML the pool is seeded from.")
@click.option("--listen", default="127.0.0.1:8080", show_default=True, help="HOST:PORT.")
@click.option("--users", "users_file", type=click.Path(exists=True, dir_okay=False,
                                                       path_type=Path),
              help="YAML mapping user -> password.")
@click.option("--user", help="The one user allowed to log in (default root/netctl).")
@click.option("--password", help="Password of --user.")
@click.option("--cert", type=click.Path(exists=True, dir_okay=False), help="TLS certificate.")
@click.option("--key", type=click.Path(exists=True, dir_okay=False), help="TLS private key.")
def xapi_sim(topology_file: Path, listen: str, users_file: Path | None, user: str | None,
             password: str | None, cert: str | None, key: str | None) -> None:
    """Serve a xapi pool master (XML-RPC on / and /RPC2, JSON-RPC on /jsonrpc)."""
    # Imported here: `netctl` registers this command in every run of the CLI, and the
    # product's own commands (`netctl run`...) must not load the simulator.
    from netctl.xapisim.server import serve
    from netctl.xapisim.sim import Simulator

    host, port = _listen(listen)
    try:
        topology = parse_file(topology_file)
    except TopologyError as exc:
        raise click.ClickException(str(exc)) from None
    sim = Simulator.from_topology(topology, users=_users(users_file, user, password))
    server = serve(sim, host, port, certfile=cert, keyfile=key)
    click.echo(f"xapi simulator for pool '{topology.name}' on {server.url} "
               f"({len(topology.hosts)} hosts, {len(topology.vms)} VMs)", err=True)
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    done.wait()
    server.stop()
