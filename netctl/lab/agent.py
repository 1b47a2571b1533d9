"""The lab's hypervisor side, driven by xapi: what xenopsd and networkd's IP part do on a host.

netctl never plugs VIFs or sets dom0 IP addresses: on a real host xenopsd plugs a running VM's
VIFs into the bridges netctl built, and networkd puts a PIF's IP configuration on its bridge
device. In the lab this agent does both, from xapi's state (`XapiSync`), so a `VIF.plug`,
`VM.start`, `VM.pool_migrate` or `PIF.reconfigure_ip` made through the XenAPI client shows up
in the lab as it would on real hosts:
- a VM that is Running and resident on a host has its `currently_attached` VIFs plugged there
  (`vif<domid>.<device>`, waiting for the network's bridge); a changed `resident_on` migrates
  it (new domid from xapi); a detached VIF is unplugged;
- a PIF with a Static IPv4/IPv6 configuration gets that address on its bridge device in the
  host's namespace once netctl has created the bridge.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time

from netctl.lab import netns
from netctl.lab.lab import Lab, LabError
from netctl.model import NULL_REF, PoolState
from netctl.xapi.sync import XapiSync

LOG = logging.getLogger("netctl.lab.agent")


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
        self.rounds = 0
        self.in_step = threading.Event()  # set while the lab matches the last seen state

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
            self.rounds += 1
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
        done = self._addresses(state)
        return self._vms(state) and done

    def _host_name(self, state: PoolState, host_ref: str) -> str | None:
        host = state.hosts.get(host_ref)
        if host is None:
            return None
        return next((h.name for h in self.lab.topology.hosts if h.uuid == host.uuid), None)

    def _vms(self, state: PoolState) -> bool:
        done = True
        for tvm in self.lab.topology.vms:
            vm = state.by_uuid(tvm.uuid)
            if vm is None:
                continue
            running = vm.power_state == "Running" and vm.resident_on != NULL_REF
            host = self._host_name(state, vm.resident_on) if running else None
            plugged = set(self.lab.state.plugged.get(tvm.name, []))
            if host is not None and (host != self.lab.vm_host(tvm.name)
                                     or vm.domid != self.lab.state.vm_domid[tvm.name]):
                for device in sorted(plugged):
                    self.lab.unplug_vif(tvm.name, device)
                self.lab.state.vm_host[tvm.name] = host
                self.lab.state.vm_domid[tvm.name] = vm.domid
                self.lab.state.save()
                plugged = set()
            for tvif in tvm.vifs:
                vif = state.by_uuid(tvif.uuid)
                want = host is not None and vif is not None and vif.currently_attached
                if want and tvif.device not in plugged:
                    try:
                        self.lab.plug_vif(tvm.name, tvif.device, self.bridge_timeout)
                        self.lab.announce(tvm.name, tvif.device)
                    except LabError:
                        done = False  # its bridge is not there yet: next round
                elif not want and tvif.device in plugged:
                    self.lab.unplug_vif(tvm.name, tvif.device)
        return done

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
