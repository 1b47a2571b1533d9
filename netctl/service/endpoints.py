"""Where `netctl run` reaches each host's OVSDB: its configuration first, then the pool.

A pool attaches its controller through xapi (`SDN_controller.introduce`, see `netctl
register`), and xapi's `openvswitch-config-update` plugin sets every host's OVSDB manager
accordingly: protocol `pssl` makes the host listen with SSL on port 6640 (netctl connects to
`ssl:<host.address>:6640`); protocol `ssl` makes the host connect out to the controller's
address and port. With no controller registered the endpoint is `tcp:<host.address>:6640`
(a host someone opened by hand, the lab's default). `ovsdb.endpoint` or `ovsdb.hosts` in the
configuration override all of this.

SSL is never downgraded: a pool that asks for it gets it, or a clear error naming the host.
"""

from __future__ import annotations

from netctl.model import Host, SDNController
from netctl.model.hostport import join_host_port
from netctl.service.config import Config
from netctl.sinks.ovsdb_relay import HostRelays

PSSL_PORT = 6640  # the port openvswitch-config-update opens for `pssl:6640`


class EndpointError(ValueError):
    """The host cannot be reached the way the pool asks (said once, per host, in /status)."""


def join(address: str, port: int) -> str:
    """ADDRESS:PORT as OVS spells it: an IPv6 address in brackets."""
    return join_host_port(address, port)


def ovsdb_endpoint(config: Config, host: Host, controller: SDNController | None,
                   relays: HostRelays | None = None) -> str:
    """The endpoint of `host`'s OVSDB (raises EndpointError when there is none to use).
    `relays`: where hosts that connect to netctl are taken (protocol `ssl`)."""
    explicit = config.endpoint(host.name_label, host.uuid, host.address)
    if explicit is not None:
        return explicit
    if not host.address:
        raise EndpointError(f"host {host.name_label or host.uuid}: xapi gives it no address")
    if controller is None:
        return f"tcp:{join(host.address, PSSL_PORT)}"
    if controller.protocol == "pssl":
        if config.ssl is None:
            raise EndpointError(
                "the pool's SDN controller (protocol pssl) has the hosts listen with SSL, and "
                "ovsdb.ssl (private_key, certificate, ca_cert) is not configured: not "
                "connecting over plain TCP (`netctl pki init`, docs/deploy.md)")
        return f"ssl:{join(host.address, PSSL_PORT)}"
    if config.ssl is None:
        raise EndpointError(
            f"the pool's SDN controller (protocol ssl, {controller.address}:{controller.port}) "
            "has the hosts connect with SSL, and ovsdb.ssl (private_key, certificate, "
            "ca_cert) is not configured: not taking them (`netctl pki init`, docs/deploy.md)")
    if relays is None:
        raise EndpointError(f"not listening on port {controller.port} for the hosts")
    return relays.endpoint(host.uuid)
