"""`netctl register`, `netctl unregister`, `netctl pki`: attaching netctl to a pool as xapi expects.

A pool names its controller through xapi (`SDN_controller.introduce`); xapi then runs its
`openvswitch-config-update` plugin on every host, which sets the host's OVSDB manager and SSL
settings. These commands do that part through the official XenAPI client and say what it
changes; `docs/deploy.md` is the whole procedure.
"""

from __future__ import annotations

from pathlib import Path

import click
import XenAPI

from netctl.service import pki as pki_files
from netctl.sources.xapi.transport import make_transport

LOCKING_NOTE = (
    "While a controller is registered xapi refuses VIF.set_locking_mode to an effective "
    "'locked' (xapi_vif.ml). To lock a VIF, set VIF other_config:netctl-locking-mode=locked "
    "(with its ipv4/ipv6_allowed addresses): netctl enforces it, and a value it cannot read "
    "is enforced as locked and reported.")


def _session(url: str, username: str, password_file: str, ca_file: str | None,
             insecure: bool) -> XenAPI.Session:
    password = Path(password_file).read_text().strip()
    session = XenAPI.Session(url, transport=make_transport(url, 30.0, ca_file=ca_file,
                                                           insecure=insecure))
    try:
        session.xenapi.login_with_password(username, password, "1.0", "netctl-register")
    except XenAPI.Failure as exc:
        raise click.ClickException(f"{url}: login refused: {exc.details}") from None
    except OSError as exc:
        raise click.ClickException(f"{url}: {exc}") from None
    return session


def _xapi_options(f):  # noqa: ANN001, ANN202 - a click command
    for option in reversed((
        click.option("--xapi", "xapi_url", required=True, help="The pool master's URL."),
        click.option("--username", default="root", show_default=True),
        click.option("--password-file", type=click.Path(exists=True, dir_okay=False),
                     required=True),
        click.option("--xapi-ca", type=click.Path(exists=True, dir_okay=False),
                     help="CA certificate to verify an https pool master with."),
        click.option("--xapi-insecure", is_flag=True,
                     help="Do not verify the https pool master's certificate."),
    )):
        f = option(f)
    return f


def _describe(record: dict) -> str:
    if record["protocol"] == "pssl":
        return "protocol pssl (the hosts listen with SSL on port 6640, the controller connects)"
    return (f"protocol ssl, {record['address']}:{record['port']} (the hosts connect out to "
            "that address)")


@click.command("register")
@_xapi_options
@click.option("--protocol", type=click.Choice(["pssl", "ssl"]), default="pssl",
              show_default=True,
              help="pssl: each host's OVSDB listens with SSL on 6640 and netctl connects; "
              "ssl: each host connects out to ADDRESS:PORT.")
@click.option("--address", default="", help="With --protocol ssl: where the hosts connect.")
@click.option("--port", type=int, default=0, help="With --protocol ssl (xapi's default 6632).")
def register(xapi_url: str, username: str, password_file: str, xapi_ca: str | None,
             xapi_insecure: bool, protocol: str, address: str, port: int) -> None:
    """Introduce netctl as the pool's SDN controller (xapi's SDN_controller)."""
    if protocol == "pssl" and (address or port):
        raise click.ClickException("--address and --port go with --protocol ssl only (with "
                                   "pssl the hosts listen and netctl connects)")
    if protocol == "ssl" and not address:
        raise click.ClickException("--protocol ssl needs --address: where the hosts connect")
    session = _session(xapi_url, username, password_file, xapi_ca, xapi_insecure)
    x = session.xenapi
    try:
        existing = x.SDN_controller.get_all_records()
        for record in existing.values():
            same = record["protocol"] == protocol and (
                protocol == "pssl" or (record["address"], int(record["port"])) ==
                (address, port or 6632))
            if same:
                click.echo(f"already registered: {_describe(record)} (SDN_controller "
                           f"{record['uuid']}); nothing changed")
                return
            raise click.ClickException(
                f"the pool already has an SDN controller: {_describe(record)} (SDN_controller "
                f"{record['uuid']}); `netctl unregister` forgets it first, if it is not in use")
        ref = x.SDN_controller.introduce(protocol, address, port)
        record = x.SDN_controller.get_record(ref)
    except XenAPI.Failure as exc:
        raise click.ClickException(f"xapi refused: {exc.details}") from None
    finally:
        session.xenapi.session.logout()
    click.echo(f"registered: {_describe(record)}; SDN_controller {record['uuid']}")
    click.echo("xapi now runs openvswitch-config-update on every host: "
               + ("`ovs-vsctl set-ssl <xapi-ssl.pem> <xapi-ssl.pem> "
                  "/etc/stunnel/certs/sdn-controller-ca.pem -- set-manager pssl:6640` and "
                  "TCP 6640 opened in dom0's firewall"
                  if protocol == "pssl" else
                  f"`ovs-vsctl --bootstrap set-ssl ... -- set-manager "
                  f"ssl:{record['address']}:{record['port']}`")
               + "; the bridges' fail_mode follows vswitch-controller-fail-mode.")
    click.echo(LOCKING_NOTE)


@click.command("unregister")
@_xapi_options
@click.option("--config", "config_file", type=click.Path(dir_okay=False),
              default="/etc/netctl/netctl.yaml", show_default=True,
              help="netctl run's configuration: how to reach the hosts' OVSDB (ovsdb.ssl).")
@click.option("--force", is_flag=True,
              help="Forget the controller even where a host's manager could not be removed "
              "(xapi then resets that host's OVS and its flows are flushed).")
def unregister(xapi_url: str, username: str, password_file: str, xapi_ca: str | None,
               xapi_insecure: bool, config_file: str, force: bool) -> None:
    """Forget the pool's SDN controller; the dataplane stays as it is.

    Each host's OVSDB manager is removed first (netctl.service.detach): where xapi's plugin
    still finds one it runs `ovs-vsctl emer-reset`, which flushes the flows."""
    from netctl.model import Host, SDNController
    from netctl.service.config import ConfigError, load
    from netctl.service.detach import detach

    try:
        config = load(config_file if Path(config_file).exists() else None)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    session = _session(xapi_url, username, password_file, xapi_ca, xapi_insecure)
    x = session.xenapi
    try:
        records = x.SDN_controller.get_all_records()
        if not records:
            click.echo("no SDN controller registered; nothing changed")
            return
        ref, record = next(iter(records.items()))
        controller = SDNController(ref, record["uuid"], record["protocol"], record["address"],
                                   int(record["port"]))
        hosts = [Host(r, h["uuid"], h["name_label"], address=h["address"])
                 for r, h in x.host.get_all_records().items()]
        failed = []
        for result in detach(config, hosts, controller):
            click.echo(f"host {result.host}: {result.detail}")
            if not result.ok:
                failed.append(result.host)
        if failed and not force:
            raise click.ClickException(
                f"not forgotten: the OVSDB manager of {', '.join(failed)} could not be "
                "removed, and xapi would reset their OVS (flushing their flows); fix that, "
                "or --force")
        x.SDN_controller.forget(ref)
        click.echo(f"forgotten: {_describe(record)} (SDN_controller {record['uuid']})")
    except XenAPI.Failure as exc:
        raise click.ClickException(f"xapi refused: {exc.details}") from None
    finally:
        session.xenapi.session.logout()
    click.echo("netctl's OVSDB sessions end. Bridges, ports, flows and OpenFlow sessions stay "
               "as they are (xapi's plugin set the bridges' fail_mode from "
               "vswitch-controller-fail-mode); VIFs can be set 'locked' through xapi again.")


@click.group("pki")
def pki() -> None:
    """Certificates for an SSL-attached pool: a CA, netctl's certificate, the hosts'."""


@pki.command("init")
@click.option("--dir", "directory", type=click.Path(file_okay=False), default="/etc/netctl/pki",
              show_default=True)
@click.option("--name", "names", multiple=True,
              help="An address or DNS name the hosts reach netctl by (repeat).")
@click.option("--ca-cert", type=click.Path(exists=True, dir_okay=False),
              help="Use the operator's CA (with --ca-key) instead of making one.")
@click.option("--ca-key", type=click.Path(exists=True, dir_okay=False))
def pki_init(directory: str, names: tuple[str, ...], ca_cert: str | None,
             ca_key: str | None) -> None:
    """Make (or take) the CA and netctl's certificate; print which file goes where."""
    d = Path(directory)
    try:
        issued = pki_files.init(d, names, Path(ca_cert) if ca_cert else None,
                                Path(ca_key) if ca_key else None)
    except pki_files.PkiError as exc:
        raise click.ClickException(str(exc)) from None
    for path in issued.files:
        click.echo(f"wrote {path}")
    click.echo(f"""
netctl's configuration (ovsdb.ssl, and openflow.ssl for OpenFlow over TLS):
  ssl: {{private_key: {d / pki_files.CTL_KEY},
        certificate: {d / pki_files.CTL_CERT},
        ca_cert: {d / pki_files.CA_CERT}}}
on every host: {d / pki_files.CA_CERT} -> /etc/stunnel/certs/sdn-controller-ca.pem
  (the CA each host's OVSDB checks netctl's certificate against);
each host's own certificate must be signed by this CA: `netctl pki host NAME` makes one,
  to be installed as the host's server certificate (`xe host-server-certificate-install`,
  which writes /etc/xensource/xapi-ssl.pem).""")


@pki.command("host")
@click.argument("name")
@click.option("--dir", "directory", type=click.Path(file_okay=False), default="/etc/netctl/pki",
              show_default=True)
@click.option("--name", "names", multiple=True,
              help="The host's address or DNS name (repeat; default: NAME).")
def pki_host(name: str, directory: str, names: tuple[str, ...]) -> None:
    """A host's key and certificate (one PEM, the form of xapi-ssl.pem) signed by the CA."""
    try:
        issued = pki_files.host(Path(directory), name, names)
    except pki_files.PkiError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"wrote {issued.files[0]}: {name}'s key and certificate; install it as the "
               "host's server certificate (`xe host-server-certificate-install`, "
               "/etc/xensource/xapi-ssl.pem)")
