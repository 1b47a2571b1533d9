"""Stateful property test: random xapi operations, stale sessions, server restarts and mass
deletes beyond the tombstone cap; the sync client's PoolState always converges to the truth."""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from netctl.xapisim.errors import XapiError
from tests.xapi.conftest import topology
from tests.xapi.test_sync import make_sync, start, truth

TOMBSTONE_CAP, TOMBSTONE_KEEP = 6, 3


class PoolMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.srv = start(topology("mini"), tombstone_cap=TOMBSTONE_CAP,
                         tombstone_keep=TOMBSTONE_KEEP)
        self.sim = self.srv.sim
        self.session = self.sim.call("session.login_with_password", ["root", "s3cret"])
        self.sync = make_sync(self.srv, timeout=0.5).start()
        self.mac = 0

    def call(self, method: str, *args):
        """Run a xapi call; refused calls are fine (they must change nothing)."""
        try:
            return self.sim.call(method, [self.session, *args])
        except XapiError as err:
            if err.code == "SESSION_INVALID":
                self.session = self.sim.call("session.login_with_password", ["root", "s3cret"])
                return self.call(method, *args)
            return None

    def refs(self, cls: str) -> list[str]:
        with self.sim.store.lock:
            return self.sim.store.refs(cls)  # creation order: same steps, same list

    def pick(self, data, cls: str) -> str | None:
        """An object by position (refs are random, positions replay identically)."""
        refs = self.refs(cls)
        return refs[data.draw(st.integers(0, len(refs) - 1))] if refs else None

    @rule(mtu=st.sampled_from(["1500", "9000", "0"]))
    def create_network(self, mtu):
        self.call("network.create", {"name_label": "n", "other_config": {}, "MTU": mtu})

    @rule(data=st.data())
    def destroy_network(self, data):
        self.call("network.destroy", self.pick(data, "network"))

    @rule(data=st.data(), device=st.integers(0, 6))
    def create_vif(self, data, device):
        self.mac += 1
        self.call("VIF.create", {
            "device": str(device), "network": self.pick(data, "network"),
            "VM": self.pick(data, "VM"), "MAC": f"02:01:00:00:{self.mac // 256:02x}:"
                                                f"{self.mac % 256:02x}",
            "MTU": "1500", "other_config": {}, "qos_algorithm_type": "",
            "qos_algorithm_params": {}, "locking_mode": data.draw(st.sampled_from(
                ["network_default", "locked", "unlocked", "disabled"]))})

    @rule(data=st.data(), op=st.sampled_from(["VIF.plug", "VIF.unplug", "VIF.destroy"]))
    def vif_op(self, data, op):
        self.call(op, self.pick(data, "VIF"))

    @rule(data=st.data(), mode=st.sampled_from(["locked", "unlocked", "disabled",
                                                "network_default"]),
          ips=st.lists(st.sampled_from(["10.0.0.1", "10.0.0.2/32", "bad"]), max_size=2))
    def vif_locking(self, data, mode, ips):
        vif = self.pick(data, "VIF")
        self.call("VIF.set_locking_mode", vif, mode)
        self.call("VIF.set_ipv4_allowed", vif, ips)

    @rule(data=st.data(), tag=st.integers(0, 4095))
    def vlan_create(self, data, tag):
        net = self.call("network.create", {"name_label": "v", "other_config": {}})
        self.call("VLAN.create", self.pick(data, "PIF"), tag, net)

    @rule(data=st.data())
    def vlan_destroy(self, data):
        self.call("VLAN.destroy", self.pick(data, "VLAN"))

    @rule(data=st.data(), op=st.sampled_from(["VM.shutdown", "VM.start", "VM.pool_migrate"]))
    def vm_op(self, data, op):
        vm = self.pick(data, "VM")
        if op == "VM.start":
            self.call(op, vm, False, False)
        elif op == "VM.pool_migrate":
            self.call(op, vm, self.pick(data, "host"), {})
        else:
            self.call(op, vm)

    @rule(data=st.data(), key=st.sampled_from(["a", "b"]))
    def other_config(self, data, key):
        cls = data.draw(st.sampled_from(["network", "VIF", "PIF", "pool"]))
        ref = self.pick(data, cls)
        if data.draw(st.booleans()):
            self.call(f"{cls}.add_to_other_config", ref, key, "v")
        else:
            self.call(f"{cls}.remove_from_other_config", ref, key)

    @rule()
    def mass_delete(self):
        """More deletes than the tombstone cap between two event.from scans."""
        vm = self.refs("VM")[-1]
        net = self.call("network.create", {"name_label": "burst", "other_config": {}})
        with self.sim.store.lock:  # the client cannot scan in between
            for i in range(TOMBSTONE_CAP + 2):
                self.mac += 1
                self.call("VIF.create", {
                    "device": str(100 + i), "network": net, "VM": vm,
                    "MAC": f"02:02:00:00:{self.mac // 256:02x}:{self.mac % 256:02x}",
                    "MTU": "1500", "other_config": {}, "qos_algorithm_type": "",
                    "qos_algorithm_params": {}})
        self.converge()
        resyncs = self.sync.full_syncs
        with self.sim.store.lock:
            for vif in list(self.sim.store.get("network", net, "VIFs")):
                self.sim.store.delete("VIF", vif)
        self.converge()
        assert self.sync.full_syncs > resyncs  # valid_ref_counts caught the lost deletes

    @rule()
    def invalidate_sessions(self):
        self.sim.invalidate_all_sessions()

    @rule(drop=st.booleans())
    def restart_server(self, drop):
        self.srv.restart(drop_sessions=drop)

    @invariant()
    def converge(self):
        expected = truth(self.sim)
        self.sync.wait_for(lambda s: s == expected, timeout=15)

    def teardown(self):
        self.sync.stop()
        self.srv.stop()


PoolMachine.TestCase.settings = settings(
    max_examples=12, stateful_step_count=15, deadline=None,
    suppress_health_check=[HealthCheck.too_slow])
TestPoolConvergence = PoolMachine.TestCase
