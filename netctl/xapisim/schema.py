"""The simulator's datamodel: classes, fields, types, qualifiers, defaults, enums, relations.

Every class served carries every field xapi's datamodel gives it, transcribed from xen-api
`doc/data/xenapi.json` (snapshot e2ee48d6, the source of `reference/xapi-spec.md` Appendix A)
plus the later `VIF.trunks`. The store, the generated accessors (`get_<field>`, `set_<field>`
for RW fields, map and set add/remove, `get_record`, ...) and `create` records are derived
from this table, so a record here is field for field what xapi's `get_record` returns.

A field without a datamodel default is mandatory in a generated `create` record (xapi fails
with `Dispatcher_FieldNotFound`); in rows the simulator makes itself it takes `LAB_DEFAULTS`
(a value a real host would show) or the type's zero value.

Type codes: `s` string, `i` int (64-bit, a decimal string on XML-RPC), `b` bool, `f` float,
`d` datetime, `r:<Class>` ref, `R:<Class>` ref set, `S` string set, `I` int set, `m` map with
string values (keys strings or enums), `M` (ref -> string) map, `X` any other map (int keys,
non-string values; runtime only), `e:<enum>` enum, `E:<enum>` enum set, where <enum> names
an entry of `ENUMS` or lists the values inline (`e:gre|vxlan`). Qualifiers: `RW`, `RO/c`
(constructor only), `RO/r` (runtime, server-maintained).

Wire coercion of parameters to these types (spec section 1.3) lives here too (`coerce`), so
the API layer and the networking methods share it without importing each other.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from netctl.xapisim.codec import DateTime
from netctl.xapisim.errors import XapiError

NULL_REF = "OpaqueRef:NULL"
MANDATORY = object()  # no default: a generated `create` record must give it
EPOCH = DateTime("19700101T00:00:00Z")


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
        return self.type in ("m", "M", "X")

    @property
    def is_set(self) -> bool:
        return self.type[0] in "SRIE"

    @property
    def enum_values(self) -> tuple[str, ...]:
        return enum_values(self.type) if self.type[0] in "eE" else ()

    @property
    def ref_class(self) -> str | None:
        return self.type[2:] if self.type[0] in "rR" else None

    def empty(self) -> object:
        """The default value of the field, or the type's zero value if it has none."""
        if self.default is not MANDATORY:
            return copy_value(self.default)
        return zero_value(self.type)


def enum_values(type_: str) -> tuple[str, ...]:
    """Values of an `e:`/`E:` type: a named entry of ENUMS or an inline `a|b|c` list."""
    spec = type_[2:]
    return ENUMS.get(spec) or tuple(spec.split("|"))


def zero_value(type_: str) -> object:
    code = type_[0]
    if code == "e":
        return enum_values(type_)[0]
    return {"s": "", "i": 0, "b": False, "f": 0.0, "d": EPOCH, "r": NULL_REF, "m": {},
            "M": {}, "X": {}}.get(code, [])


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
    has_name_label: bool = True  # get_by_name_label is served

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


# Enums of the served classes (xenapi.json), values in datamodel order; read with enum_values().
ENUMS: dict[str, tuple[str, ...]] = {k: tuple(v.split()) for k, v in {
    "bond_mode": "balance-slb active-backup lacp",
    "domain_type": "hvm pv pv_in_pvh pvh unspecified",
    "host_allowed_operations": (
        "provision evacuate shutdown reboot power_on vm_start vm_resume "
        "vm_migrate apply_updates enable"
    ),
    "host_display": "enabled disable_on_reboot disabled enable_on_reboot",
    "host_numa_affinity_policy": "any best_effort default_policy",
    "ip_configuration_mode": "None DHCP Static",
    "ipv6_configuration_mode": "None DHCP Static Autoconf",
    "latest_synced_updates_applied_state": "yes no unknown",
    "network_default_locking_mode": "unlocked disabled",
    "network_operations": "attaching",
    "network_purpose": "nbd insecure_nbd",
    "on_crash_behaviour": (
        "destroy coredump_and_destroy restart coredump_and_restart preserve "
        "rename_restart"
    ),
    "on_normal_exit": "destroy restart",
    "on_softreboot_behavior": "soft_reboot destroy restart preserve",
    "pif_igmp_status": "enabled disabled unknown",
    "pool_allowed_operations": (
        "ha_enable ha_disable cluster_create designate_new_master "
        "configure_repositories sync_updates get_updates apply_updates "
        "tls_verification_enable cert_refresh exchange_certificates_on_join "
        "exchange_ca_certificates_on_join copy_primary_host_certs eject"
    ),
    "primary_address_type": "IPv4 IPv6",
    "sdn_controller_protocol": "ssl pssl",
    "sriov_configuration_mode": "sysfs modprobe manual unknown",
    "task_allowed_operations": "cancel destroy",
    "task_status_type": "pending success failure cancelling cancelled",
    "telemetry_frequency": "daily weekly monthly",
    "tunnel_protocol": "gre vxlan",
    "update_guidances": (
        "reboot_host reboot_host_on_livepatch_failure "
        "reboot_host_on_kernel_livepatch_failure "
        "reboot_host_on_xen_livepatch_failure restart_toolstack "
        "restart_device_model restart_vm"
    ),
    "update_sync_frequency": "daily weekly",
    "vif_ipv4_configuration_mode": "None Static DHCP",
    "vif_ipv6_configuration_mode": "None Static Autoconf",
    "vif_locking_mode": "network_default locked unlocked disabled",
    "vif_operations": "attach plug unplug",
    "vm_operations": (
        "snapshot clone copy create_template revert checkpoint snapshot_with_quiesce "
        "provision start start_on pause unpause clean_shutdown clean_reboot "
        "hard_shutdown power_state_reset hard_reboot suspend csvm resume resume_on "
        "pool_migrate migrate_send get_boot_record send_sysrq send_trigger "
        "query_services shutdown call_plugin changing_memory_live "
        "awaiting_memory_live changing_dynamic_range changing_static_range "
        "changing_memory_limits changing_shadow_memory changing_shadow_memory_live "
        "changing_VCPUs changing_VCPUs_live changing_NVRAM assert_operation_valid "
        "data_source_op update_allowed_operations make_into_template import export "
        "metadata_export reverting destroy create_vtpm"
    ),
    "vm_power_state": "Halted Paused Running Suspended",
}.items()}

POOL = _class("pool", """
    uuid s RO/r
    name_label s RW
    name_description s RW
    master r:host RO/r
    default_SR r:SR RW
    suspend_image_SR r:SR RW
    crash_dump_SR r:SR RW
    other_config m RW
    ha_enabled b RO/r False
    ha_configuration m RO/r {}
    ha_statefiles S RO/r []
    ha_host_failures_to_tolerate i RO/r 0
    ha_plan_exists_for i RO/r 0
    ha_allow_overcommit b RW False
    ha_overcommitted b RO/r False
    blobs m RO/r {}
    tags S RW []
    gui_config m RW {}
    health_check_config m RW {}
    wlb_url s RO/r ""
    wlb_username s RO/r ""
    wlb_enabled b RW False
    wlb_verify_cert b RW False
    redo_log_enabled b RO/r False
    redo_log_vdi r:VDI RO/r NULL
    vswitch_controller s RO/r ""
    restrictions m RO/r {}
    metadata_VDIs R:VDI RO/r
    ha_cluster_stack s RO/r ""
    allowed_operations E:pool_allowed_operations RO/r []
    current_operations m RO/r {}
    guest_agent_config m RO/r {}
    cpu_info m RO/r {}
    policy_no_vendor_device b RW False
    live_patching_disabled b RW False
    igmp_snooping_enabled b RO/r False
    uefi_certificates s RO/c ""
    custom_uefi_certificates s RO/c ""
    is_psr_pending b RW False
    tls_verification_enabled b RO/r False
    repositories R:Repository RO/r []
    client_certificate_auth_enabled b RO/r False
    client_certificate_auth_name s RO/r ""
    repository_proxy_url s RO/r ""
    repository_proxy_username s RO/r ""
    repository_proxy_password r:secret RO/r NULL
    migration_compression b RW False
    coordinator_bias b RW True
    local_auth_max_threads i RO/c 8
    ext_auth_max_threads i RO/c 1
    telemetry_uuid r:secret RO/r NULL
    telemetry_frequency e:telemetry_frequency RO/r "weekly"
    telemetry_next_collection d RO/r EPOCH
    last_update_sync d RO/r EPOCH
    update_sync_frequency e:update_sync_frequency RO/r "weekly"
    update_sync_day i RO/r 0
    update_sync_enabled b RO/r False
""", has_name_label=False)

HOST = _class("host", """
    uuid s RO/r
    name_label s RW ""
    name_description s RW ""
    memory_overhead i RO/r 0
    allowed_operations E:host_allowed_operations RO/r []
    current_operations m RO/r {}
    API_version_major i RO/r
    API_version_minor i RO/r
    API_version_vendor s RO/r
    API_version_vendor_implementation m RO/r
    enabled b RO/r
    software_version m RO/c
    other_config m RW
    capabilities S RO/c
    cpu_configuration m RO/r
    sched_policy s RO/r
    supported_bootloaders S RO/r
    resident_VMs R:VM RO/r
    logging m RW
    PIFs R:PIF RO/r
    suspend_image_sr r:SR RW
    crash_dump_sr r:SR RW
    crashdumps R:host_crashdump RO/r
    patches R:host_patch RO/r
    updates R:pool_update RO/r
    PBDs R:PBD RO/r
    host_CPUs R:host_cpu RO/r
    cpu_info m RO/r {}
    hostname s RW
    address s RW
    metrics r:host_metrics RO/r
    license_params m RO/r
    ha_statefiles S RO/r []
    ha_network_peers S RO/r []
    blobs m RO/r {}
    tags S RW []
    external_auth_type s RO/r ""
    external_auth_service_name s RO/r ""
    external_auth_configuration m RO/r {}
    edition s RO/r ""
    license_server m RW {"address": "localhost", "port": "27000"}
    bios_strings m RO/r {}
    power_on_mode s RO/r ""
    power_on_config m RO/r {}
    local_cache_sr r:SR RO/c NULL
    chipset_info m RO/r {}
    PCIs R:PCI RO/r
    PGPUs R:PGPU RO/r
    PUSBs R:PUSB RO/r
    ssl_legacy b RO/c True
    guest_VCPUs_params m RW {}
    display e:host_display RW "enabled"
    virtual_hardware_platform_versions I RO/r [0]
    control_domain r:VM RO/r NULL
    updates_requiring_reboot R:pool_update RO/r
    features R:Feature RO/r
    iscsi_iqn s RO/c ""
    multipathing b RO/c False
    uefi_certificates s RO/c ""
    certificates R:Certificate RO/r
    editions S RO/r []
    pending_guidances E:update_guidances RO/r []
    tls_verification_enabled b RO/r False
    last_software_update d RO/r EPOCH
    https_only b RO/r False
    latest_synced_updates_applied e:latest_synced_updates_applied_state RO/r "unknown"
    numa_affinity_policy e:host_numa_affinity_policy RO/r "default_policy"
    pending_guidances_recommended E:update_guidances RO/r []
    pending_guidances_full E:update_guidances RO/r []
    last_update_hash s RO/r ""
""")

HOST_METRICS = _class("host_metrics", """
    uuid s RO/r
    memory_total i RO/r
    memory_free i RO/r 0
    live b RO/r
    last_updated d RO/r
    other_config m RW {}
""", has_name_label=False)

VM = _class("VM", """
    uuid s RO/r
    allowed_operations E:vm_operations RO/r []
    current_operations m RO/r {}
    name_label s RW ""
    name_description s RW ""
    power_state e:vm_power_state RO/c "Halted"
    user_version i RW
    is_a_template b RW
    is_default_template b RO/r False
    suspend_VDI r:VDI RO/c NULL
    resident_on r:host RO/r
    scheduled_to_be_resident_on r:host RO/r NULL
    affinity r:host RW
    memory_overhead i RO/r 0
    memory_target i RO/c 0
    memory_static_max i RO/c
    memory_dynamic_max i RO/c
    memory_dynamic_min i RO/c
    memory_static_min i RO/c
    VCPUs_params m RW
    VCPUs_max i RO/c
    VCPUs_at_startup i RO/c
    actions_after_softreboot e:on_softreboot_behavior RW "soft_reboot"
    actions_after_shutdown e:on_normal_exit RW
    actions_after_reboot e:on_normal_exit RW
    actions_after_crash e:on_crash_behaviour RO/c
    consoles R:console RO/r
    VIFs R:VIF RO/r
    VBDs R:VBD RO/r
    VUSBs R:VUSB RO/r
    crash_dumps R:crashdump RO/r
    VTPMs R:VTPM RO/r
    PV_bootloader s RW
    PV_kernel s RW
    PV_ramdisk s RW
    PV_args s RW
    PV_bootloader_args s RW
    PV_legacy_args s RW
    HVM_boot_policy s RO/c
    HVM_boot_params m RW
    HVM_shadow_multiplier f RO/c 1.0
    platform m RW
    PCI_bus s RW
    other_config m RW
    domid i RO/r
    domarch s RO/r
    last_boot_CPU_flags m RO/c {}
    is_control_domain b RO/r
    metrics r:VM_metrics RO/r
    guest_metrics r:VM_guest_metrics RO/r
    last_booted_record s RO/c ""
    recommendations s RW
    xenstore_data m RW {}
    ha_always_run b RO/c False
    ha_restart_priority s RO/c ""
    is_a_snapshot b RO/r False
    snapshot_of r:VM RO/r NULL
    snapshots R:VM RO/r
    snapshot_time d RO/r EPOCH
    transportable_snapshot_id s RO/r ""
    blobs m RO/r {}
    tags S RW []
    blocked_operations m RW {}
    snapshot_info m RO/r {}
    snapshot_metadata s RO/r ""
    parent r:VM RO/r NULL
    children R:VM RO/r
    bios_strings m RO/r {}
    protection_policy r:VMPP RO/c NULL
    is_snapshot_from_vmpp b RO/c False
    snapshot_schedule r:VMSS RO/c NULL
    is_vmss_snapshot b RO/c False
    appliance r:VM_appliance RO/c NULL
    start_delay i RO/c 0
    shutdown_delay i RO/c 0
    order i RO/c 0
    VGPUs R:VGPU RO/r
    attached_PCIs R:PCI RO/r
    suspend_SR r:SR RW NULL
    version i RO/c 0
    generation_id s RO/c "0:0"
    hardware_platform_version i RW 0
    has_vendor_device b RO/c False
    requires_reboot b RO/r False
    reference_label s RO/c ""
    domain_type e:domain_type RO/c "unspecified"
    NVRAM m RO/c {}
    pending_guidances E:update_guidances RO/r []
    pending_guidances_recommended E:update_guidances RO/r []
    pending_guidances_full E:update_guidances RO/r []
""", gen_constructor=True)

VM_METRICS = _class("VM_metrics", """
    uuid s RO/r
    memory_actual i RO/r
    VCPUs_number i RO/r
    VCPUs_utilisation X RO/r {}
    VCPUs_CPU X RO/r
    VCPUs_params m RO/r
    VCPUs_flags X RO/r
    state S RO/r
    start_time d RO/r
    install_time d RO/r
    last_updated d RO/r
    other_config m RW {}
    hvm b RO/r False
    nested_virt b RO/r False
    nomigrate b RO/r False
    current_domain_type e:domain_type RO/r "unspecified"
""", has_name_label=False)

NETWORK = _class("network", """
    uuid s RO/r
    name_label s RW ""
    name_description s RW ""
    allowed_operations E:network_operations RO/r []
    current_operations m RO/r {}
    VIFs R:VIF RO/r
    PIFs R:PIF RO/r
    MTU i RW 1500
    other_config m RW
    bridge s RO/c ""
    managed b RO/c True
    blobs m RO/r {}
    tags S RW []
    default_locking_mode e:network_default_locking_mode RO/r "unlocked"
    assigned_ips M RO/r {}
    purpose E:network_purpose RO/r []
""", gen_constructor=True)

PIF = _class("PIF", """
    uuid s RO/r
    device s RO/c
    network r:network RO/c
    host r:host RO/c
    MAC s RO/c
    MTU i RO/c
    VLAN i RO/c
    metrics r:PIF_metrics RO/r
    physical b RO/r False
    currently_attached b RO/r True
    ip_configuration_mode e:ip_configuration_mode RO/r "None"
    IP s RO/r ""
    netmask s RO/r ""
    gateway s RO/r ""
    DNS s RO/r ""
    bond_slave_of r:Bond RO/r NULL
    bond_master_of R:Bond RO/r
    VLAN_master_of r:VLAN RO/r NULL
    VLAN_slave_of R:VLAN RO/r
    management b RO/r False
    other_config m RW {}
    disallow_unplug b RO/r False
    tunnel_access_PIF_of R:tunnel RO/r
    tunnel_transport_PIF_of R:tunnel RO/r
    ipv6_configuration_mode e:ipv6_configuration_mode RO/r "None"
    IPv6 S RO/r []
    ipv6_gateway s RO/r ""
    primary_address_type e:primary_address_type RO/r "IPv4"
    managed b RO/c True
    properties m RO/r {}
    capabilities S RO/r []
    igmp_snooping_status e:pif_igmp_status RO/r "unknown"
    sriov_physical_PIF_of R:network_sriov RO/r
    sriov_logical_PIF_of R:network_sriov RO/r
    PCI r:PCI RO/r NULL
""", has_name_label=False)

PIF_METRICS = _class("PIF_metrics", """
    uuid s RO/r
    io_read_kbs f RO/r 0.0
    io_write_kbs f RO/r 0.0
    carrier b RO/r
    vendor_id s RO/r
    vendor_name s RO/r
    device_id s RO/r
    device_name s RO/r
    speed i RO/r
    duplex b RO/r
    pci_bus_path s RO/r
    last_updated d RO/r
    other_config m RW {}
""", has_name_label=False)

BOND = _class("Bond", """
    uuid s RO/r
    master r:PIF RO/c NULL
    slaves R:PIF RO/r
    other_config m RW {}
    primary_slave r:PIF RO/r NULL
    mode e:bond_mode RO/r "balance-slb"
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
    protocol e:tunnel_protocol RW "gre"
""", has_name_label=False)

VIF = _class("VIF", """
    uuid s RO/r
    allowed_operations E:vif_operations RO/r []
    current_operations m RO/r {}
    device s RO/c
    network r:network RO/c
    VM r:VM RO/c
    MAC s RO/c
    MTU i RO/c
    other_config m RW
    currently_attached b RO/c False
    status_code i RO/r
    status_detail s RO/r
    runtime_properties m RO/r
    qos_algorithm_type s RW
    qos_algorithm_params m RW
    qos_supported_algorithms S RO/r
    metrics r:VIF_metrics RO/r NULL
    MAC_autogenerated b RO/r False
    locking_mode e:vif_locking_mode RO/c "network_default"
    ipv4_allowed S RO/c []
    ipv6_allowed S RO/c []
    ipv4_configuration_mode e:vif_ipv4_configuration_mode RO/r "None"
    ipv4_addresses S RO/r []
    ipv4_gateway s RO/r ""
    ipv6_configuration_mode e:vif_ipv6_configuration_mode RO/r "None"
    ipv6_addresses S RO/r []
    ipv6_gateway s RO/r ""
    trunks I RO/c []
""", has_name_label=False, gen_constructor=True)

VIF_METRICS = _class("VIF_metrics", """
    uuid s RO/r
    io_read_kbs f RO/r 0.0
    io_write_kbs f RO/r 0.0
    last_updated d RO/r
    other_config m RW {}
""", has_name_label=False)

SDN_CONTROLLER = _class("SDN_controller", """
    uuid s RO/r
    protocol e:sdn_controller_protocol RO/c "ssl"
    address s RO/c ""
    port i RO/c 0
""", has_name_label=False)

NETWORK_SRIOV = _class("network_sriov", """
    uuid s RO/r
    physical_PIF r:PIF RO/c NULL
    logical_PIF r:PIF RO/c NULL
    requires_reboot b RO/r False
    configuration_mode e:sriov_configuration_mode RO/r "unknown"
""", has_name_label=False)

TASK = _class("task", """
    uuid s RO/r
    name_label s RO/r ""
    name_description s RO/r ""
    allowed_operations E:task_allowed_operations RO/r []
    current_operations m RO/r {}
    created d RO/r
    finished d RO/r
    status e:task_status_type RO/r
    resident_on r:host RO/r
    progress f RO/r
    type s RO/r
    result s RO/r
    error_info S RO/r
    other_config m RW {}
    subtask_of r:task RO/r NULL
    subtasks R:task RO/r
    backtrace s RO/r "()"
""")


CLASSES: dict[str, ClassDef] = {c.name: c for c in (
    POOL, HOST, HOST_METRICS, VM, VM_METRICS, NETWORK, PIF, PIF_METRICS, BOND, VLAN, TUNNEL,
    VIF, VIF_METRICS, SDN_CONTROLLER, NETWORK_SRIOV, TASK)}

# (stored field) -> (derived set on the other side), spec §3.0 / datamodel all_relations.
RELATIONS: tuple[tuple[str, str, str, str], ...] = (
    ("PIF", "host", "host", "PIFs"),
    ("PIF", "network", "network", "PIFs"),
    ("VIF", "network", "network", "VIFs"),
    ("VIF", "VM", "VM", "VIFs"),
    ("VM", "resident_on", "host", "resident_VMs"),
    ("VM", "snapshot_of", "VM", "snapshots"),
    ("VM", "parent", "VM", "children"),
    ("PIF", "bond_slave_of", "Bond", "slaves"),
    ("Bond", "master", "PIF", "bond_master_of"),
    ("VLAN", "tagged_PIF", "PIF", "VLAN_slave_of"),
    ("tunnel", "access_PIF", "PIF", "tunnel_access_PIF_of"),
    ("tunnel", "transport_PIF", "PIF", "tunnel_transport_PIF_of"),
    ("network_sriov", "physical_PIF", "PIF", "sriov_physical_PIF_of"),
    ("network_sriov", "logical_PIF", "PIF", "sriov_logical_PIF_of"),
    ("task", "subtask_of", "task", "subtasks"),
)

GiB = 1 << 30

# What the simulator puts in the rows it makes itself where the datamodel has no default:
# the values a real XCP-ng host would show, rather than zeros.
LAB_DEFAULTS: dict[str, dict[str, Any]] = {
    "pool": {"name_label": "", "name_description": "", "other_config": {},
             "default_SR": NULL_REF, "suspend_image_SR": NULL_REF,
             "crash_dump_SR": NULL_REF},
    "host": {"API_version_major": 2, "API_version_minor": 21,
             "API_version_vendor": "XenSource", "enabled": True, "sched_policy": "credit",
             "supported_bootloaders": ["pygrub", "eliloader"],
             "capabilities": ["xen-3.0-x86_64", "hvm-3.0-x86_32", "hvm-3.0-x86_64"],
             "edition": "xcp-ng", "editions": ["xcp-ng"],
             "license_params": {"sku_type": "xcp-ng"}, "logging": {},
             "suspend_image_sr": NULL_REF, "crash_dump_sr": NULL_REF},
    "host_metrics": {"memory_total": 16 * GiB, "live": True},
    "VM": {"user_version": 1, "is_a_template": False, "affinity": NULL_REF,
           "memory_static_max": GiB, "memory_dynamic_max": GiB, "memory_dynamic_min": GiB,
           "memory_static_min": GiB // 2, "VCPUs_max": 1, "VCPUs_at_startup": 1,
           "actions_after_shutdown": "destroy", "actions_after_reboot": "restart",
           "actions_after_crash": "restart", "domid": -1, "domarch": "",
           "is_control_domain": False, "metrics": NULL_REF, "guest_metrics": NULL_REF,
           "resident_on": NULL_REF, "recommendations": "", "domain_type": "pv"},
    "VM_metrics": {"memory_actual": 0, "VCPUs_number": 0, "VCPUs_utilisation": {"0": 0.0},
                   "start_time": EPOCH, "install_time": EPOCH, "last_updated": EPOCH,
                   "current_domain_type": "unspecified"},
    "PIF_metrics": {"carrier": True, "vendor_id": "8086", "vendor_name": "Intel Corporation",
                    "device_id": "10d3", "device_name": "82574L Gigabit Network Connection",
                    "speed": 1000, "duplex": True, "last_updated": EPOCH},
    "VIF_metrics": {"last_updated": EPOCH},
    "task": {"created": EPOCH, "finished": EPOCH, "status": "pending", "progress": 0.0,
             "type": "<none/>", "result": "", "error_info": [], "resident_on": NULL_REF},
}


# --- parameter coercion (spec §1.3) ---------------------------------------------------------


def _unmarshal_error(expected: str, value: Any) -> XapiError:
    return XapiError("INTERNAL_ERROR", f'Rpc.Runtime_error("{expected}", {value!r})')


def coerce(type_: str, value: Any) -> Any:  # noqa: C901 - one branch per type code
    """A wire value as the type the method declares: ints from numbers or decimal strings,
    floats from numbers or strings, bools only from booleans, enums case-insensitively."""
    code = type_[0]
    if type_ == "*":
        return value
    if code in "sr":
        if not isinstance(value, str):
            raise _unmarshal_error("string", value)
        return value
    if code == "i":
        if isinstance(value, int) and not isinstance(value, bool):
            return int(value)
        if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
            return int(value)
        raise _unmarshal_error("int64", value)
    if code == "f":
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise _unmarshal_error("float", value)
    if code == "b":
        if isinstance(value, bool):
            return value
        raise _unmarshal_error("bool", value)
    if code == "d":
        if isinstance(value, str):
            return DateTime(value)
        raise _unmarshal_error("datetime", value)
    if code == "e":
        return coerce_enum(type_, value)
    if code in "SRIE":
        if not isinstance(value, list):
            raise _unmarshal_error("set", value)
        item = {"S": "s", "R": "s", "I": "i"}.get(code, "e" + type_[1:])
        return [coerce(item, v) for v in value]
    if code in "mMX":
        if not isinstance(value, dict):
            raise _unmarshal_error("map", value)
        if type_ in ("m*", "X"):
            return dict(value)
        return {str(k): coerce("s", v) for k, v in value.items()}
    raise AssertionError(type_)


def coerce_enum(type_: str, value: Any) -> str:
    if not isinstance(value, str):
        raise _unmarshal_error("enum", value)
    values = enum_values(type_)
    if "balance-slb" in values:  # bond_mode: hand-written exact-match decoder
        if value in values:
            return value
    else:
        for v in values:
            if v.lower() == value.lower():
                return v
    raise XapiError("INTERNAL_ERROR", f'Rpc.Runtime_error("enum", "{value}")')
