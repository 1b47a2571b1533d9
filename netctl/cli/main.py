"""The `netctl` command.

`netctl lab ...` runs the embedded lab; `netctl demo` is what `make demo` runs; `netctl
xapi-sim` serves the xapi simulator. Errors are one clear line on stderr and a non-zero exit.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import click

from netctl.cli.views import console, show_lab, show_status
from netctl.topology import TopologyError, parse_file


class NetctlError(click.ClickException):
    """An error the user can act on; printed without a traceback."""


@click.group()
@click.version_option(package_name="netctl")
def main() -> None:
    """netctl: the control plane for the Open vSwitch bridges of a Xen pool."""


# --------------------------------------------------------------------------------- lab
@main.group()
def lab() -> None:
    """The embedded lab: a whole pool (hosts with their own OVS, a switch, VMs) on one machine."""


def _require_root() -> None:
    if os.geteuid() != 0:
        raise NetctlError("the lab needs root (namespaces, veths, Open vSwitch)")


def _attach(prefix: str | None):
    from netctl.lab.lab import Lab, LabError

    try:
        return Lab.attach(prefix)
    except (LabError, LookupError) as exc:
        raise NetctlError(str(exc)) from None


@lab.command("up")
@click.argument("topology", type=click.Path(dir_okay=False))
@click.option(
    "--host-networking",
    type=click.Choice(["lab", "none"]),
    default="lab",
    show_default=True,
    help="'lab': the lab configures host bridges/bonds/VLANs/tunnels (as xcp-networkd "
    "would); 'none': leave host OVS empty for netctl to program.",
)
@click.option("--prefix", help="Override the topology's lab prefix (owned name prefix).")
@click.option("--management", help="Override the management network (IPv4 CIDR).")
def lab_up(topology: str, host_networking: str, prefix: str | None, management: str | None) -> None:
    """Build the lab from TOPOLOGY (YAML) and leave it running."""
    from netctl.lab.lab import Lab, LabError

    _require_root()
    try:
        topo = parse_file(topology)
        if prefix or management:
            topo = topo.relabel(prefix or topo.prefix, management or topo.management)
        started = time.monotonic()
        running = Lab.up(topo, host_networking=host_networking)
    except (TopologyError, LabError) as exc:
        raise NetctlError(str(exc)) from None
    lacp = running.wait_lacp()
    show_lab(running)
    console.print(
        f"lab '{topo.prefix}' up in {time.monotonic() - started:.1f}s"
        + ("" if lacp else " (LACP not negotiated yet)")
        + f"; `netctl lab down --lab {topo.prefix}` removes it"
    )


@lab.command("down")
@click.option("--lab", "prefix", help="Lab prefix (default: every lab that is up).")
def lab_down(prefix: str | None) -> None:
    """Remove a lab: exactly the namespaces, links and processes it recorded."""
    from netctl.lab.lab import LabError, teardown
    from netctl.lab.state import LabState

    _require_root()
    prefixes = [prefix] if prefix else LabState.prefixes()
    if not prefixes:
        console.print("no lab is up")
        return
    for p in prefixes:
        try:
            removed = teardown(LabState.load(p))
        except (LookupError, LabError) as exc:
            raise NetctlError(str(exc)) from None
        console.print(f"lab '{p}' down: removed {len(removed)} objects")


@lab.command("exec", context_settings={"ignore_unknown_options": True})
@click.option("--lab", "prefix", help="Lab prefix (default: the only lab that is up).")
@click.argument("node")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def lab_exec(prefix: str | None, node: str, command: tuple[str, ...]) -> None:
    """Run COMMAND inside a VM, pool host, outside machine or the switch: lab exec vm1 -- ip a"""
    from netctl.lab.lab import LabError

    running = _attach(prefix)
    try:
        ns = running.ns(node)
    except LabError as exc:
        raise NetctlError(str(exc)) from None
    env = None
    if node in {h.name for h in running.topology.hosts} | {running.topology.switch.name}:
        env = running.ovs(node).env()
    sys.exit(subprocess.call(["ip", "netns", "exec", ns, *command], env=env))


@lab.command("cli")
@click.option("--lab", "prefix", help="Lab prefix (default: the only lab that is up).")
def lab_cli(prefix: str | None) -> None:
    """Mininet's CLI on the running lab (pingall, `vm1 ip a`, `host1 ovs-vsctl show`...)."""
    from netctl.lab.mininet_view import LabView

    view = LabView(_attach(prefix))
    try:
        view.cli()
    finally:
        view.stop()


@lab.command("show")
@click.option("--lab", "prefix", help="Lab prefix (default: the only lab that is up).")
def lab_show(prefix: str | None) -> None:
    """Show the pool the lab built: hosts, bridges, cabling, VMs."""
    show_lab(_attach(prefix))


# --------------------------------------------------------------------------------- demo
@main.command()
@click.argument("topology", type=click.Path(dir_okay=False), default="topologies/demo-pool.yaml")
@click.option("--keep", is_flag=True, help="Leave everything up (explore: netctl lab cli).")
@click.option("--ports", default="18443,16633,19464", show_default=True,
              help="xapi, OpenFlow and metrics ports (loopback / management network): another "
              "pool may run beside `make demo`'s with other ports and its own prefix.")
def demo(topology: str, keep: bool, ports: str) -> None:
    """The main job on the embedded lab: netctl builds the pool, then live changes. On any
    topology: the checks and live changes are those the topology allows, the others are
    said to be skipped."""
    from netctl.cli.demo import run_demo
    from netctl.lab.lab import LabError

    _require_root()
    try:
        xapi, openflow, metrics = (int(p) for p in ports.split(","))
    except ValueError:
        raise NetctlError(f"--ports {ports!r}: three port numbers, e.g. 18443,16633,19464"
                          ) from None
    try:
        topo = parse_file(topology)
        ok = run_demo(topo, keep, console, ports=(xapi, openflow, metrics))
    except (TopologyError, LabError, TimeoutError) as exc:
        raise NetctlError(str(exc)) from None
    if not ok:
        sys.exit(1)


@lab.command("agent")
@click.option("--lab", "prefix", help="Lab prefix (default: the only lab that is up).")
@click.option("--xapi", "xapi_url", required=True)
@click.option("--username", default="root", show_default=True)
@click.option("--password-file", type=click.Path(exists=True, dir_okay=False), required=True)
def lab_agent(prefix: str | None, xapi_url: str, username: str, password_file: str) -> None:
    """Play xenopsd/networkd in the lab from xapi: plug running VMs' VIFs, set PIF IPs."""
    import logging
    import signal

    from netctl.lab.agent import LabAgent

    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    password = open(password_file).read().strip()  # noqa: SIM115 - read once
    def stop(*_: object) -> None:
        # Nothing to flush (every lab change is recorded as it happens), and a pyroute2 child
        # forked to enter a namespace inherits this handler: leave at once either way.
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    LabAgent(_attach(prefix), xapi_url, username, password).start()
    while True:
        signal.pause()


# --------------------------------------------------------------------------------- openflow
@main.command("openflow")
@click.option("--listen", default="127.0.0.1:6653", show_default=True,
              help="HOST:PORT to listen on for the bridges' OpenFlow connections.")
@click.option("--xapi", "xapi_url", required=True, help="URL of the pool master (or simulator).")
@click.option("--username", default="root", show_default=True)
@click.option("--password-file", type=click.Path(exists=True, dir_okay=False), required=True)
@click.option("--hub", type=click.Choice(["native", "eventlet"]), default="native",
              show_default=True, help="os-ken hub.")
@click.option("--status-file", help="Write the controller's status (JSON) here, continuously.")
@click.option("--tls-key", type=click.Path(dir_okay=False),
              help="Listen with TLS (ssl: targets): the controller's private key ...")
@click.option("--tls-cert", type=click.Path(dir_okay=False), help="... its certificate ...")
@click.option("--tls-ca", type=click.Path(dir_okay=False),
              help="... and the CA the switches' certificates must be signed by.")
@click.option("--audit-interval", type=float, default=60.0, show_default=True,
              help="Seconds between dump-and-diff audits that repair drifted flows (0: off).")
@click.option("--flow-monitor/--no-flow-monitor", default=True, show_default=True,
              help="Subscribe to each switch's flow monitor (OVS >= 3.0): a flow another "
                   "OpenFlow client changes is repaired at once.")
@click.option("--xapi-ca", type=click.Path(exists=True, dir_okay=False),
              help="CA certificate to verify an https pool master with.")
@click.option("--xapi-insecure", is_flag=True,
              help="Do not verify the https pool master's certificate.")
@click.option("-v", "--verbose", is_flag=True)
def openflow(listen: str, xapi_url: str, username: str, password_file: str, hub: str,
             status_file: str | None, tls_key: str | None, tls_cert: str | None,
             tls_ca: str | None, audit_interval: float, flow_monitor: bool,
             xapi_ca: str | None, xapi_insecure: bool, verbose: bool) -> None:
    """Run the OpenFlow controller alone: keep every bridge's flows equal to xapi's intent."""
    import logging

    from netctl.service.openflow_only import serve
    from netctl.service.osken import LaunchError

    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if hub == "eventlet" and os.environ.get("OSKEN_HUB_TYPE") != "eventlet":
        # eventlet must patch the standard library before anything imports it: re-exec.
        args = sys.argv[sys.argv.index("openflow") :]
        os.execv(sys.executable, [sys.executable, "-m", "netctl.cli.green", *args])
    host, _, port = listen.rpartition(":")
    password = open(password_file).read().strip()  # noqa: SIM115 - read once
    if xapi_ca and xapi_insecure:
        raise NetctlError("--xapi-ca and --xapi-insecure contradict each other")
    from netctl.service.osken import TlsFiles

    tls = None
    if tls_key or tls_cert or tls_ca:
        if not (tls_key and tls_cert and tls_ca):
            raise NetctlError("TLS needs --tls-key, --tls-cert and --tls-ca together")
        tls = TlsFiles(tls_key, tls_cert, tls_ca)
    try:
        serve(host, int(port), xapi_url, username, password, hub=hub, status_file=status_file,
              tls=tls, audit_interval=audit_interval, flow_monitor=flow_monitor,
              xapi_ca=xapi_ca,
              xapi_insecure=xapi_insecure)
    except LaunchError as exc:
        raise NetctlError(str(exc)) from None


# --------------------------------------------------------------------------------- run
@main.command("run")
@click.option("--xapi", "xapi_url", required=True, envvar="NETCTL_XAPI",
              help="URL of the pool master (or simulator); env NETCTL_XAPI.")
@click.option("--username", default="root", show_default=True, envvar="NETCTL_USERNAME")
@click.option("--password-file", type=click.Path(exists=True, dir_okay=False),
              envvar="NETCTL_PASSWORD_FILE",
              help="File holding xapi's password (or the password itself in env NETCTL_PASSWORD).")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False),
              help="YAML configuration (OVSDB endpoints, TLS, OpenFlow, metrics): see "
                   "netctl/service/config.py.")
@click.option("--xapi-ca", type=click.Path(exists=True, dir_okay=False),
              help="CA certificate to verify an https pool master with (xapi.ca_file).")
@click.option("--xapi-insecure", is_flag=True, default=None,
              help="Do not verify the https pool master's certificate (xapi.insecure).")
@click.option("--xapi-member", "xapi_members", multiple=True,
              help="Another pool member's URL to try when the master is gone (repeat; "
              "xapi.members). Each host's address is learnt from xapi too.")
@click.option("--coordination", "coordination_url", metavar="URL",
              help="Run as one of several instances, one master per host, on etcd: "
              "etcd3+http://HOST:PORT[,HOST:PORT...] (coordination.url). Without it this "
              "instance runs alone.")
@click.option("--instance-id", help="This instance's name in etcd, unique among the "
              "instances (coordination.instance_id; default hostname-openflow port).")
@click.option("--controller", "controllers", multiple=True, metavar="TARGET",
              help="Every instance's OpenFlow target, this one's included (repeat; "
              "coordination.controllers): each bridge connects to all of them.")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]),
              help="Log this level and above to stderr (log.level; default info).")
@click.option("--log-file", type=click.Path(dir_okay=False),
              help="Also log to this file, with timestamps (log.file).")
@click.option("-v", "--verbose", is_flag=True, help="The same as --log-level debug.")
def run(xapi_url: str, username: str, password_file: str | None, config_file: str | None,
        xapi_ca: str | None, xapi_insecure: bool | None, xapi_members: tuple[str, ...],
        coordination_url: str | None, instance_id: str | None, controllers: tuple[str, ...],
        log_level: str | None, log_file: str | None, verbose: bool) -> None:
    """Keep every host's OVSDB and OpenFlow tables equal to the pool's xapi intent."""
    import signal

    from netctl.service import logs
    from netctl.service.config import ConfigError, load
    from netctl.service.health import health
    from netctl.service.metrics import serve as serve_metrics
    from netctl.service.openflow_only import run_controller
    from netctl.service.osken import LaunchError
    from netctl.service.reload import Reloader
    from netctl.service.run import Run

    overrides = {"xapi_ca_file": xapi_ca, "xapi_insecure": xapi_insecure or None,
                 "xapi_members": xapi_members or None,
                 "coordination_url": coordination_url, "instance_id": instance_id,
                 "controllers": controllers or None,
                 "log_level": "debug" if verbose else log_level, "log_file": log_file}
    try:
        config = load(config_file, **overrides)
        config.target  # noqa: B018 - fail now on an incomplete OpenFlow configuration
        logs.configure(config.log_level, config.log_file)
    except (ConfigError, logs.LogError) as exc:
        raise NetctlError(str(exc)) from None
    if config.hub == "eventlet" and os.environ.get("OSKEN_HUB_TYPE") != "eventlet":
        args = sys.argv[sys.argv.index("run"):]
        os.execv(sys.executable, [sys.executable, "-m", "netctl.cli.green", *args])
    if password_file:
        password = open(password_file).read().strip()  # noqa: SIM115 - read once
    elif os.environ.get("NETCTL_PASSWORD"):
        password = os.environ.pop("NETCTL_PASSWORD")  # not handed on to any child
    else:
        raise NetctlError("xapi's password: give --password-file (or NETCTL_PASSWORD_FILE), "
                          "or set NETCTL_PASSWORD")
    controller = Run(config, xapi_url, username, password)
    try:
        controller.start_port_config()
    except OSError as exc:
        host, port = config.port_config_listen
        raise NetctlError(f"openflow.port_config: cannot listen on {host}:{port} (openflow."
                          f"listen's port + 1): {exc.strerror or exc}; free it, or set "
                          "openflow.port_config: false") from None
    reloader = Reloader(controller, config_file, overrides)
    signal.signal(signal.SIGHUP, reloader.request)  # the main thread; `watch` reloads
    if config.metrics_listen:
        host, _, port = config.metrics_listen.rpartition(":")
        try:
            serve_metrics(host, int(port), controller.metrics, controller.status,
                          lambda: health(controller), stats=controller.stats,
                          web=controller.web_view())
        except OSError as exc:
            raise NetctlError(f"metrics: cannot listen on {config.metrics_listen}: "
                              f"{exc.strerror}") from None
    host, _, port = config.openflow_listen.rpartition(":")
    try:
        run_controller(controller.loop.switches, host, int(port), config.hub,
                       [controller.run_forever, reloader.watch], config.openflow_tls,
                       on_stop=controller.stop)
    except LaunchError as exc:
        raise NetctlError(str(exc)) from None


@main.command("status")
@click.option("--url", default="http://127.0.0.1:9464", show_default=True,
              help="Where `netctl run` serves /status (its metrics.listen).")
@click.option("--host", help="One host (name_label or uuid): its OVSDB, bonds, tunnels, "
                             "switches, VIFs and problems.")
@click.option("--vm", help="One VM (name_label or uuid): its VIFs, and the host, bonds, "
                           "tunnels and switches on their path.")
@click.option("--network", help="One network (name_label, bridge or uuid): its VIFs, and the "
                                "bonds, tunnels and switches that carry it.")
@click.option("--limit", type=click.IntRange(min=0),
              help="VIF rows at most with --host/--vm/--network (the controller's default: "
                   "500; at most 5000); all of them are counted.")
@click.option("--full", is_flag=True, help="Everything: every VIF of the pool (70,000 rows at "
                                           "64 hosts x 1000 VIFs).")
@click.option("--json", "as_json", is_flag=True, help="Print the raw JSON.")
def status_cmd(url: str, host: str | None, vm: str | None, network: str | None,
               limit: int | None, full: bool, as_json: bool) -> None:
    """The pool at a glance: hosts, bridges, bonds (LACP per member), tunnels, counts, problems.
    With --host, --vm or --network (combined: all must match): those VIFs (port, MAC, locking,
    flows) and what carries them."""
    import json

    query = {k: v for k, v in (("host", host), ("vm", vm), ("network", network)) if v}
    if limit is not None:
        query["limit"] = str(limit)
    if full:
        query["full"] = "1"
    from netctl.cli.fetch import fetch_json

    data = fetch_json(url, "/status", query, timeout=60 if full else 10)
    if as_json:
        click.echo(json.dumps(data, indent=1))
        return
    show_status(data)


@main.command("trace")
@click.argument("vif")
@click.argument("packet")
@click.option("--xapi", "xapi_url", required=True, help="URL of the pool master (or simulator).")
@click.option("--username", default="root", show_default=True)
@click.option("--password-file", type=click.Path(exists=True, dir_okay=False), required=True)
@click.option("--lab", "prefix", help="Trace inside this lab's host namespace (default: on this "
                                      "machine's own OVS, as on a real host).")
def trace(vif: str, packet: str, xapi_url: str, username: str, password_file: str,
          prefix: str | None) -> None:
    """Where a PACKET (OVS flow syntax, e.g. icmp,nw_dst=10.10.0.13) from VIF (vm1, vm1/1 or
    a VIF uuid) would go, from ofproto/trace on the VIF's host."""
    from netctl.cli.trace import TraceError, run_trace, target
    from netctl.sources.xapi.sync import XapiSync

    sync = XapiSync(xapi_url, username, open(password_file).read().strip())  # noqa: SIM115
    try:
        sync.connect()
        t = target(sync.state, vif, packet)
        ns = env = None
        if prefix is not None:
            running = _attach(prefix)
            host = next((h.name for h in running.topology.hosts if h.uuid == t.host_uuid), None)
            if host is None:
                raise TraceError(f"lab '{prefix}' has no host with uuid {t.host_uuid}")
            ns, env = running.ns(host), running.ovs(host).env()
        out = run_trace(t, ns, env)
    except TraceError as exc:
        raise NetctlError(str(exc)) from None
    finally:
        sync.stop()
    console.print(f"[bold]{t.host}[/bold] bridge {t.bridge}, port {t.port}: {t.flow}")
    click.echo(out)


def _register_xapi_commands() -> None:
    from netctl.cli.attach import pki, register, unregister
    from netctl.xapisim.cli import xapi_sim

    main.add_command(xapi_sim, "xapi-sim")
    for command in (register, unregister, pki):
        main.add_command(command)


_register_xapi_commands()


def _register_service_commands() -> None:
    from netctl.cli.install import install_service
    from netctl.cli.top import top

    main.add_command(install_service)
    main.add_command(top)


_register_service_commands()

if __name__ == "__main__":
    main()
