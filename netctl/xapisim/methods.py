"""The networking methods with xapi's validations, side effects and error codes (spec §3).

Each method checks everything first and writes only when every check passed, so a refused
call changes nothing (xapi's own order of checks is kept where the spec gives it). The whole
call runs under the store lock, so no other call interleaves with its writes.

Known simplifications, on purpose: Bond.create moves VLANs and tunnels of the members to the
master but not VIFs; no networkd, so `PIF.plug` cannot fail on a real device; VM memory and
placement are not modelled (VM.start picks the affinity host, else the master).
"""

from __future__ import annotations

import ipaddress
import random
import re
import time
import uuid as uuidlib
from collections.abc import Callable
from typing import Any

from netctl.xapisim.codec import DateTime
from netctl.xapisim.errors import XapiError
from netctl.xapisim.schema import NULL_REF, coerce
from netctl.xapisim.store import Store, new_ref

MAC_RE = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")
RESERVED_BRIDGE_PREFIXES = ("xen", "xapi", "vif", "tap", "eth")
BOND_MODES = "balance-slb|active-backup|lacp"
LACP_DEFAULTS = {"hashing_algorithm": "tcpudp_ports", "lacp-time": "slow",
                 "lacp-fallback-ab": "true"}
VLAN_PIF_MAC = "fe:ff:ff:ff:ff:ff"

_REGISTRY: list[tuple[str, tuple[str, ...], int, bool, Callable[..., Any]]] = []


def api(name: str, params: str = "", optional: int = 0, has_async: bool = True
        ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register `fn(sim, *args)` as wire method `name` with the given param types. xapi
    serves an `Async.` form of every custom call unless its datamodel entry says otherwise
    (`has_async=False`, e.g. `VM.get_allowed_VIF_devices`, `task.create`)."""
    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        _REGISTRY.append((name, tuple(params.split()), optional, has_async, fn))
        return fn
    return deco


def register(sim: Any) -> None:
    """Serve every method of this module on `sim` (a `netctl.xapisim.sim.Simulator`)."""
    for name, params, optional, has_async, fn in _REGISTRY:
        def bound(session: Any, *args: Any, _fn: Callable[..., Any] = fn) -> Any:
            with sim.store.lock:
                result = _fn(sim, *args)
            return "" if result is None else result
        sim.add(name, params, bound, optional=optional, has_async=has_async)


# --- helpers --------------------------------------------------------------------------------


def _pif(store: Store, ref: str) -> dict[str, Any]:
    return store.row("PIF", ref).fields


def _network_pif_on_host(store: Store, network: str, host: str) -> str | None:
    for ref in store.get("network", network, "PIFs"):
        if store.get("PIF", ref, "host") == host:
            return ref
    return None


def _assert_network_free_on(store: Store, network: str, host: str) -> None:
    existing = _network_pif_on_host(store, network, host)
    if existing is not None:
        raise XapiError("NETWORK_ALREADY_CONNECTED", host, existing)


def _assert_network_managed(store: Store, network: str) -> None:
    if not store.get("network", network, "managed"):
        raise XapiError("NETWORK_UNMANAGED", network)


def _assert_pif_managed(store: Store, pif: str) -> None:
    if not store.get("PIF", pif, "managed"):
        raise XapiError("PIF_UNMANAGED", pif)


def _random_mac() -> str:
    octets = [0x02] + [random.randrange(256) for _ in range(5)]
    return ":".join(f"{o:02x}" for o in octets)


def _free_device(store: Store, host: str, prefix: str) -> str:
    used = {store.get("PIF", p, "device") for p in store.get("host", host, "PIFs")}
    n = 0
    while f"{prefix}{n}" in used:
        n += 1
    return f"{prefix}{n}"


def _is_ipv4(text: str) -> bool:
    try:
        return ipaddress.ip_address(text).version == 4
    except ValueError:
        return False


def _is_ip(text: str, version: int, allow_prefix: bool = True) -> bool:
    try:
        if "/" in text:
            return allow_prefix and ipaddress.ip_network(text, strict=False).version == version
        return ipaddress.ip_address(text).version == version
    except ValueError:
        return False


def _all_hosts_ovs(store: Store) -> bool:
    return all(store.get("host", h, "software_version").get("network_backend") == "openvswitch"
               for h in store.refs("host"))


def _new_pif_metrics(store: Store) -> str:
    return store.insert("PIF_metrics", {})


# --- network --------------------------------------------------------------------------------


@api("network.create", "m*")
def network_create(sim: Any, record: dict[str, Any]) -> str:
    store = sim.store
    if "other_config" not in record:
        raise XapiError("INTERNAL_ERROR", 'Server_helpers.Dispatcher_FieldNotFound("other_config")')
    types = {"name_label": "s", "name_description": "s", "MTU": "i", "other_config": "m",
             "bridge": "s", "managed": "b", "tags": "S"}
    values = {k: coerce(t, record[k]) for k, t in types.items() if k in record}
    bridge = values.get("bridge", "")
    bridges = {store.get("network", n, "bridge") for n in store.refs("network")}
    if bridge:
        if len(bridge) > 15 or bridge.startswith(RESERVED_BRIDGE_PREFIXES):
            raise XapiError("INVALID_VALUE", "bridge", bridge)
        if bridge in bridges:
            raise XapiError("BRIDGE_NAME_EXISTS", bridge)
    else:
        n = 0
        while f"xapi{n}" in bridges:
            n += 1
        values["bridge"] = f"xapi{n}"
    if values.get("MTU", 1500) <= 0:
        values["MTU"] = 1500
    return store.insert("network", values)


@api("network.destroy", "r")
def network_destroy(sim: Any, net: str) -> None:
    store = sim.store
    row = store.row("network", net).fields
    attached = [v for v in row["VIFs"] if store.get("VIF", v, "currently_attached")]
    if attached:
        raise XapiError("NETWORK_CONTAINS_VIF", *attached)
    if row["PIFs"]:
        raise XapiError("NETWORK_CONTAINS_PIF", *row["PIFs"])
    if row["other_config"].get("is_host_internal_management_network") == "true":
        raise XapiError("CANNOT_DESTROY_SYSTEM_NETWORK", net)
    for vif in list(row["VIFs"]):
        store.delete("VIF", vif)
    store.delete("network", net)


@api("network.set_default_locking_mode", "r e:unlocked|disabled")
def network_set_default_locking_mode(sim: Any, net: str, mode: str) -> None:
    store = sim.store
    for vif in store.get("network", net, "VIFs"):
        if store.get("VIF", vif, "currently_attached"):
            raise XapiError("VIF_IN_USE", net, vif)
    store.update("network", net, default_locking_mode=mode)


@api("network.add_purpose", "r e:nbd|insecure_nbd")
def network_add_purpose(sim: Any, net: str, purpose: str) -> None:
    store = sim.store
    _assert_network_managed(store, net)
    current = store.get("network", net, "purpose")
    other = {"nbd": "insecure_nbd", "insecure_nbd": "nbd"}[purpose]
    if other in current:
        raise XapiError("NETWORK_INCOMPATIBLE_PURPOSES", purpose, other)
    if purpose not in current:
        store.update("network", net, purpose=[*current, purpose])


@api("network.remove_purpose", "r e:nbd|insecure_nbd")
def network_remove_purpose(sim: Any, net: str, purpose: str) -> None:
    current = sim.store.get("network", net, "purpose")
    if purpose in current:
        sim.store.update("network", net, purpose=[p for p in current if p != purpose])


# --- PIF ------------------------------------------------------------------------------------


def _primary_configured(row: dict[str, Any]) -> bool:
    """A tunnel's transport PIF is configured in its primary family: IPv4, or IPv6 on a PIF
    whose primary_address_type is IPv6 (an IPv6-only XCP-ng 8.3 host carries tunnels so)."""
    family = ("ipv6_configuration_mode" if row["primary_address_type"] == "IPv6"
              else "ip_configuration_mode")
    return row[family] != "None"


def _plug(store: Store, pif: str) -> None:
    """PIF.plug's checks and effects (also used by VLAN/tunnel/Bond create)."""
    row = _pif(store, pif)
    _assert_pif_managed(store, pif)
    if row["bond_slave_of"] != NULL_REF:
        raise XapiError("CANNOT_PLUG_BOND_SLAVE", pif)
    for tunnel in row["tunnel_access_PIF_of"]:
        transport = store.get("tunnel", tunnel, "transport_PIF")
        if not _primary_configured(_pif(store, transport)):
            raise XapiError("TRANSPORT_PIF_NOT_CONFIGURED", transport)
        if not _pif(store, transport)["currently_attached"]:
            _plug(store, transport)
    for bond in row["bond_master_of"]:
        for slave in store.get("Bond", bond, "slaves"):
            if _pif(store, slave)["currently_attached"]:
                store.update("PIF", slave, currently_attached=False)
    if not row["currently_attached"]:
        store.update("PIF", pif, currently_attached=True)


@api("PIF.plug", "r")
def pif_plug(sim: Any, pif: str) -> None:
    _plug(sim.store, pif)


@api("PIF.unplug", "r")
def pif_unplug(sim: Any, pif: str) -> None:
    store = sim.store
    row = _pif(store, pif)
    _assert_pif_managed(store, pif)
    if row["management"]:
        raise XapiError("PIF_IS_MANAGEMENT_INTERFACE", pif)
    if row["disallow_unplug"]:
        raise XapiError("PIF_DOES_NOT_ALLOW_UNPLUG", pif)
    for vif in store.get("network", row["network"], "VIFs"):
        vm = store.get("VIF", vif, "VM")
        if (store.get("VIF", vif, "currently_attached")
                and store.get("VM", vm, "resident_on") == row["host"]
                and store.get("VM", vm, "power_state") == "Running"):
            raise XapiError("VIF_IN_USE", row["network"], vif)
    for tunnel in row["tunnel_transport_PIF_of"]:
        access = store.get("tunnel", tunnel, "access_PIF")
        if _pif(store, access)["currently_attached"]:
            store.update("PIF", access, currently_attached=False)
    if row["currently_attached"]:
        store.update("PIF", pif, currently_attached=False)


@api("PIF.reconfigure_ip", "r e:None|DHCP|Static s s s s")
def pif_reconfigure_ip(sim: Any, pif: str, mode: str, ip: str, netmask: str, gateway: str,
                       dns: str) -> None:
    store = sim.store
    _pif(store, pif)
    _assert_pif_managed(store, pif)
    if mode == "Static":
        if not _is_ipv4(ip):
            raise XapiError("INVALID_IP_ADDRESS_SPECIFIED", "IP")
        if not _is_ipv4(netmask):
            raise XapiError("INVALID_IP_ADDRESS_SPECIFIED", "netmask")
        if gateway and not _is_ipv4(gateway):
            raise XapiError("INVALID_IP_ADDRESS_SPECIFIED", "gateway")
        store.update("PIF", pif, ip_configuration_mode=mode, IP=ip, netmask=netmask,
                     gateway=gateway, DNS=dns)
    elif mode == "DHCP":
        store.update("PIF", pif, ip_configuration_mode=mode, DNS=dns)
    else:
        store.update("PIF", pif, ip_configuration_mode=mode, IP="", netmask="", gateway="",
                     DNS="")


@api("PIF.reconfigure_ipv6", "r e:None|DHCP|Static|Autoconf s s s")
def pif_reconfigure_ipv6(sim: Any, pif: str, mode: str, ipv6: str, gateway: str,
                         dns: str) -> None:
    store = sim.store
    _pif(store, pif)
    _assert_pif_managed(store, pif)
    if mode == "Static":
        if "/" not in ipv6 or not _is_ip(ipv6, 6):
            raise XapiError("INVALID_IP_ADDRESS_SPECIFIED", "IPv6")
        if gateway and not _is_ip(gateway, 6, allow_prefix=False):
            raise XapiError("INVALID_IP_ADDRESS_SPECIFIED", "gateway")
        store.update("PIF", pif, ipv6_configuration_mode=mode, IPv6=[ipv6],
                     ipv6_gateway=gateway)
    else:
        store.update("PIF", pif, ipv6_configuration_mode=mode, IPv6=[], ipv6_gateway="")


@api("PIF.set_disallow_unplug", "r b")
def pif_set_disallow_unplug(sim: Any, pif: str, value: bool) -> None:
    sim.store.row("PIF", pif)
    sim.store.update("PIF", pif, disallow_unplug=value)


# --- Bond -----------------------------------------------------------------------------------


def _bond_properties(mode: str, props: dict[str, str]) -> dict[str, str]:
    """Validate against the mode (xapi_bond.ml requirements_of_mode) and add the defaults."""
    for key, value in props.items():
        ok = mode == "lacp" and (
            (key == "hashing_algorithm" and value in ("src_mac", "tcpudp_ports"))
            or (key == "lacp-time" and value in ("fast", "slow"))
            or (key == "lacp-aggregation-key" and re.fullmatch(r"-?\d+", value) is not None)
            or (key == "lacp-fallback-ab" and value in ("true", "false")))
        if not ok:
            raise XapiError("INVALID_VALUE", "properties", f"{key} = {value}")
    return {**LACP_DEFAULTS, **props} if mode == "lacp" else dict(props)


IP_FIELDS = ("ip_configuration_mode", "IP", "netmask", "gateway", "DNS",
             "ipv6_configuration_mode", "IPv6", "ipv6_gateway", "primary_address_type")


def _move_vlan(store: Store, vlan: str, tagged: str) -> None:
    """Re-home a VLAN on another tagged PIF (xapi re-creates it there: same tag, network)."""
    store.update("VLAN", vlan, tagged_PIF=tagged)
    untagged = store.get("VLAN", vlan, "untagged_PIF")
    if store.exists("PIF", untagged):
        store.update("PIF", untagged, device=store.get("PIF", tagged, "device"))


@api("Bond.create", f"r R s e:{BOND_MODES} m", optional=2)
def bond_create(sim: Any, network: str, members: list[str], mac: str, mode: str = "balance-slb",
                properties: dict[str, str] | None = None) -> str:
    store = sim.store
    store.row("network", network)
    members = list(dict.fromkeys(members))
    rows = {m: _pif(store, m) for m in members}
    _assert_network_managed(store, network)
    if len(members) < 2:
        raise XapiError("PIF_BOND_NEEDS_MORE_MEMBERS")
    props = _bond_properties(mode, dict(properties or {}))
    if mac and not MAC_RE.match(mac):
        raise XapiError("MAC_INVALID", mac)
    for m, row in rows.items():
        _assert_pif_managed(store, m)
        if row["bond_slave_of"] != NULL_REF:
            raise XapiError("PIF_ALREADY_BONDED", m)
        if row["VLAN_master_of"] != NULL_REF:
            raise XapiError("PIF_VLAN_EXISTS", row["device"])
        if row["tunnel_access_PIF_of"]:
            raise XapiError("IS_TUNNEL_ACCESS_PIF", m)
    host = rows[members[0]]["host"]
    if any(r["host"] != host for r in rows.values()):
        raise XapiError("PIF_CANNOT_BOND_CROSS_HOST")
    _assert_network_free_on(store, network, host)
    if len({tuple(sorted(r["properties"].items())) for r in rows.values()}) > 1:
        raise XapiError("INCOMPATIBLE_PIF_PROPERTIES")
    with_ip = [m for m, r in rows.items() if r["ip_configuration_mode"] != "None"]
    if len(with_ip) > 1:
        raise XapiError("PIF_BOND_MORE_THAN_ONE_IP")
    if len({r["primary_address_type"] for r in rows.values()}) > 1:
        raise XapiError("PIF_INCOMPATIBLE_PRIMARY_ADDRESS_TYPE", members[1])
    mgmt = [m for m, r in rows.items() if r["management"]]
    primary = (mgmt or with_ip or members)[0]
    prow = rows[primary]
    bond_ref, master = new_ref(), new_ref()
    ip_config = {k: prow[k] for k in IP_FIELDS}
    store.insert("PIF", {
        "device": _free_device(store, host, "bond"), "network": network, "host": host,
        "MAC": mac or prow["MAC"], "MTU": store.get("network", network, "MTU"), "VLAN": -1,
        "metrics": _new_pif_metrics(store), "physical": False, "currently_attached": False,
        "management": prow["management"], "properties": dict(prow["properties"]),
        **ip_config, "IPv6": prow["IPv6"] or [""],
    }, ref=master)
    store.insert("Bond", {"master": master, "mode": mode, "properties": props,
                          "primary_slave": primary, "links_up": len(members),
                          "auto_update_mac": not mac}, ref=bond_ref)
    for m in members:
        store.update("PIF", m, bond_slave_of=bond_ref)
    store.update("PIF", primary, ip_configuration_mode="None", IP="", netmask="", gateway="",
                 DNS="", ipv6_configuration_mode="None", IPv6=[], ipv6_gateway="",
                 management=False)
    for vlan in store.refs("VLAN"):
        if store.get("VLAN", vlan, "tagged_PIF") in members:
            _move_vlan(store, vlan, master)
    for tunnel in store.refs("tunnel"):
        if store.get("tunnel", tunnel, "transport_PIF") in members:
            store.update("tunnel", tunnel, transport_PIF=master)
    _plug(store, master)
    return bond_ref


@api("Bond.destroy", "r")
def bond_destroy(sim: Any, bond: str) -> None:
    store = sim.store
    row = store.row("Bond", bond).fields
    master, primary = row["master"], row["primary_slave"]
    mrow = _pif(store, master)
    slaves = list(row["slaves"])
    if primary not in slaves and slaves:
        primary = slaves[0]
    for vlan in store.refs("VLAN"):
        if store.get("VLAN", vlan, "tagged_PIF") == master:
            _move_vlan(store, vlan, primary)
    for tunnel in store.refs("tunnel"):
        if store.get("tunnel", tunnel, "transport_PIF") == master:
            store.update("tunnel", tunnel, transport_PIF=primary)
    ip_config = {k: mrow[k] for k in IP_FIELDS}
    ip_config["IPv6"] = [a for a in ip_config["IPv6"] if a]
    for s in slaves:
        store.update("PIF", s, bond_slave_of=NULL_REF, currently_attached=True)
    if primary:
        store.update("PIF", primary, management=mrow["management"], **ip_config)
    metrics = mrow["metrics"]
    store.delete("PIF", master)
    if store.exists("PIF_metrics", metrics):
        store.delete("PIF_metrics", metrics)
    store.delete("Bond", bond)


@api("Bond.set_mode", f"r e:{BOND_MODES}")
def bond_set_mode(sim: Any, bond: str, mode: str) -> None:
    store = sim.store
    props = dict(store.get("Bond", bond, "properties"))
    keep = {k: v for k, v in props.items() if mode == "lacp" and k in LACP_DEFAULTS
            or mode == "lacp" and k == "lacp-aggregation-key"}
    store.update("Bond", bond, mode=mode, properties=_bond_properties(mode, keep))


@api("Bond.set_property", "r s s")
def bond_set_property(sim: Any, bond: str, name: str, value: str) -> None:
    store = sim.store
    mode = store.get("Bond", bond, "mode")
    _bond_properties(mode, {name: value})
    props = {**store.get("Bond", bond, "properties"), name: value}
    store.update("Bond", bond, properties=props)


# --- VLAN -----------------------------------------------------------------------------------


@api("VLAN.create", "r i r")
def vlan_create(sim: Any, tagged: str, tag: int, network: str) -> str:
    store = sim.store
    trow = _pif(store, tagged)
    store.row("network", network)
    _assert_network_managed(store, network)
    _assert_pif_managed(store, tagged)
    host = trow["host"]
    _assert_network_free_on(store, network, host)
    if trow["bond_slave_of"] != NULL_REF:
        raise XapiError("CANNOT_ADD_VLAN_TO_BOND_SLAVE", tagged)
    if trow["VLAN_master_of"] != NULL_REF:
        raise XapiError("PIF_IS_VLAN", tagged)
    if trow["tunnel_access_PIF_of"]:
        raise XapiError("IS_TUNNEL_ACCESS_PIF", tagged)
    if not 0 <= tag <= 4094:
        raise XapiError("VLAN_TAG_INVALID", tag)
    for vlan in trow["VLAN_slave_of"]:
        if store.get("VLAN", vlan, "tag") == tag:
            raise XapiError("PIF_VLAN_EXISTS", trow["device"])
    for vif in store.get("network", network, "VIFs"):
        if store.get("VIF", vif, "trunks"):
            raise XapiError("NETWORK_INCOMPATIBLE_WITH_TRUNKS", network)
    vlan_ref, untagged = new_ref(), new_ref()
    store.insert("PIF", {
        "device": trow["device"], "network": network, "host": host, "MAC": VLAN_PIF_MAC,
        "MTU": trow["MTU"], "VLAN": tag, "metrics": trow["metrics"], "physical": False,
        "currently_attached": False, "VLAN_master_of": vlan_ref, "IPv6": [""],
    }, ref=untagged)
    store.insert("VLAN", {"tagged_PIF": tagged, "untagged_PIF": untagged, "tag": tag},
                 ref=vlan_ref)
    _plug(store, untagged)
    return vlan_ref


@api("VLAN.destroy", "r")
def vlan_destroy(sim: Any, vlan: str) -> None:
    store = sim.store
    untagged = store.get("VLAN", vlan, "untagged_PIF")
    if store.exists("PIF", untagged):
        if _pif(store, untagged)["VLAN_master_of"] != vlan:
            raise XapiError("PIF_IS_PHYSICAL", untagged)
        store.delete("PIF", untagged)
    store.delete("VLAN", vlan)


# --- tunnel ---------------------------------------------------------------------------------


@api("tunnel.create", "r r e:gre|vxlan", optional=1)
def tunnel_create(sim: Any, transport: str, network: str, protocol: str = "gre") -> str:
    store = sim.store
    trow = _pif(store, transport)
    store.row("network", network)
    _assert_network_managed(store, network)
    host = trow["host"]
    _assert_network_free_on(store, network, host)
    _assert_pif_managed(store, transport)
    if trow["bond_slave_of"] != NULL_REF:
        raise XapiError("CANNOT_ADD_TUNNEL_TO_BOND_SLAVE", transport)
    if trow["tunnel_access_PIF_of"]:
        raise XapiError("IS_TUNNEL_ACCESS_PIF", transport)
    if not _all_hosts_ovs(store):
        raise XapiError("OPENVSWITCH_NOT_ACTIVE")
    if not _primary_configured(trow):
        raise XapiError("TRANSPORT_PIF_NOT_CONFIGURED", transport)
    tunnel, access = new_ref(), new_ref()
    store.insert("PIF", {
        "device": _free_device(store, host, "tunnel"), "network": network, "host": host,
        "MAC": _random_mac(), "MTU": store.get("network", network, "MTU"), "VLAN": -1,
        "metrics": trow["metrics"], "physical": False, "currently_attached": False,
        "IPv6": [""],
    }, ref=access)
    store.insert("tunnel", {"access_PIF": access, "transport_PIF": transport,
                            "protocol": protocol}, ref=tunnel)
    _plug(store, access)
    return tunnel


@api("tunnel.destroy", "r")
def tunnel_destroy(sim: Any, tunnel: str) -> None:
    store = sim.store
    access = store.get("tunnel", tunnel, "access_PIF")
    store.delete("tunnel", tunnel)
    if store.exists("PIF", access):
        store.delete("PIF", access)


# --- VIF ------------------------------------------------------------------------------------

VIF_MANDATORY = ("device", "network", "VM", "MAC", "MTU", "other_config", "qos_algorithm_type",
                 "qos_algorithm_params")
LOCKING = "network_default|locked|unlocked|disabled"


def _assert_no_controller_for_locked(store: Store, vif_network: str, mode: str) -> None:
    effective = mode if mode != "network_default" else \
        store.get("network", vif_network, "default_locking_mode")
    if effective == "locked" and store.refs("SDN_controller") and _all_hosts_ovs(store):
        raise XapiError("OPERATION_NOT_ALLOWED", "A vswitch controller is active")


def _network_has_vlan_pifs(store: Store, network: str) -> bool:
    return any(store.get("PIF", p, "VLAN") != -1 for p in store.get("network", network, "PIFs"))


def _check_allowed(values: list[str], version: int, field: str) -> list[str]:
    for v in values:
        if not _is_ip(v, version):
            raise XapiError("INVALID_IP_ADDRESS_SPECIFIED", field)
    return list(dict.fromkeys(values))


@api("VIF.create", "m*")
def vif_create(sim: Any, record: dict[str, Any]) -> str:
    store = sim.store
    for key in VIF_MANDATORY:
        if key not in record:
            raise XapiError("INTERNAL_ERROR", f'Server_helpers.Dispatcher_FieldNotFound("{key}")')
    types = {"device": "s", "network": "r", "VM": "r", "MAC": "s", "MTU": "i",
             "other_config": "m", "qos_algorithm_type": "s", "qos_algorithm_params": "m",
             "currently_attached": "b", "locking_mode": "e:" + LOCKING, "ipv4_allowed": "S",
             "ipv6_allowed": "S", "trunks": "I"}
    v = {k: coerce(t, record[k]) for k, t in types.items() if k in record}
    store.row("network", v["network"])
    vm = store.row("VM", v["VM"]).fields
    device = v["device"]
    if not device.isdigit():
        raise XapiError("INVALID_DEVICE", device)
    if any(store.get("VIF", other, "device") == device for other in vm["VIFs"]):
        raise XapiError("DEVICE_ALREADY_EXISTS", device)
    autogenerated = False
    if v["MAC"] == "" and "mac_seed" in vm["other_config"]:
        v["MAC"] = _random_mac()
        autogenerated = True
    if not MAC_RE.match(v["MAC"]):
        raise XapiError("MAC_INVALID", v["MAC"])
    trunks = v.get("trunks", [])
    if trunks and _network_has_vlan_pifs(store, v["network"]):
        raise XapiError("NETWORK_INCOMPATIBLE_WITH_TRUNKS", v["network"])
    for tag in trunks:
        if not 0 <= tag <= 4094:
            raise XapiError("VLAN_TAG_INVALID", tag)
    v["ipv4_allowed"] = _check_allowed(v.get("ipv4_allowed", []), 4, "ipv4_allowed")
    v["ipv6_allowed"] = _check_allowed(v.get("ipv6_allowed", []), 6, "ipv6_allowed")
    _assert_no_controller_for_locked(store, v["network"], v.get("locking_mode",
                                                                "network_default"))
    if vm["power_state"] != "Suspended":
        v["currently_attached"] = False
    v["MAC_autogenerated"] = autogenerated
    return store.insert("VIF", v)


def _vif_vm_running(store: Store, vif: str) -> str:
    vm = store.get("VIF", vif, "VM")
    state = store.get("VM", vm, "power_state")
    if state != "Running":
        raise XapiError("VM_BAD_POWER_STATE", vm, "running", state.lower())
    if store.get("VM", vm, "is_control_domain"):
        raise XapiError("OPERATION_NOT_ALLOWED", "VIF plug/unplug is not allowed on dom0")
    return vm


@api("VIF.destroy", "r")
def vif_destroy(sim: Any, vif: str) -> None:
    store = sim.store
    row = store.row("VIF", vif).fields
    if row["currently_attached"] and store.get("VM", row["VM"], "power_state") == "Running":
        raise XapiError("OPERATION_NOT_ALLOWED", "VIF currently attached to a running VM")
    store.delete("VIF", vif)


@api("VIF.plug", "r")
def vif_plug(sim: Any, vif: str) -> None:
    store = sim.store
    store.row("VIF", vif)
    _vif_vm_running(store, vif)
    if store.get("VIF", vif, "currently_attached"):
        raise XapiError("DEVICE_ALREADY_ATTACHED", vif)
    store.update("VIF", vif, currently_attached=True)


@api("VIF.unplug", "r")
def vif_unplug(sim: Any, vif: str) -> None:
    store = sim.store
    store.row("VIF", vif)
    _vif_vm_running(store, vif)
    if not store.get("VIF", vif, "currently_attached"):
        raise XapiError("DEVICE_ALREADY_DETACHED", vif)
    store.update("VIF", vif, currently_attached=False)


@api("VIF.unplug_force", "r")
def vif_unplug_force(sim: Any, vif: str) -> None:
    vif_unplug(sim, vif)


@api("VIF.move", "r r")
def vif_move(sim: Any, vif: str, network: str) -> None:
    store = sim.store
    row = store.row("VIF", vif).fields
    store.row("network", network)
    if row["trunks"] and _network_has_vlan_pifs(store, network):
        raise XapiError("NETWORK_INCOMPATIBLE_WITH_TRUNKS", network)
    store.update("VIF", vif, network=network)


@api("VIF.set_locking_mode", f"r e:{LOCKING}")
def vif_set_locking_mode(sim: Any, vif: str, mode: str) -> None:
    store = sim.store
    row = store.row("VIF", vif).fields
    _assert_no_controller_for_locked(store, row["network"], mode)
    store.update("VIF", vif, locking_mode=mode)


def _allowed_methods(version: int) -> None:
    field = f"ipv{version}_allowed"

    @api(f"VIF.set_{field}", "r S")
    def set_(sim: Any, vif: str, values: list[str]) -> None:
        sim.store.row("VIF", vif)
        sim.store.update("VIF", vif, **{field: _check_allowed(values, version, field)})

    @api(f"VIF.add_{field}", "r s")
    def add(sim: Any, vif: str, value: str) -> None:
        current = sim.store.get("VIF", vif, field)
        _check_allowed([value], version, field)
        if value not in current:
            sim.store.update("VIF", vif, **{field: [*current, value]})

    @api(f"VIF.remove_{field}", "r s")
    def remove(sim: Any, vif: str, value: str) -> None:
        current = sim.store.get("VIF", vif, field)
        _check_allowed([value], version, field)
        if value in current:
            sim.store.update("VIF", vif, **{field: [a for a in current if a != value]})


_allowed_methods(4)
_allowed_methods(6)


def _check_trunks(store: Store, vif: str, tags: list[int]) -> None:
    for tag in tags:
        if not 0 <= tag <= 4094:
            raise XapiError("VLAN_TAG_INVALID", tag)
    if tags and _network_has_vlan_pifs(store, store.get("VIF", vif, "network")):
        raise XapiError("NETWORK_INCOMPATIBLE_WITH_TRUNKS", store.get("VIF", vif, "network"))


@api("VIF.set_trunks", "r I")
def vif_set_trunks(sim: Any, vif: str, tags: list[int]) -> None:
    sim.store.row("VIF", vif)
    _check_trunks(sim.store, vif, tags)
    sim.store.update("VIF", vif, trunks=sorted(set(tags)))


@api("VIF.add_trunks", "r i")
def vif_add_trunks(sim: Any, vif: str, tag: int) -> None:
    current = sim.store.get("VIF", vif, "trunks")
    _check_trunks(sim.store, vif, [tag])
    if tag not in current:
        sim.store.update("VIF", vif, trunks=sorted([*current, tag]))


@api("VIF.remove_trunks", "r i")
def vif_remove_trunks(sim: Any, vif: str, tag: int) -> None:
    current = sim.store.get("VIF", vif, "trunks")
    if tag in current:
        sim.store.update("VIF", vif, trunks=[t for t in current if t != tag])


# --- VM -------------------------------------------------------------------------------------

# Power states each operation is allowed in, in xapi's order (xapi_vm_lifecycle.ml
# allowed_power_states): the "expected" of VM_BAD_POWER_STATE is this list, lower-case,
# joined with ", ".
VM_OP_STATES: dict[str, tuple[str, ...]] = {
    "start": ("Halted",), "start_on": ("Halted",), "provision": ("Halted",),
    "clean_shutdown": ("Running",), "clean_reboot": ("Running",), "pool_migrate": ("Running",),
    "pause": ("Running",), "unpause": ("Paused",),
    "shutdown": ("Paused", "Suspended", "Running"),
    "hard_shutdown": ("Paused", "Suspended", "Running"),
    "hard_reboot": ("Paused", "Running"),
    "clone": ("Halted",), "copy": ("Halted",), "destroy": ("Halted", "Suspended"),
}
# What a template may do (xapi_vm_lifecycle.ml check_template); destroy too unless it is a
# default template.
TEMPLATE_OPS = {"clone", "copy", "provision"}
VIF_DEVICES = tuple(str(n) for n in range(16))  # xapi_vm_helpers.ml allowed_VIF_devices_PV


def _check_vm_op(store: Store, vm: str, op: str) -> dict[str, Any]:
    """xapi's check_operation_error for the operations served, in its order: blocked,
    power state, template, provision of a non-template, control domain."""
    row = store.row("VM", vm).fields
    reason = row["blocked_operations"].get(op)
    if reason is not None:
        raise XapiError("OPERATION_BLOCKED", vm, reason)
    states = VM_OP_STATES[op]
    if row["power_state"] not in states:
        raise XapiError("VM_BAD_POWER_STATE", vm, ", ".join(s.lower() for s in states),
                        row["power_state"].lower())
    if row["is_a_template"] and not row["is_a_snapshot"]:
        default = row["is_default_template"] or \
            row["other_config"].get("default_template", "").lower() in ("1", "true")
        if op not in TEMPLATE_OPS and not (op == "destroy" and not default):
            raise XapiError("VM_IS_TEMPLATE", vm, op)
    if op == "provision" and not row["is_a_template"]:
        raise XapiError("ONLY_PROVISION_TEMPLATE")
    if row["is_control_domain"]:
        if op == "destroy":
            raise XapiError("OPERATION_NOT_ALLOWED", "This operation is not allowed on dom0")
        if op not in ("start", "start_on"):
            raise XapiError("OPERATION_NOT_ALLOWED",
                            "This operation is not allowed on a control domain")
    return row


def _host_sees_networks(store: Store, vm: str, host: str) -> None:
    """VM_REQUIRES_NETWORK [vm, network] unless every network of the VM's VIFs can be brought
    up on `host` (xapi_network_attach_helpers.ml assert_can_see_named_networks)."""
    for vif in store.get("VM", vm, "VIFs"):
        net = store.get("VIF", vif, "network")
        nrow = store.row("network", net).fields
        if nrow["PIFs"]:
            ok = any(store.get("PIF", p, "host") == host for p in nrow["PIFs"])
        elif nrow["other_config"].get("assume_network_is_shared") == "true" or \
                not nrow["managed"]:
            ok = True
        else:  # an internal network is pinned to the host where its running VMs are
            hosts = {store.get("VM", store.get("VIF", v, "VM"), "resident_on")
                     for v in nrow["VIFs"]
                     if store.get("VM", store.get("VIF", v, "VM"), "power_state") == "Running"}
            ok = not hosts or host in hosts
        if not ok:
            raise XapiError("VM_REQUIRES_NETWORK", vm, net)


def _host_live(store: Store, host: str) -> bool:
    metrics = store.get("host", host, "metrics")
    return store.exists("host_metrics", metrics) and store.get("host_metrics", metrics, "live")


def _new_domid(sim: Any, host: str) -> int:
    """The next domain id on `host`: Xen counts up and does not reuse an id soon, so a port
    `vif<domid>.<device>` never names two domains in a row."""
    store = sim.store
    used = [store.get("VM", vm, "domid") for vm in store.get("host", host, "resident_VMs")]
    domid = max([sim.next_domid.get(host, 1), *(d + 1 for d in used)])
    sim.next_domid[host] = domid + 1
    return domid


def _boot(sim: Any, vm: str, host: str, paused: bool) -> None:
    store = sim.store
    store.update("VM", vm, power_state="Paused" if paused else "Running", resident_on=host,
                 domid=_new_domid(sim, host), scheduled_to_be_resident_on=NULL_REF)
    metrics = store.get("VM", vm, "metrics")
    if store.exists("VM_metrics", metrics):
        store.update("VM_metrics", metrics, start_time=_now(), state=[],
                     VCPUs_number=store.get("VM", vm, "VCPUs_at_startup"),
                     memory_actual=store.get("VM", vm, "memory_dynamic_max"),
                     current_domain_type=store.get("VM", vm, "domain_type"))
    for vif in store.get("VM", vm, "VIFs"):
        store.update("VIF", vif, currently_attached=True)


def _now() -> DateTime:
    return DateTime(time.strftime("%Y%m%dT%H:%M:%SZ", time.gmtime()))


@api("VM.start", "r b b")
def vm_start(sim: Any, vm: str, paused: bool, force: bool) -> None:
    """On the VM's affinity host if it can boot there, else the first live host that sees
    every network of its VIFs (master first); NO_HOSTS_AVAILABLE if none."""
    store = sim.store
    _check_vm_op(store, vm, "start")
    master = store.get("pool", store.refs("pool")[0], "master")
    affinity = store.get("VM", vm, "affinity")
    candidates = [affinity] if store.exists("host", affinity) else []
    candidates += [master] + [h for h in store.refs("host") if h != master]
    for host in candidates:
        if not _host_live(store, host):
            continue
        try:
            _host_sees_networks(store, vm, host)
        except XapiError:
            continue
        _boot(sim, vm, host, paused)
        return
    raise XapiError("NO_HOSTS_AVAILABLE")


@api("VM.start_on", "r r b b")
def vm_start_on(sim: Any, vm: str, host: str, paused: bool, force: bool) -> None:
    store = sim.store
    store.row("host", host)
    _check_vm_op(store, vm, "start_on")
    if not _host_live(store, host):
        raise XapiError("HOST_OFFLINE", host)
    _host_sees_networks(store, vm, host)
    _boot(sim, vm, host, paused)


def _halt(store: Store, vm: str) -> None:
    for vif in store.get("VM", vm, "VIFs"):
        if store.get("VIF", vif, "currently_attached"):
            store.update("VIF", vif, currently_attached=False)
    store.update("VM", vm, power_state="Halted", resident_on=NULL_REF, domid=-1)


@api("VM.shutdown", "r")
def vm_shutdown(sim: Any, vm: str) -> None:
    _check_vm_op(sim.store, vm, "shutdown")
    _halt(sim.store, vm)


@api("VM.clean_shutdown", "r")
def vm_clean_shutdown(sim: Any, vm: str) -> None:
    _check_vm_op(sim.store, vm, "clean_shutdown")
    _halt(sim.store, vm)


@api("VM.hard_shutdown", "r")
def vm_hard_shutdown(sim: Any, vm: str) -> None:
    _check_vm_op(sim.store, vm, "hard_shutdown")
    _halt(sim.store, vm)


def _reboot(sim: Any, vm: str, op: str) -> None:
    """A new domain on the same host (new domid): the VIFs come back on it."""
    store = sim.store
    _check_vm_op(store, vm, op)
    host = store.get("VM", vm, "resident_on")
    _halt(store, vm)
    _boot(sim, vm, host, paused=False)


@api("VM.clean_reboot", "r")
def vm_clean_reboot(sim: Any, vm: str) -> None:
    _reboot(sim, vm, "clean_reboot")


@api("VM.hard_reboot", "r")
def vm_hard_reboot(sim: Any, vm: str) -> None:
    _reboot(sim, vm, "hard_reboot")


@api("VM.pause", "r")
def vm_pause(sim: Any, vm: str) -> None:
    _check_vm_op(sim.store, vm, "pause")
    sim.store.update("VM", vm, power_state="Paused")


@api("VM.unpause", "r")
def vm_unpause(sim: Any, vm: str) -> None:
    _check_vm_op(sim.store, vm, "unpause")
    sim.store.update("VM", vm, power_state="Running")


@api("VM.pool_migrate", "r r m")
def vm_pool_migrate(sim: Any, vm: str, host: str, options: dict[str, str]) -> None:
    """Live migration: the VM keeps running and keeps its VIFs attached; it is resident on
    `host` with a new domain id (also for a migration to the same host, as in xapi)."""
    store = sim.store
    store.row("host", host)
    _check_vm_op(store, vm, "pool_migrate")
    if not _host_live(store, host):
        raise XapiError("HOST_OFFLINE", host)
    _host_sees_networks(store, vm, host)
    store.update("VM", vm, resident_on=host, domid=_new_domid(sim, host))


@api("VM.destroy", "r")
def vm_destroy(sim: Any, vm: str) -> None:
    store = sim.store
    row = _check_vm_op(store, vm, "destroy")
    for vif in list(row["VIFs"]):
        store.delete("VIF", vif)
    metrics = row["metrics"]
    store.delete("VM", vm)
    if store.exists("VM_metrics", metrics):
        store.delete("VM_metrics", metrics)


@api("VM.create", "m*")
def vm_create(sim: Any, record: dict[str, Any]) -> str:
    """The generated constructor's checks (every mandatory field given) plus what xapi's
    VM.create adds: a `mac_seed` in other_config, a VM_metrics object, a Halted VM, the
    domain type derived from HVM_boot_policy when `unspecified`."""
    store = sim.store
    record = dict(record)
    if isinstance(record.get("other_config"), dict):
        record["other_config"] = {"mac_seed": str(uuidlib.uuid4()), **record["other_config"]}
    if "power_state" in record:  # checked, then ignored: a new VM is Halted
        coerce("e:vm_power_state", record.pop("power_state"))
    vm = sim.generic_create("VM", record)
    if store.get("VM", vm, "domain_type") == "unspecified":
        store.update("VM", vm, domain_type="hvm" if store.get("VM", vm, "HVM_boot_policy")
                     else "pv")
    store.update("VM", vm, metrics=store.insert("VM_metrics", {}))
    return vm


def _vif_mac(seed: str, device: str) -> str:
    """A VIF MAC derived from the VM's mac_seed and the device, locally administered."""
    digest = uuidlib.uuid5(uuidlib.NAMESPACE_OID, f"{seed}/{device}").bytes
    return ":".join(f"{b:02x}" for b in (0x02, *digest[:5]))


COPIED_VM_FIELDS = (
    "name_description", "user_version", "is_a_template", "affinity", "memory_overhead",
    "memory_target", "memory_static_max", "memory_dynamic_max", "memory_dynamic_min",
    "memory_static_min", "VCPUs_max", "VCPUs_at_startup", "VCPUs_params",
    "actions_after_softreboot", "actions_after_shutdown", "actions_after_reboot",
    "actions_after_crash", "HVM_boot_policy", "HVM_boot_params", "HVM_shadow_multiplier",
    "platform", "PV_kernel", "PV_ramdisk", "PV_args", "PV_bootloader", "PV_bootloader_args",
    "PV_legacy_args", "PCI_bus", "last_boot_CPU_flags", "last_booted_record",
    "recommendations", "xenstore_data", "ha_restart_priority", "tags", "bios_strings",
    "hardware_platform_version", "has_vendor_device", "reference_label", "domain_type",
    "NVRAM")


def _clone(sim: Any, vm: str, new_name: str, op: str) -> str:
    """xapi_vm_clone.ml: a new Halted VM with the source's configuration, a new mac_seed,
    `base_template_name` when cloned from a template, and copies of its VIFs with new MACs
    (a template stays a template: `VM.provision` or `set_is_a_template false` makes it a VM)."""
    store = sim.store
    row = _check_vm_op(store, vm, op)
    other = {k: v for k, v in row["other_config"].items()
             if k not in ("default_template", "xensource_internal")}
    other["mac_seed"] = str(uuidlib.uuid4())
    if row["is_a_template"]:
        other.setdefault("base_template_name", row["name_label"])
    values = {k: row[k] for k in COPIED_VM_FIELDS}
    values.update(name_label=new_name, other_config=other, power_state="Halted",
                  metrics=store.insert("VM_metrics", {}))
    new = store.insert("VM", values)
    for vif in row["VIFs"]:
        v = store.row("VIF", vif).fields
        store.insert("VIF", {
            "device": v["device"], "network": v["network"], "VM": new,
            "MAC": _vif_mac(other["mac_seed"], v["device"]), "MAC_autogenerated": True,
            "MTU": v["MTU"], "other_config": dict(v["other_config"]),
            "qos_algorithm_type": v["qos_algorithm_type"],
            "qos_algorithm_params": dict(v["qos_algorithm_params"]),
            "locking_mode": v["locking_mode"], "ipv4_allowed": list(v["ipv4_allowed"]),
            "ipv6_allowed": list(v["ipv6_allowed"]), "trunks": list(v["trunks"])})
    return new


@api("VM.clone", "r s")
def vm_clone(sim: Any, vm: str, new_name: str) -> str:
    return _clone(sim, vm, new_name, "clone")


@api("VM.copy", "r s r")
def vm_copy(sim: Any, vm: str, new_name: str, sr: str) -> str:
    """Like clone (the lab has no disks: any SR, even an invalid reference, is accepted, as
    xapi accepts one meaning "the SRs the disks are on")."""
    return _clone(sim, vm, new_name, "copy")


@api("VM.provision", "r")
def vm_provision(sim: Any, vm: str) -> None:
    """A template becomes an installable VM (no disks to create in the lab)."""
    _check_vm_op(sim.store, vm, "provision")
    sim.store.update("VM", vm, is_a_template=False)


@api("VM.get_allowed_VIF_devices", "r", has_async=False)
def vm_get_allowed_vif_devices(sim: Any, vm: str) -> list[str]:
    used = {sim.store.get("VIF", v, "device") for v in sim.store.get("VM", vm, "VIFs")}
    return [d for d in VIF_DEVICES if d not in used]


# --- task -----------------------------------------------------------------------------------


@api("task.create", "s s", has_async=False)
def task_create(sim: Any, label: str, description: str) -> str:
    store = sim.store
    pools = store.refs("pool")
    return store.insert("task", {"name_label": label, "name_description": description,
                                 "created": _now(),
                                 "resident_on": store.get("pool", pools[0], "master")
                                 if pools else NULL_REF})


@api("task.destroy", "r", has_async=False)
def task_destroy(sim: Any, task: str) -> None:
    """A finished task goes; a pending one is marked and goes when it finishes."""
    store = sim.store
    if store.get("task", task, "status") in ("success", "failure", "cancelled"):
        store.delete("task", task)
    else:
        ops = {**store.get("task", task, "current_operations"), "task": "destroy"}
        store.update("task", task, current_operations=ops)


@api("task.cancel", "r")
def task_cancel(sim: Any, task: str) -> None:
    store = sim.store
    if store.get("task", task, "status") == "pending":
        store.update("task", task, status="cancelled", progress=1.0, finished=_now(),
                     allowed_operations=[])


def _task_setter(field: str, type_: str) -> None:
    @api(f"task.set_{field}", f"r {type_}", has_async=False)
    def set_(sim: Any, task: str, value: Any) -> None:
        sim.store.row("task", task)
        sim.store.update("task", task, **{field: value})


for _field, _type in (("status", "e:task_status_type"), ("progress", "f"), ("result", "s"),
                      ("error_info", "S"), ("resident_on", "r")):
    _task_setter(_field, _type)


# --- SDN controller, pool, host -------------------------------------------------------------


@api("SDN_controller.introduce", "e:ssl|pssl s i", optional=3)
def sdn_introduce(sim: Any, protocol: str = "ssl", address: str = "", port: int = 0) -> str:
    store = sim.store
    if not _all_hosts_ovs(store):
        raise XapiError("OPERATION_NOT_ALLOWED", "host not configured for vswitch operation")
    if store.refs("SDN_controller"):
        raise XapiError("OPERATION_NOT_ALLOWED",
                        "SDN controller has been configured. Please forget it first.")
    if protocol == "pssl":
        if address:
            raise XapiError("INVALID_VALUE", "address", address)
        if port:
            raise XapiError("INVALID_VALUE", "port", port)
    else:
        if not address:
            raise XapiError("INVALID_VALUE", "address", address)
        if not _is_ipv4(address):
            raise XapiError("INVALID_IP_ADDRESS_SPECIFIED", "address")
        if not 0 <= port <= 65535:
            raise XapiError("INVALID_VALUE", "port", port)
        port = port or 6632
    ref = store.insert("SDN_controller", {"protocol": protocol, "address": address,
                                          "port": port})
    for pool in store.refs("pool"):
        store.update("pool", pool, vswitch_controller=address)
    return ref


@api("SDN_controller.forget", "r")
def sdn_forget(sim: Any, ref: str) -> None:
    store = sim.store
    store.row("SDN_controller", ref)
    store.delete("SDN_controller", ref)
    for pool in store.refs("pool"):
        store.update("pool", pool, vswitch_controller="")


@api("pool.create_VLAN_from_PIF", "r r i")
def pool_create_vlan_from_pif(sim: Any, pif: str, network: str, tag: int) -> list[str]:
    """A pool-wide VLAN: `VLAN.create` on the PIF of `pif`'s network on every live host,
    all or nothing (xapi destroys the ones it made when one fails); returns the new PIFs."""
    store = sim.store
    base = store.get("PIF", pif, "network")
    store.row("network", network)
    tagged = [p for p in store.get("network", base, "PIFs")
              if _host_live(store, store.get("PIF", p, "host"))]
    made: list[str] = []
    try:
        for p in tagged:
            made.append(vlan_create(sim, p, tag, network))
    except XapiError:
        for vlan in reversed(made):
            vlan_destroy(sim, vlan)
        raise
    return [store.get("VLAN", vlan, "untagged_PIF") for vlan in made]


@api("pool.set_vswitch_controller", "r s")
def pool_set_vswitch_controller(sim: Any, pool: str, address: str) -> None:
    store = sim.store
    store.row("pool", pool)
    for ref in store.refs("SDN_controller"):
        sdn_forget(sim, ref)
    if address:
        sdn_introduce(sim, "ssl", address, 6632)


@api("host.get_management_interface", "r")
def host_get_management_interface(sim: Any, host: str) -> str:
    store = sim.store
    for pif in store.get("host", host, "PIFs"):
        if store.get("PIF", pif, "management"):
            return pif
    raise XapiError("INTERNAL_ERROR", "Not_found: no management interface on this host")


@api("host.call_plugin", "r s s m")
def host_call_plugin(sim: Any, host: str, plugin: str, fn: str, args: dict[str, str]) -> str:
    sim.store.row("host", host)
    if plugin == "openvswitch-config-update" and fn == "update":
        return "no change"
    raise XapiError("XENAPI_MISSING_PLUGIN", plugin)
