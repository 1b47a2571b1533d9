"""xapi records (as the XenAPI client returns them) -> `netctl.model` objects.

Why a separate module: the model must not know the wire. Over XML-RPC ints arrive as decimal
strings (`'1500'`), over JSON-RPC as numbers; both become Python ints here. Field names are
lower-cased to the model's names (`MAC` -> `mac`, `VLAN_master_of` -> `vlan_master_of`).

`FIELDS` lists, per xapi class, the record fields the converters read, and `project` cuts a
record down to them. A xapi record carries every datamodel field (a VM ~100 of them, netctl
reads 9): the sync keeps only the projection, so a 64-host x 1000-VIF pool costs what the
model needs, not what xapi stores. `tests/xapi/test_convert.py` checks that the converters
read nothing outside `FIELDS`.

The helpers take the common case first (a JSON int is already an int, most maps are empty):
a full sync converts ~100k records, so per-field work is what its time is made of.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from netctl.model import (
    EMPTY,
    NULL_REF,
    PIF,
    VIF,
    VLAN,
    VM,
    Bond,
    FrozenMap,
    Host,
    Network,
    Pool,
    PoolState,
    SDNController,
    Tunnel,
    XapiObject,
)

Record = Mapping[str, Any]

# The fields each converter reads, by xapi class name (host also reads its host_metrics).
FIELDS: dict[str, tuple[str, ...]] = {
    "pool": ("uuid", "name_label", "master", "other_config", "vswitch_controller",
             "igmp_snooping_enabled"),
    "host": ("uuid", "name_label", "hostname", "address", "enabled", "control_domain",
             "software_version", "other_config", "metrics"),
    "host_metrics": ("live",),
    "network": ("uuid", "name_label", "bridge", "MTU", "managed", "default_locking_mode",
                "other_config", "purpose", "tags"),
    "PIF": ("uuid", "device", "host", "network", "MAC", "MTU", "VLAN", "physical",
            "currently_attached", "management", "managed", "disallow_unplug",
            "ip_configuration_mode", "IP", "netmask", "gateway", "DNS",
            "ipv6_configuration_mode", "IPv6", "ipv6_gateway", "primary_address_type",
            "bond_master_of", "bond_slave_of", "VLAN_master_of", "VLAN_slave_of",
            "tunnel_access_PIF_of", "tunnel_transport_PIF_of", "sriov_physical_PIF_of",
            "sriov_logical_PIF_of", "properties", "other_config"),
    "Bond": ("uuid", "master", "slaves", "mode", "properties", "primary_slave", "links_up",
             "auto_update_mac", "other_config"),
    "VLAN": ("uuid", "tagged_PIF", "untagged_PIF", "tag", "other_config"),
    "tunnel": ("uuid", "access_PIF", "transport_PIF", "protocol", "status", "other_config"),
    "VIF": ("uuid", "device", "network", "VM", "MAC", "MTU", "currently_attached",
            "locking_mode", "ipv4_allowed", "ipv6_allowed", "trunks", "qos_algorithm_type",
            "qos_algorithm_params", "other_config"),
    "VM": ("uuid", "name_label", "power_state", "resident_on", "domid", "is_control_domain",
           "is_a_template", "is_a_snapshot", "other_config"),
    "SDN_controller": ("uuid", "protocol", "address", "port"),
}


def project(cls: str, record: Record) -> dict[str, Any]:
    """`record` cut to the fields netctl reads (`FIELDS[cls]`); converts to the same object."""
    return {k: record[k] for k in FIELDS[cls] if k in record}


def _int(value: Any, default: int = 0) -> int:
    if type(value) is int:
        return value
    if value is None or value == "":
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _bool(value: Any) -> bool:
    if value is True or value is False:
        return value
    if isinstance(value, str):
        return value.lower() == "true"
    return bool(value)


def _map(value: Any) -> FrozenMap:
    if not value:
        return EMPTY
    return FrozenMap({str(k): str(v) for k, v in value.items()})


def _strs(value: Any) -> tuple[str, ...]:
    if not value:
        return ()
    return tuple(str(v) for v in value)


def pool(ref: str, r: Record) -> Pool:
    return Pool(ref=ref, uuid=r["uuid"], name_label=r.get("name_label", ""),
                master=r.get("master", NULL_REF), other_config=_map(r.get("other_config")),
                vswitch_controller=r.get("vswitch_controller", ""),
                igmp_snooping_enabled=_bool(r.get("igmp_snooping_enabled", False)))


def host(ref: str, r: Record, metrics: Record | None = None) -> Host:
    """A host; `metrics` is its host_metrics record (for `live`), when known."""
    live = _bool(metrics.get("live", True)) if metrics is not None else True
    return Host(ref=ref, uuid=r["uuid"], name_label=r.get("name_label", ""),
                hostname=r.get("hostname", ""), address=r.get("address", ""),
                enabled=_bool(r.get("enabled", True)), live=live,
                control_domain=r.get("control_domain", NULL_REF),
                software_version=_map(r.get("software_version")),
                other_config=_map(r.get("other_config")))


def network(ref: str, r: Record) -> Network:
    return Network(ref=ref, uuid=r["uuid"], name_label=r.get("name_label", ""),
                   bridge=r.get("bridge", ""), mtu=_int(r.get("MTU"), 1500),
                   managed=_bool(r.get("managed", True)),
                   default_locking_mode=r.get("default_locking_mode", "unlocked"),
                   other_config=_map(r.get("other_config")), purpose=_strs(r.get("purpose")),
                   tags=_strs(r.get("tags")))


def pif(ref: str, r: Record) -> PIF:
    return PIF(
        ref=ref, uuid=r["uuid"], device=r.get("device", ""), host=r.get("host", NULL_REF),
        network=r.get("network", NULL_REF), mac=r.get("MAC", ""), mtu=_int(r.get("MTU"), 1500),
        vlan=_int(r.get("VLAN"), -1), physical=_bool(r.get("physical")),
        currently_attached=_bool(r.get("currently_attached")),
        management=_bool(r.get("management")), managed=_bool(r.get("managed", True)),
        disallow_unplug=_bool(r.get("disallow_unplug")),
        ip_configuration_mode=r.get("ip_configuration_mode", "None"), ip=r.get("IP", ""),
        netmask=r.get("netmask", ""), gateway=r.get("gateway", ""), dns=r.get("DNS", ""),
        ipv6_configuration_mode=r.get("ipv6_configuration_mode", "None"),
        ipv6=_strs(r.get("IPv6")), ipv6_gateway=r.get("ipv6_gateway", ""),
        primary_address_type=r.get("primary_address_type", "IPv4"),
        bond_master_of=_strs(r.get("bond_master_of")),
        bond_slave_of=r.get("bond_slave_of", NULL_REF),
        vlan_master_of=r.get("VLAN_master_of", NULL_REF),
        vlan_slave_of=_strs(r.get("VLAN_slave_of")),
        tunnel_access_pif_of=_strs(r.get("tunnel_access_PIF_of")),
        tunnel_transport_pif_of=_strs(r.get("tunnel_transport_PIF_of")),
        sriov_physical_pif_of=_strs(r.get("sriov_physical_PIF_of")),
        sriov_logical_pif_of=_strs(r.get("sriov_logical_PIF_of")),
        properties=_map(r.get("properties")), other_config=_map(r.get("other_config")))


def bond(ref: str, r: Record) -> Bond:
    return Bond(ref=ref, uuid=r["uuid"], master=r.get("master", NULL_REF),
                slaves=_strs(r.get("slaves")), mode=r.get("mode", "balance-slb"),
                properties=_map(r.get("properties")),
                primary_slave=r.get("primary_slave", NULL_REF), links_up=_int(r.get("links_up")),
                auto_update_mac=_bool(r.get("auto_update_mac", True)),
                other_config=_map(r.get("other_config")))


def vlan(ref: str, r: Record) -> VLAN:
    return VLAN(ref=ref, uuid=r["uuid"], tagged_pif=r.get("tagged_PIF", NULL_REF),
                untagged_pif=r.get("untagged_PIF", NULL_REF), tag=_int(r.get("tag"), -1),
                other_config=_map(r.get("other_config")))


def tunnel(ref: str, r: Record) -> Tunnel:
    return Tunnel(ref=ref, uuid=r["uuid"], access_pif=r.get("access_PIF", NULL_REF),
                  transport_pif=r.get("transport_PIF", NULL_REF),
                  protocol=r.get("protocol", "gre"), status=_map(r.get("status")),
                  other_config=_map(r.get("other_config")))


def vif(ref: str, r: Record) -> VIF:
    return VIF(ref=ref, uuid=r["uuid"], device=str(r.get("device", "")),
               network=r.get("network", NULL_REF), vm=r.get("VM", NULL_REF),
               mac=r.get("MAC", ""), mtu=_int(r.get("MTU"), 1500),
               currently_attached=_bool(r.get("currently_attached")),
               locking_mode=r.get("locking_mode", "network_default"),
               ipv4_allowed=_strs(r.get("ipv4_allowed")),
               ipv6_allowed=_strs(r.get("ipv6_allowed")),
               trunks=_trunks(r.get("trunks")),
               qos_algorithm_type=r.get("qos_algorithm_type", ""),
               qos_algorithm_params=_map(r.get("qos_algorithm_params")),
               other_config=_map(r.get("other_config")))


def _trunks(value: Any) -> tuple[int, ...]:
    if not value:
        return ()
    return tuple(sorted(_int(t) for t in value))


def vm(ref: str, r: Record) -> VM:
    return VM(ref=ref, uuid=r["uuid"], name_label=r.get("name_label", ""),
              power_state=r.get("power_state", "Halted"),
              resident_on=r.get("resident_on", NULL_REF), domid=_int(r.get("domid"), -1),
              is_control_domain=_bool(r.get("is_control_domain")),
              is_a_template=_bool(r.get("is_a_template")),
              is_a_snapshot=_bool(r.get("is_a_snapshot")),
              other_config=_map(r.get("other_config")))


def sdn_controller(ref: str, r: Record) -> SDNController:
    return SDNController(ref=ref, uuid=r["uuid"], protocol=r.get("protocol", "ssl"),
                         address=r.get("address", ""), port=_int(r.get("port")))


# xapi class name -> converter (host needs its metrics: see `host`)
CONVERTERS = {
    "pool": pool, "network": network, "PIF": pif, "Bond": bond, "VLAN": vlan,
    "tunnel": tunnel, "VIF": vif, "VM": vm, "SDN_controller": sdn_controller,
}


def to_model(cls: str, ref: str, record: Record,
             host_metrics: Mapping[str, Record] | None = None) -> XapiObject:
    """One xapi record as a model object (`cls` is the xapi class name, e.g. "PIF")."""
    if cls == "host":
        metrics = (host_metrics or {}).get(record.get("metrics", NULL_REF))
        return host(ref, record, metrics)
    return CONVERTERS[cls](ref, record)


STATE_FIELD = {"host": "hosts", "network": "networks", "PIF": "pifs", "Bond": "bonds",
               "VLAN": "vlans", "tunnel": "tunnels", "VIF": "vifs", "VM": "vms",
               "SDN_controller": "sdn_controllers"}


def state_from_records(records: Mapping[str, Mapping[str, Record]]) -> PoolState:
    """A whole PoolState from `{xapi class: {ref: record}}` (e.g. every get_all_records)."""
    metrics = records.get("host_metrics", {})
    parts: dict[str, Any] = {}
    for cls, name in STATE_FIELD.items():
        parts[name] = {ref: to_model(cls, ref, rec, metrics)
                       for ref, rec in records.get(cls, {}).items()}
    pools = records.get("pool", {})
    first = next(iter(pools.items()), None)
    return PoolState(pool=pool(*first) if first else None, **parts)
