"""`netctl xapi-sim`: serve a simulated pool master seeded from a topology file.

With `--members-port P` every host of the pool also gets its own xapi endpoint on
`host.address:P` (`netctl.xapisim.members`): the master's serves, the others answer
HOST_IS_SLAVE. `--members-netns PREFIX` makes each host's socket inside namespace
`PREFIX-<host name_label>` (the lab's host namespaces, `Lab.ns`). The `--listen` endpoint stays
the master's whoever the master is, and also serves `simulator.stop_member(host)`,
`simulator.start_member(host)` and `simulator.get_members()` to stop and start one member's
endpoint (a master dying) from a test or the lab.
"""

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
@click.option("--members-port", type=click.IntRange(1, 65535),
              help="Also serve every host's own xapi on its host.address and this port.")
@click.option("--members-netns", metavar="PREFIX",
              help="Make each member's socket in namespace PREFIX-<host name> (the lab's).")
def xapi_sim(topology_file: Path, listen: str, users_file: Path | None, user: str | None,
             password: str | None, cert: str | None, key: str | None,
             members_port: int | None, members_netns: str | None) -> None:
    """Serve a xapi pool master (XML-RPC on / and /RPC2, JSON-RPC on /jsonrpc)."""
    # Imported here: `netctl` registers this command in every run of the CLI, and the
    # product's own commands (`netctl run`...) must not load the simulator.
    from netctl.xapisim.members import serve_members, stop_members
    from netctl.xapisim.server import serve
    from netctl.xapisim.sim import Simulator

    if members_netns is not None and members_port is None:
        raise click.BadParameter("needs --members-port", param_hint="--members-netns")

    host, port = _listen(listen)
    try:
        topology = parse_file(topology_file)
    except TopologyError as exc:
        raise click.ClickException(str(exc)) from None
    sim = Simulator.from_topology(topology, users=_users(users_file, user, password))
    members = {}
    if members_port is not None:  # first: once --listen answers, the members do too
        def netns(ref: str) -> str | None:
            return (f"{members_netns}-{sim.store.get('host', ref, 'name_label')}"
                    if members_netns else None)
        try:
            members = serve_members(sim, members_port, netns=netns, certfile=cert,
                                    keyfile=key)
        except OSError as exc:
            raise click.ClickException(f"member endpoints: {exc}") from None
    server = serve(sim, host, port, certfile=cert, keyfile=key)
    click.echo(f"xapi simulator for pool '{topology.name}' on {server.url} "
               f"({len(topology.hosts)} hosts, {len(topology.vms)} VMs)", err=True)
    for ref, srv in members.items():
        click.echo(f"  member {sim.store.get('host', ref, 'name_label')}: {srv.url}"
                   + (f" (netns {srv.netns})" if srv.netns else ""), err=True)
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    done.wait()
    stop_members(members)
    server.stop()
