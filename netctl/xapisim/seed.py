"""Fill a simulator with the pool a lab topology file describes, in the shapes xapi creates.

The lab builds OVS from the same `Topology` and writes its uuids into OVS external_ids, so
every object here takes the topology's uuid (pool, hosts, networks, NIC and bond PIFs, bonds,
VMs, VIFs). Objects the topology does not name (VLAN and tunnel PIFs, VLAN and tunnel objects,
control domains, the per-device networks of bonded or unused NICs) get uuids derived the same
way the topology derives its own: uuid5(netctl namespace, "<lab>/<kind>/<host>/<name>").

Shapes (spec §3.5, §6 item 8): physical PIFs `physical=true, VLAN=-1, properties={gro: on}`;
bond masters `bond<N>` with the primary (first) member's MAC; VLAN PIFs with the tagged PIF's
device and MAC `fe:ff:ff:ff:ff:ff`; tunnel access PIFs `tunnel<N>`; xapi's `IPv6=[""]` quirk
on VLAN/bond/tunnel PIFs. The management PIF of a host is its first bond, else its first NIC
with a network; its IP is the topology address on that network (the lab's management link is not a
xapi PIF). Every host gets a running control domain (domid 0) and host_metrics live=true;
every VM a VM_metrics. The pool also gets one template, `Lab guest (netctl)` (a default
template: it can be cloned, copied and provisioned, not started or destroyed), that an
operator makes new VMs from (`VM.clone`, `VM.provision`, `VIF.create`, `VM.start`).
"""

from __future__ import annotations

from typing import Any

from netctl.topology import Topology, uuid5_bytes, uuid5_str
from netctl.xapisim.methods import LACP_DEFAULTS, VLAN_PIF_MAC
from netctl.xapisim.store import Store, new_ref

GiB = 1 << 30
GUEST_TEMPLATE = "Lab guest (netctl)"  # the template the seed provides for new VMs
SOFTWARE_VERSION = {"product_brand": "XCP-ng", "product_version": "8.3.0", "platform_name":
                    "XCP", "xapi": "26.21", "network_backend": "openvswitch",
                    "hostname": "netctl-sim"}


def derived_uuid(topology: Topology, *parts: object) -> str:
    return uuid5_str("/".join([topology.name, *map(str, parts)]))


def _mac(topology: Topology, *parts: object) -> str:
    return "02:" + uuid5_bytes("mac/" + "/".join([topology.name, *map(str, parts)]))[:5].hex(":")


def _vm_metrics(store: Store, memory: int, vcpus: int) -> str:
    return store.insert("VM_metrics", {"memory_actual": memory, "VCPUs_number": vcpus,
                                       "current_domain_type": "pv" if vcpus else "unspecified"})


def _prefix_to_netmask(prefix: int) -> str:
    bits = (0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF
    return ".".join(str((bits >> s) & 0xFF) for s in (24, 16, 8, 0))


def seed(store: Store, topology: Topology) -> None:  # noqa: C901 - one pass over the file
    with store.lock:
        nets: dict[str, str] = {}
        for n in topology.networks:
            nets[n.name] = store.insert("network", {
                "uuid": n.uuid, "name_label": n.name, "bridge": n.bridge, "MTU": n.mtu,
                "default_locking_mode": n.default_locking_mode,
                "other_config": dict(n.other_config),
                "name_description": f"{n.kind} network {n.name} of the lab pool"})
        bridges = {n.bridge for n in topology.networks}
        nic_nets: dict[str, str] = {}  # pool-wide network of a device that has none of its own

        def nic_network(device: str) -> str:
            if device not in nic_nets:
                number = device[3:]
                bridge = f"xenbr{number}"
                while bridge in bridges:
                    bridge += "x"
                bridges.add(bridge)
                nic_nets[device] = store.insert("network", {
                    "uuid": derived_uuid(topology, "network", "@" + device), "bridge": bridge,
                    "name_label": f"Pool-wide network associated with {device}",
                    "other_config": {}})
            return nic_nets[device]

        hosts: dict[str, str] = {}
        pif_on: dict[tuple[str, str], str] = {}  # (host name, network name) -> PIF ref
        for h in topology.hosts:
            href = new_ref()
            dom0 = new_ref()
            metrics = store.insert("host_metrics", {
                "uuid": derived_uuid(topology, "host_metrics", h.name), "live": True})
            store.insert("host", {
                "uuid": h.uuid, "name_label": h.name, "hostname": h.name,
                "address": topology.management_address(h.name), "metrics": metrics,
                "software_version": dict(SOFTWARE_VERSION, hostname=h.name),
                "other_config": {}, "control_domain": dom0,
                "API_version_vendor_implementation": {}}, ref=href)
            store.insert("VM", {
                "uuid": derived_uuid(topology, "dom0", h.name),
                "name_label": f"Control domain on host: {h.name}", "power_state": "Running",
                "resident_on": href, "domid": 0, "is_control_domain": True,
                "memory_static_max": 4 * GiB, "memory_dynamic_max": 4 * GiB,
                "memory_dynamic_min": 4 * GiB, "VCPUs_max": 4, "VCPUs_at_startup": 4,
                "metrics": _vm_metrics(store, 4 * GiB, 4),
                "other_config": {"storage_driver_domain": dom0, "is_system_domain": "true"}},
                ref=dom0)
            hosts[h.name] = href
            bonded = {m: b for b in h.bonds for m in b.members}
            nic_refs: dict[str, str] = {}
            for nic in h.nics:
                own = nic.network
                nic_refs[nic.device] = store.insert("PIF", {
                    "uuid": nic.uuid, "device": nic.device, "host": href,
                    "network": nets[own] if own else nic_network(nic.device), "MAC": nic.mac,
                    "MTU": topology.network(own).mtu if own else 1500, "VLAN": -1,
                    "physical": True, "currently_attached": own is not None,
                    "properties": {"gro": "on"}, "metrics": store.insert("PIF_metrics", {
                        "uuid": derived_uuid(topology, "pif_metrics", h.name, nic.device)}),
                })
                if own:
                    pif_on[(h.name, own)] = nic_refs[nic.device]
            for b in h.bonds:
                master, bond = new_ref(), new_ref()
                primary = nic_refs[b.members[0]]
                props = dict(b.properties)
                if b.mode == "lacp":
                    props = {**LACP_DEFAULTS, **props}
                store.insert("PIF", {
                    "uuid": b.pif_uuid, "device": b.device, "host": href,
                    "network": nets[b.network], "MAC": store.get("PIF", primary, "MAC"),
                    "MTU": topology.network(b.network).mtu, "VLAN": -1, "physical": False,
                    "currently_attached": True, "properties": {"gro": "on"}, "IPv6": [""],
                    "metrics": store.insert("PIF_metrics", {
                        "uuid": derived_uuid(topology, "pif_metrics", h.name, b.device)}),
                }, ref=master)
                store.insert("Bond", {"uuid": b.uuid, "master": master, "mode": b.mode,
                                      "properties": props, "primary_slave": primary,
                                      "links_up": len(b.members)}, ref=bond)
                for m in b.members:
                    store.update("PIF", nic_refs[m], bond_slave_of=bond)
                pif_on[(h.name, b.network)] = master
            del bonded
            for addr in h.addresses:
                pif = pif_on[(h.name, addr.network)]
                values: dict[str, Any] = {}
                if addr.ipv4:
                    ip, prefix = addr.ipv4.split("/")
                    values.update(ip_configuration_mode="Static", IP=ip,
                                  netmask=_prefix_to_netmask(int(prefix)))
                if addr.ipv6:
                    values.update(ipv6_configuration_mode="Static", IPv6=[addr.ipv6])
                if addr.ipv6 and not addr.ipv4:
                    # an IPv6-only PIF, as XCP-ng 8.3 installs one: its services (management,
                    # tunnel endpoints) use IPv6
                    values.update(primary_address_type="IPv6")
                store.update("PIF", pif, **values)
            uplinks = [b.network for b in h.bonds] + [n.network for n in h.nics if n.network]
            if uplinks:
                store.update("PIF", pif_on[(h.name, uplinks[0])], management=True)

        for n in topology.networks:
            if n.kind == "vlan":
                for h in topology.hosts_with(n.name):
                    tagged = pif_on[(h.name, n.vlan_parent or "")]
                    trow = store.row("PIF", tagged).fields
                    vlan, untagged = new_ref(), new_ref()
                    store.insert("PIF", {
                        "uuid": derived_uuid(topology, "pif", h.name, "vlan", n.name),
                        "device": trow["device"], "host": hosts[h.name], "network": nets[n.name],
                        "MAC": VLAN_PIF_MAC, "MTU": trow["MTU"], "VLAN": n.vlan_tag,
                        "metrics": trow["metrics"], "physical": False,
                        "currently_attached": True, "VLAN_master_of": vlan, "IPv6": [""]},
                        ref=untagged)
                    store.insert("VLAN", {"uuid": derived_uuid(topology, "vlan", h.name, n.name),
                                          "tagged_PIF": tagged, "untagged_PIF": untagged,
                                          "tag": n.vlan_tag}, ref=vlan)
                    pif_on[(h.name, n.name)] = untagged
        tunnel_numbers: dict[str, int] = {}
        for n in topology.networks:
            if n.kind == "private":
                for h in topology.hosts_with(n.name):
                    transport = pif_on[(h.name, n.tunnel_transport or "")]
                    number = tunnel_numbers.get(h.name, 0)
                    tunnel_numbers[h.name] = number + 1
                    access, tunnel = new_ref(), new_ref()
                    store.insert("PIF", {
                        "uuid": derived_uuid(topology, "pif", h.name, "tunnel", n.name),
                        "device": f"tunnel{number}", "host": hosts[h.name],
                        "network": nets[n.name], "MAC": _mac(topology, "tunnel", h.name, n.name),
                        "MTU": n.mtu, "VLAN": -1, "physical": False,
                        "metrics": store.get("PIF", transport, "metrics"),
                        "currently_attached": True, "IPv6": [""]}, ref=access)
                    store.insert("tunnel", {
                        "uuid": derived_uuid(topology, "tunnel", h.name, n.name),
                        "access_PIF": access, "transport_PIF": transport,
                        "protocol": n.tunnel_protocol or "gre"}, ref=tunnel)
                    pif_on[(h.name, n.name)] = access

        for vm in topology.vms:
            vref = store.insert("VM", {
                "uuid": vm.uuid, "name_label": vm.name, "power_state": "Running",
                "resident_on": hosts[vm.host], "domid": vm.domid,
                "metrics": _vm_metrics(store, GiB, 1),
                "other_config": {"mac_seed": derived_uuid(topology, "mac_seed", vm.name)}})
            for vif in vm.vifs:
                store.insert("VIF", {
                    "uuid": vif.uuid, "device": str(vif.device), "network": nets[vif.network],
                    "VM": vref, "MAC": vif.mac, "MTU": topology.network(vif.network).mtu,
                    "other_config": {}, "qos_algorithm_type": "", "qos_algorithm_params": {},
                    "currently_attached": True, "locking_mode": vif.locking_mode,
                    "ipv4_allowed": list(vif.ipv4_allowed),
                    "ipv6_allowed": list(vif.ipv6_allowed)})

        store.insert("VM", {
            "uuid": derived_uuid(topology, "template", GUEST_TEMPLATE), "is_a_template": True,
            "is_default_template": True, "name_label": GUEST_TEMPLATE,
            "name_description": "A lab guest: a network namespace with the VIFs it is given "
                                "(VM.clone this, VM.provision, add VIFs, VM.start)",
            "memory_static_max": GiB, "memory_dynamic_max": GiB, "memory_dynamic_min": GiB,
            "memory_static_min": GiB // 2, "PV_bootloader": "pygrub",
            "other_config": {"default_template": "true"}, "metrics": _vm_metrics(store, 0, 0)})

        master = hosts[topology.hosts[0].name]
        store.insert("pool", {"uuid": topology.pool_uuid, "name_label": topology.name,
                              "master": master, "other_config": dict(topology.pool_other_config)})
