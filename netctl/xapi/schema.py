"""The simulator's datamodel: classes, fields, types, qualifiers, defaults and relations.

Transcribed from `reference/xapi-spec.md` Appendix A (xen-api `doc/data/xenapi.json`). The
store and the generated accessors (`get_<field>`, `set_<field>` for RW fields, map and set
add/remove, `get_record`, ...) are derived from this table, so adding a field here is all it
takes to serve it. The networking classes carry every field; host, VM and pool carry the
fields a network controller or the official client touch.

Type codes: `s` string, `i` int (64-bit, a decimal string on XML-RPC), `b` bool, `f` float,
`d` datetime, `r:<Class>` ref, `R:<Class>` ref set, `S` string set, `I` int set, `m` string map,
`M` (ref -> string) map, `e:<a|b|c>` enum, `E:<a|b>` enum set. Qualifiers: `RW`, `RO/c`
(constructor only), `RO/r` (runtime, server-maintained).
"""

from __future__ import annotations

from dataclasses import dataclass

NULL_REF = "OpaqueRef:NULL"
MANDATORY = object()  # no default: a generated `create` record must give it
EPOCH = "19700101T00:00:00Z"


@dataclass(frozen=True)
class Field:
    name: str
    type: str
    qualifier: str
    default: object = MANDATORY

    @property
    def rw(self) -> bool:
        return self.qualifier == "RW"

    @property
    def is_map(self) -> bool:
        return self.type in ("m", "M")

    @property
    def is_set(self) -> bool:
        return self.type[0] in "SRIE"

    @property
    def enum_values(self) -> tuple[str, ...]:
        return tuple(self.type[2:].split("|")) if self.type[0] in "eE" else ()

    @property
    def ref_class(self) -> str | None:
        return self.type[2:] if self.type[0] in "rR" else None

    def empty(self) -> object:
        """The default value of the field, or the type's zero value if it has none."""
        if self.default is not MANDATORY:
            return copy_value(self.default)
        return zero_value(self.type)


def zero_value(type_: str) -> object:
    code = type_[0]
    return {"s": "", "i": 0, "b": False, "f": 0.0, "d": EPOCH, "r": NULL_REF, "m": {}, "M": {},
            "e": type_[2:].split("|")[0]}.get(code, [])


def copy_value(value: object) -> object:
    if isinstance(value, list):
        return list(value)
    if isinstance(value, dict):
        return dict(value)
    return value


@dataclass(frozen=True)
class ClassDef:
    name: str  # exact DB table / wire class name ("PIF", "network", ...)
    fields: tuple[Field, ...]
    gen_constructor: bool = False  # generated create(record)/destroy
    has_name_label: bool = True

    def field(self, name: str) -> Field | None:
        return self._by_name.get(name)

    @property
    def _by_name(self) -> dict[str, Field]:
        cache = self.__dict__.get("_cache")
        if cache is None:
            cache = {f.name: f for f in self.fields}
            object.__setattr__(self, "_cache", cache)
        return cache


def _f(spec: str) -> Field:
    """'name type qualifier [default]' where default is a Python literal."""
    parts = spec.split(None, 3)
    default: object = MANDATORY
    if len(parts) == 4:
        default = eval(parts[3], {"NULL": NULL_REF, "EPOCH": EPOCH})  # noqa: S307 - our own table
    return Field(parts[0], parts[1], parts[2], default)


def _class(name: str, specs: str, **kw: bool) -> ClassDef:
    fields = tuple(_f(line.strip()) for line in specs.strip().splitlines() if line.strip())
    return ClassDef(name, fields, **kw)


POOL = _class("pool", """
    uuid s RO/r
    name_label s RW ""
    name_description s RW ""
    master r:host RO/r NULL
    default_SR s RW NULL
    other_config m RW {}
    ha_enabled b RO/r False
    tags S RW []
    gui_config m RW {}
    vswitch_controller s RO/r ""
    restrictions m RO/r {}
    igmp_snooping_enabled b RO/r False
    allowed_operations S RO/r []
    current_operations m RO/r {}
""", has_name_label=False)

HOST = _class("host", """
    uuid s RO/r
    name_label s RW ""
    name_description s RW ""
    allowed_operations S RO/r []
    current_operations m RO/r {}
    API_version_major i RO/r 2
    API_version_minor i RO/r 21
    API_version_vendor s RO/r "XenSource"
    API_version_vendor_implementation m RO/r {}
    enabled b RO/r True
    software_version m RO/c {}
    other_config m RW {}
    capabilities S RO/c []
    resident_VMs R:VM RO/r []
    PIFs R:PIF RO/r []
    hostname s RW ""
    address s RW ""
    metrics r:host_metrics RO/r NULL
    tags S RW []
    edition s RO/r "xcp-ng"
    control_domain r:VM RO/r NULL
""")

HOST_METRICS = _class("host_metrics", """
    uuid s RO/r
    memory_total i RO/r 17179869184
    memory_free i RO/r 0
    live b RO/r True
    last_updated d RO/r EPOCH
    other_config m RW {}
""", has_name_label=False)

VM = _class("VM", """
    uuid s RO/r
    allowed_operations S RO/r []
    current_operations m RO/r {}
    name_label s RW ""
    name_description s RW ""
    power_state e:Halted|Paused|Running|Suspended RO/c "Halted"
    user_version i RW 1
    is_a_template b RW False
    is_default_template b RO/r False
    resident_on r:host RO/r NULL
    scheduled_to_be_resident_on r:host RO/r NULL
    affinity r:host RW NULL
    memory_static_max i RO/c 1073741824
    memory_dynamic_max i RO/c 1073741824
    memory_dynamic_min i RO/c 1073741824
    memory_static_min i RO/c 1073741824
    VCPUs_params m RW {}
    VCPUs_max i RO/c 1
    VCPUs_at_startup i RO/c 1
    actions_after_shutdown e:destroy|restart RW "destroy"
    actions_after_reboot e:destroy|restart RW "restart"
    actions_after_crash e:destroy|restart|preserve|rename_restart RO/c "restart"
    VIFs R:VIF RO/r []
    PV_bootloader s RW ""
    PV_kernel s RW ""
    PV_ramdisk s RW ""
    PV_args s RW ""
    PV_bootloader_args s RW ""
    PV_legacy_args s RW ""
    HVM_boot_policy s RO/c ""
    HVM_boot_params m RW {}
    platform m RW {}
    PCI_bus s RW ""
    other_config m RW {}
    domid i RO/r -1
    domarch s RO/r ""
    is_control_domain b RO/r False
    is_a_snapshot b RO/r False
    recommendations s RW ""
    xenstore_data m RW {}
    tags S RW []
    blocked_operations m RW {}
    domain_type e:hvm|pv|pv_in_pvh|pvh|unspecified RO/c "pv"
""", gen_constructor=True)

NETWORK = _class("network", """
    uuid s RO/r
    name_label s RW ""
    name_description s RW ""
    allowed_operations E:attaching RO/r []
    current_operations m RO/r {}
    VIFs R:VIF RO/r []
    PIFs R:PIF RO/r []
    MTU i RW 1500
    other_config m RW
    bridge s RO/c ""
    managed b RO/c True
    blobs m RO/r {}
    tags S RW []
    default_locking_mode e:unlocked|disabled RO/r "unlocked"
    assigned_ips M RO/r {}
    purpose E:nbd|insecure_nbd RO/r []
""")

PIF = _class("PIF", """
    uuid s RO/r
    device s RO/c
    network r:network RO/c
    host r:host RO/c
    MAC s RO/c
    MTU i RO/c
    VLAN i RO/c
    metrics r:PIF_metrics RO/r NULL
    physical b RO/r False
    currently_attached b RO/r True
    ip_configuration_mode e:None|DHCP|Static RO/r "None"
    IP s RO/r ""
    netmask s RO/r ""
    gateway s RO/r ""
    DNS s RO/r ""
    bond_slave_of r:Bond RO/r NULL
    bond_master_of R:Bond RO/r []
    VLAN_master_of r:VLAN RO/r NULL
    VLAN_slave_of R:VLAN RO/r []
    management b RO/r False
    other_config m RW {}
    disallow_unplug b RO/r False
    tunnel_access_PIF_of R:tunnel RO/r []
    tunnel_transport_PIF_of R:tunnel RO/r []
    ipv6_configuration_mode e:None|DHCP|Static|Autoconf RO/r "None"
    IPv6 S RO/r []
    ipv6_gateway s RO/r ""
    primary_address_type e:IPv4|IPv6 RO/r "IPv4"
    managed b RO/c True
    properties m RO/r {}
    capabilities S RO/r []
    igmp_snooping_status e:enabled|disabled|unknown RO/r "unknown"
    sriov_physical_PIF_of S RO/r []
    sriov_logical_PIF_of S RO/r []
    PCI s RO/r NULL
""", has_name_label=False)

PIF_METRICS = _class("PIF_metrics", """
    uuid s RO/r
    io_read_kbs f RO/r 0.0
    io_write_kbs f RO/r 0.0
    carrier b RO/r True
    vendor_id s RO/r "8086"
    vendor_name s RO/r "Intel Corporation"
    device_id s RO/r "10d3"
    device_name s RO/r "82574L Gigabit Network Connection"
    speed i RO/r 1000
    duplex b RO/r True
    pci_bus_path s RO/r ""
    last_updated d RO/r EPOCH
    other_config m RW {}
""", has_name_label=False)

BOND = _class("Bond", """
    uuid s RO/r
    master r:PIF RO/c NULL
    slaves R:PIF RO/r []
    other_config m RW {}
    primary_slave r:PIF RO/r NULL
    mode e:balance-slb|active-backup|lacp RO/r "balance-slb"
    properties m RO/r {}
    links_up i RO/r 0
    auto_update_mac b RO/r True
""", has_name_label=False)

VLAN = _class("VLAN", """
    uuid s RO/r
    tagged_PIF r:PIF RO/c NULL
    untagged_PIF r:PIF RO/r NULL
    tag i RO/c -1
    other_config m RW {}
""", has_name_label=False)

TUNNEL = _class("tunnel", """
    uuid s RO/r
    access_PIF r:PIF RO/c NULL
    transport_PIF r:PIF RO/c NULL
    status m RW {"active": "false"}
    other_config m RW {}
    protocol e:gre|vxlan RW "gre"
""", has_name_label=False)

VIF = _class("VIF", """
    uuid s RO/r
    allowed_operations E:attach|plug|unplug RO/r []
    current_operations m RO/r {}
    device s RO/c
    network r:network RO/c
    VM r:VM RO/c
    MAC s RO/c
    MTU i RO/c
    other_config m RW
    currently_attached b RO/c False
    status_code i RO/r 0
    status_detail s RO/r ""
    runtime_properties m RO/r {}
    qos_algorithm_type s RW
    qos_algorithm_params m RW
    qos_supported_algorithms S RO/r []
    metrics s RO/r NULL
    MAC_autogenerated b RO/r False
    locking_mode e:network_default|locked|unlocked|disabled RO/c "network_default"
    ipv4_allowed S RO/c []
    ipv6_allowed S RO/c []
    ipv4_configuration_mode e:None|Static|DHCP RO/r "None"
    ipv4_addresses S RO/r []
    ipv4_gateway s RO/r ""
    ipv6_configuration_mode e:None|Static|Autoconf RO/r "None"
    ipv6_addresses S RO/r []
    ipv6_gateway s RO/r ""
    trunks I RO/c []
""", gen_constructor=True, has_name_label=False)

VIF_METRICS = _class("VIF_metrics", """
    uuid s RO/r
    io_read_kbs f RO/r 0.0
    io_write_kbs f RO/r 0.0
    last_updated d RO/r EPOCH
    other_config m RW {}
""", has_name_label=False)

SDN_CONTROLLER = _class("SDN_controller", """
    uuid s RO/r
    protocol e:ssl|pssl RO/c "ssl"
    address s RO/c ""
    port i RO/c 0
""", has_name_label=False)

CLASSES: dict[str, ClassDef] = {c.name: c for c in (
    POOL, HOST, HOST_METRICS, VM, NETWORK, PIF, PIF_METRICS, BOND, VLAN, TUNNEL, VIF,
    VIF_METRICS, SDN_CONTROLLER)}

# (stored field) -> (derived set on the other side), spec §3.0 / datamodel all_relations.
RELATIONS: tuple[tuple[str, str, str, str], ...] = (
    ("PIF", "host", "host", "PIFs"),
    ("PIF", "network", "network", "PIFs"),
    ("VIF", "network", "network", "VIFs"),
    ("VIF", "VM", "VM", "VIFs"),
    ("VM", "resident_on", "host", "resident_VMs"),
    ("PIF", "bond_slave_of", "Bond", "slaves"),
    ("Bond", "master", "PIF", "bond_master_of"),
    ("VLAN", "tagged_PIF", "PIF", "VLAN_slave_of"),
    ("tunnel", "access_PIF", "PIF", "tunnel_access_PIF_of"),
    ("tunnel", "transport_PIF", "PIF", "tunnel_transport_PIF_of"),
)
