"""Before the pool forgets netctl: take each host's OVSDB manager away, so xapi leaves OVS be.

When an `SDN_controller` is forgotten, xapi's `openvswitch-config-update` runs on every host,
and where it still finds an OVSDB manager it runs `ovs-vsctl emer-reset`: every bridge loses
its OpenFlow controllers and fail mode, and a bridge left without controllers in standalone
mode gets its flow table flushed — the VMs lose their network. Where it finds no manager it
only sets the bridges' fail mode. So `netctl unregister` first removes the managers itself,
over the same SSL sessions `netctl run` uses; the bridges keep their flows and their
controllers (netctl's OpenFlow sessions stay up) and only the OVSDB side is detached.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from netctl.model import Host, SDNController
from netctl.service.config import Config
from netctl.service.endpoints import EndpointError, ovsdb_endpoint
from netctl.sinks.ovsdb import OvsdbError, SslFiles, check_tls_peer, remove_managers

LOG = logging.getLogger("netctl.detach")


@dataclass(frozen=True)
class Detached:
    host: str
    ok: bool
    detail: str


def detach(config: Config, hosts: list[Host], controller: SDNController) -> list[Detached]:
    """Remove every OVSDB manager of each host (reached as `netctl run` reaches it), all
    hosts at once (a pool of 64 is not asked one after the other)."""
    with ThreadPoolExecutor(max_workers=16) as pool:
        return list(pool.map(lambda h: _detach_one(config, h, controller), hosts))


def _detach_one(config: Config, host: Host, controller: SDNController) -> Detached:
    name = host.name_label or host.uuid
    try:
        endpoint = ovsdb_endpoint(config, host, controller)
    except EndpointError as exc:
        return Detached(name, False, str(exc))
    ssl = SslFiles(**config.ssl) if config.ssl else None
    timeout = min(config.ovsdb_timeout, 10.0)
    try:
        targets = remove_managers(endpoint, ssl, timeout)
    except OvsdbError as exc:
        return Detached(name, False, str(exc))
    # the manager netctl came through is gone when that way in is closed
    try:
        check_tls_peer(endpoint, ssl, timeout)  # type: ignore[arg-type] - SSL, checked above
    except OvsdbError:
        return Detached(name, True, f"managers {', '.join(targets) or 'all'} removed")
    return Detached(name, False, f"{endpoint} still answers: its manager was not removed")
