"""The lab's hypervisor side, driven by xapi: what xenopsd and networkd's IP part do on a host.

netctl never plugs VIFs or sets dom0 IP addresses: on a real host xenopsd runs the domains
xapi starts and plugs their VIFs into the bridges netctl built, and networkd puts a PIF's IP
configuration on its bridge device. In the lab this agent does both, from xapi's state
(`XapiSync`) alone — the topology file only seeded the pool — so whatever an operator does
through the XenAPI client shows up in the lab as it would on real hosts:
- every guest VM that is Running (or Paused) and `resident_on` a host of the lab is a VM
  namespace (`Lab.start_vm`), named from its name_label (`guest_name`; the topology's VMs keep
  their names), reachable with `netctl lab exec NAME`; a VM that halts or goes away loses it
  (`Lab.stop_vm`), and comes back when started again;
- every `currently_attached` VIF of such a VM is plugged (`Lab.plug`): `vif<domid>.<device>`
  on its network's bridge with xapi's external_ids, `eth<device>` in the VM with `VIF.MAC`
  (topology VIFs also get their topology addresses); a detached or destroyed VIF is
  unplugged; a VIF whose network or MAC changed is re-plugged;
- a changed `resident_on` or `domid` moves the VM (`Lab.move_vm`): every VIF it has now,
  wherever it came from, follows with its guest-side configuration intact;
- a PIF with a Static IPv4/IPv6 configuration gets that address on its bridge device in the
  host's namespace once netctl has created the bridge.
A VIF whose bridge netctl has not built yet is retried on the next round (a fifth of a
second later), as the agent's `in_step` flag shows.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time

from netctl.lab import config_update, netns
from netctl.lab.lab import Lab, LabError, VifSpec, guest_name
from netctl.model import NULL_REF, VM, PoolState, SDNController
from netctl.sources.xapi.sync import XapiSync

LOG = logging.getLogger("netctl.lab.agent")
PRESENT_STATES = ("Running", "Paused")  # a domain exists: its namespace and VIFs are there


class LabAgent:
    """Keeps the lab's VMs and dom0 addresses where xapi says they are (a background thread)."""

    def __init__(self, lab: Lab, xapi_url: str, user: str = "root", password: str = "netctl",
                 bridge_timeout: float = 0.0) -> None:
        self.lab = lab
        self.sync = XapiSync(xapi_url, user, password)
        self.bridge_timeout = bridge_timeout
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.errors: list[str] = []
        self.in_step = threading.Event()  # set while the lab matches the last seen state
        self._sdn_controller: SDNController | None = None  # as the hosts were last told

    def start(self) -> LabAgent:
        self.sync.start()
        self._thread = threading.Thread(target=self._run, name="lab-agent", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.sync.stop()
        if self._thread is not None:
            self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.is_set():
            state = self.sync.state
            try:
                done = self.reconcile(state)
            except Exception as exc:  # noqa: BLE001 - keep the lab following xapi
                LOG.exception("lab agent round failed")
                self.errors.append(str(exc))
                done = False
            if done:
                self.in_step.set()
            else:
                self.in_step.clear()
            try:
                self.sync.wait_for(lambda s, seen=state: s is not seen,
                                   timeout=1.0 if done else 0.2)
            except TimeoutError:
                pass

    def wait_in_step(self, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.in_step.is_set():
                return True
            time.sleep(0.05)
        return False

    # ------------------------------------------------------------------ one round
    def reconcile(self, state: PoolState) -> bool:
        """Make the lab match `state`; True when nothing is left to do."""
        if not state.hosts:
            return False
        self._controller(state)
        done = self._addresses(state)
        return self._vms(state) and done

    def _controller(self, state: PoolState) -> None:
        """xapi runs `openvswitch-config-update` on every host when the pool's SDN controller
        is introduced or forgotten: so does the lab (`netctl.lab.config_update`)."""
        controller = state.sdn_controller
        if controller == self._sdn_controller:
            return
        for host in self.lab.topology.hosts:
            try:
                said = config_update.update(self.lab.ovs(host.name), state)
            except Exception as exc:  # noqa: BLE001 - a plugin failure is xapi's error
                LOG.warning("openvswitch-config-update on %s failed: %s", host.name, exc)
                self.errors.append(f"{host.name}: openvswitch-config-update: {exc}")
                continue
            LOG.info("openvswitch-config-update on %s: %s", host.name, said)
        self._sdn_controller = controller

    def _host_name(self, state: PoolState, host_ref: str) -> str | None:
        host = state.hosts.get(host_ref)
        if host is None:
            return None
        return next((h.name for h in self.lab.topology.hosts if h.uuid == host.uuid), None)

    def _names(self, vms: list[VM]) -> dict[str, str]:
        """VM uuid -> lab name: the name the lab runs it under, else the topology's, else one
        made from its name_label that no other node has."""
        lab = self.lab
        by_uuid = {uuid: name for name, uuid in lab.state.vm_uuid.items()}
        by_uuid.update({v.uuid: v.name for v in lab.topology.vms if v.uuid not in by_uuid})
        taken = lab.node_names() | set(by_uuid.values())
        names: dict[str, str] = {}
        for vm in sorted(vms, key=lambda v: v.uuid):
            name = by_uuid.get(vm.uuid)
            if name is None:
                name = guest_name(vm.name_label, vm.uuid, taken)
                taken.add(name)
            names[vm.uuid] = name
        return names

    def _vms(self, state: PoolState) -> bool:
        lab = self.lab
        present: list[tuple[VM, str]] = []
        for vm in state.vms.values():
            if not vm.is_guest or vm.power_state not in PRESENT_STATES:
                continue
            host = self._host_name(state, vm.resident_on) if vm.resident_on != NULL_REF \
                else None
            if host is not None:
                present.append((vm, host))
        names = self._names([vm for vm, _ in present])
        wanted = {names[vm.uuid]: (vm, host) for vm, host in present}
        for name in list(lab.state.vm_host):
            if name not in wanted or lab.state.vm_uuid.get(name, wanted[name][0].uuid) \
                    != wanted[name][0].uuid:
                LOG.info("VM %s stops", name)
                lab.stop_vm(name)
        done = True
        for name, (vm, host) in wanted.items():
            if name not in lab.state.vm_host:
                LOG.info("VM %s starts on %s (domid %d)", name, host, vm.domid)
                lab.start_vm(name, host, vm.domid, vm.uuid)
            elif (lab.vm_host(name), lab.state.vm_domid[name]) != (host, vm.domid):
                LOG.info("VM %s moves to %s (domid %d)", name, host, vm.domid)
                if lab.move_vm(name, host, vm.domid, self.bridge_timeout):
                    done = False
            done = self._vifs(state, name, vm) and done
        return done

    def _vifs(self, state: PoolState, name: str, vm: VM) -> bool:
        """Plug what xapi has attached, unplug what it has not; True when all is in place."""
        lab = self.lab
        wanted: dict[int, VifSpec] = {}
        for vif in state.vm_vifs(vm.ref):
            spec = self._spec(state, vm, vif) if vif.currently_attached else None
            if spec is not None:
                wanted[spec.device] = spec
        for device in list(lab.state.plugged.get(name, [])):
            have = lab.vif_spec(name, device)
            want = wanted.get(device)
            if want is None or (want.bridge, want.mac, want.vif_uuid, want.network_uuid) != \
                    (have.bridge, have.mac, have.vif_uuid, have.network_uuid):
                lab.unplug_vif(name, device)
        done = True
        for device, spec in sorted(wanted.items()):
            if device in lab.state.plugged.get(name, []):
                continue
            try:
                lab.plug(name, spec, self.bridge_timeout)
            except LabError as exc:
                LOG.debug("%s", exc)
                done = False  # its bridge is not there yet: next round
                continue
            lab.announce(name, device)
        return done

    def _spec(self, state: PoolState, vm: VM, vif) -> VifSpec | None:  # noqa: ANN001 - model.VIF
        net = state.networks.get(vif.network)
        if net is None or not vif.device.isdigit():
            return None
        topo_vif = next((v for tvm in self.lab.topology.vms for v in tvm.vifs
                         if v.uuid == vif.uuid), None)
        addresses = (*topo_vif.ipv4, *topo_vif.ipv6) if topo_vif else ()
        parent, tag = None, None
        pif = state.pif_of(net.ref, vm.resident_on)
        if pif is not None and pif.vlan >= 0:
            tagged = state.vlan_parent_pif(pif)
            parent_net = state.networks.get(tagged.network) if tagged else None
            parent, tag = (parent_net.bridge if parent_net else None), pif.vlan
        return VifSpec(int(vif.device), vif.mac, vif.uuid, vm.uuid, net.uuid, net.bridge,
                       state.vif_mtu(vif), addresses, parent, tag)

    def _addresses(self, state: PoolState) -> bool:
        done = True
        for pif in state.pifs.values():
            wanted = []
            if pif.ip_configuration_mode == "Static" and pif.ip and pif.netmask:
                wanted.append(str(ipaddress.ip_interface(f"{pif.ip}/{pif.netmask}")))
            if pif.ipv6_configuration_mode == "Static":
                wanted += [a for a in pif.ipv6_addresses if "/" in a]
            if not wanted or not pif.currently_attached:
                continue
            host = self._host_name(state, pif.host)
            net = state.networks.get(pif.network)
            if host is None or net is None:
                continue
            ns = self.lab.ns(host)
            if not netns.link_exists(ns, net.bridge):
                done = False  # netctl has not built the bridge yet
                continue
            have = netns.run(ns, ["ip", "-o", "addr", "show", "dev", net.bridge]).stdout
            missing = [a for a in wanted if f" {a} " not in have]
            if missing:
                self.lab.own_ip(host, net.bridge)
                netns.configure(ns, net.bridge, addresses=missing)
        return done
