"""A bridge's flow export (NetFlow, IPFIX, sFlow) from the pool's and its network's intent: pure.

Where the intent is (keys declared in `netctl.model.keys`, syntax in `netctl.model.export`):
`pool.other_config` exports from every bridge netctl builds on every host; a network's
`other_config` decides for that network's own bridge, key by key: a key the network sets
replaces the pool's (its `*-targets` may start with `+` to add collectors to the pool's, and
`none` turns that kind of export off on its bridge), a key it does not set (or sets to a
value netctl cannot read: a Problem) leaves the pool's. A VLAN network has no bridge of its
own (it is a fake bridge, a port of its parent's bridge), and OVS samples per bridge: the
parent network's keys decide for the frames of all its VLANs (`vlan_network_problems`
tells an operator who set keys on a VLAN network).

Why per bridge and not per port: OVS's NetFlow, bridge IPFIX and sFlow are Bridge columns (a
bridge's records name the datapath's port numbers: NetFlow and IPFIX `ingressInterface`, sFlow
`input`). The defaults are OVS's own (the `*_DEFAULT` constants below), written out so that
/status shows what OVS does and an OVS upgrade cannot change them silently.
"""

from __future__ import annotations

from netctl.model import Network, Pool, Problem
from netctl.model.export import (
    BridgeExport,
    IpfixExport,
    NetFlowExport,
    SflowExport,
    Targets,
)
from netctl.model.keys import (
    EXPORT_KEYS,
    IPFIX_ACTIVE_TIMEOUT,
    IPFIX_SAMPLING,
    IPFIX_TARGETS,
    NETFLOW_ACTIVE_TIMEOUT,
    NETFLOW_TARGETS,
    SFLOW_AGENT,
    SFLOW_HEADER,
    SFLOW_POLLING,
    SFLOW_SAMPLING,
    SFLOW_TARGETS,
    Key,
    first_read,
)

# OVS's defaults (vswitchd/vswitch.xml, ofproto/ofproto-dpif-sflow.c, ofproto-dpif-ipfix.c)
IPFIX_SAMPLING_DEFAULT = 400
SFLOW_SAMPLING_DEFAULT = 400
SFLOW_POLLING_DEFAULT = 30
SFLOW_HEADER_DEFAULT = 128


def targets(key: Key, pool: Pool | None, network: Network | None) -> tuple[str, ...]:
    """The collectors of one kind for a network's bridge: the network's list, the pool's, or
    both when the network's starts with `+`; a list netctl cannot read is passed over."""
    base: Targets = (key.read(pool) if pool is not None else None) or Targets()
    own: Targets | None = key.read(network) if network is not None else None
    if own is None:
        return base.targets
    if own.add:
        return tuple(sorted(set(base.targets) | set(own.targets)))
    return own.targets


def _setting(key: Key, pool: Pool | None, network: Network | None, default: int | str
             ) -> int | str:
    value = first_read(key, (network, pool))
    return default if value is None else value


def bridge_export(pool: Pool | None, network: Network | None) -> BridgeExport:
    """What the bridge of `network` (None: a bridge of no network's) exports, and where."""
    netflow = targets(NETFLOW_TARGETS, pool, network)
    ipfix = targets(IPFIX_TARGETS, pool, network)
    sflow = targets(SFLOW_TARGETS, pool, network)
    return BridgeExport(
        netflow=NetFlowExport(netflow, int(_setting(NETFLOW_ACTIVE_TIMEOUT, pool, network, 0)))
        if netflow else None,
        ipfix=IpfixExport(ipfix, int(_setting(IPFIX_SAMPLING, pool, network,
                                               IPFIX_SAMPLING_DEFAULT)),
                          int(_setting(IPFIX_ACTIVE_TIMEOUT, pool, network, 0)))
        if ipfix else None,
        sflow=SflowExport(sflow, int(_setting(SFLOW_SAMPLING, pool, network,
                                              SFLOW_SAMPLING_DEFAULT)),
                          int(_setting(SFLOW_POLLING, pool, network, SFLOW_POLLING_DEFAULT)),
                          int(_setting(SFLOW_HEADER, pool, network, SFLOW_HEADER_DEFAULT)),
                          str(_setting(SFLOW_AGENT, pool, network, "")))
        if sflow else None)


def vlan_network_problems(network: Network, parent: Network) -> list[Problem]:
    """A VLAN network that sets export keys: they are not read (OVS exports per bridge, and
    the VLAN's frames cross its parent's), which an operator must hear rather than guess."""
    return [Problem("network", network.ref, network.uuid, network.name_label or network.uuid,
                    key.field, f"not read: network {network.name_label or network.uuid} is a "
                    f"VLAN on bridge {parent.bridge}, and OVS exports flows per bridge; set it "
                    f"on network {parent.name_label or parent.uuid}, whose keys decide the "
                    "export of all its VLANs")
            for key in EXPORT_KEYS if key.raw(network) is not None]
