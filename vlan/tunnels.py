"""Cross-host private networks: tunnel keys and the full mesh of tunnel ports.

xapi's tunnelling design leaves both to the controller. The key of a network is a pure function
of the pool: the key the controller already wrote into `tunnel.status:key` (when the network's
tunnels agree on one), else one derived from the network's uuid, so a restarted netctl (or a
second one) picks the same key without any stored state. Keys are unique pool-wide; a collision
of derived keys is resolved by probing upwards in the order of network uuids.

Keys are 24-bit (1..16777215) so the same key is valid as a VXLAN VNI and as a GRE key.
"""

from __future__ import annotations

import functools
import hashlib

from netctl.model import PIF, Network, PoolState, Tunnel

KEY_MIN, KEY_MAX = 1, (1 << 24) - 1


def derived_key(network_uuid: str) -> int:
    digest = hashlib.sha256(network_uuid.encode()).digest()
    return int.from_bytes(digest[:8], "big") % (KEY_MAX - KEY_MIN + 1) + KEY_MIN


def tunnel_networks(state: PoolState) -> dict[str, tuple[Tunnel, ...]]:
    """network ref -> its tunnels (one per host), for networks that have tunnels."""
    out: dict[str, list[Tunnel]] = {}
    for tun in state.tunnels.values():
        access = state.pifs.get(tun.access_pif)
        if access is not None and access.network in state.networks:
            out.setdefault(access.network, []).append(tun)
    return {k: tuple(sorted(v, key=lambda t: t.uuid)) for k, v in out.items()}


def _status_key(tunnels: tuple[Tunnel, ...]) -> int | None:
    keys = {t.status.get("key", "") for t in tunnels} - {""}
    if len(keys) != 1:
        return None
    raw = keys.pop()
    return int(raw) if raw.isdigit() and KEY_MIN <= int(raw) <= KEY_MAX else None


def allocate_tunnel_keys(state: PoolState) -> dict[str, int]:
    """network ref -> tunnel key, for every network with tunnels (see the module docstring)."""
    nets = tunnel_networks(state)
    order = sorted(nets, key=lambda ref: state.networks[ref].uuid)
    keys: dict[str, int] = {}
    taken: set[int] = set()
    for ref in order:
        key = _status_key(nets[ref])
        if key is not None and key not in taken:
            keys[ref] = key
            taken.add(key)
    for ref in order:
        if ref in keys:
            continue
        key = derived_key(state.networks[ref].uuid)
        while key in taken:
            key = KEY_MIN if key == KEY_MAX else key + 1
        keys[ref] = key
        taken.add(key)
    return keys


def tunnel_port_name(protocol: str, network: Network, peer_host_uuid: str) -> str:
    """A port name unique on the host (<= 15 characters, the Linux limit) and stable: it depends
    only on the protocol, the network and the peer host."""
    return tunnel_port_name_for(protocol, network.uuid, peer_host_uuid)


@functools.lru_cache(maxsize=1 << 16)
def tunnel_port_name_for(protocol: str, network_uuid: str, peer_host_uuid: str) -> str:
    digest = hashlib.sha1(f"{network_uuid}/{peer_host_uuid}".encode()).hexdigest()[:10]
    return f"{'gre' if protocol == 'gre' else 'vxl'}{digest}"


def endpoint(state: PoolState, tun: Tunnel) -> tuple[PIF, PIF] | None:
    """(access PIF, transport PIF) of a tunnel whose two PIFs are plugged and whose transport
    has an address in its primary family (`PIF.primary_address`): the tunnels that take part
    in the mesh."""
    access = state.pifs.get(tun.access_pif)
    transport = state.pifs.get(tun.transport_pif)
    if access is None or transport is None:
        return None
    if not (access.currently_attached and transport.currently_attached
            and transport.primary_address):
        return None
    return access, transport
