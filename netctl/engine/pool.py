"""The pool kept live: xapi objects updated one by one, with the indexes the compilers need.

A frozen `PoolState` is rebuilt (and re-indexed) whole on every change: at 64 hosts x 1000 VIFs
that alone costs more than a VIF event may. `LivePool` answers the same questions
(`netctl.model.PoolQueries`: a compiler cannot tell the two apart) but is updated in place, in
O(1) per changed object, and keeps its indexes — PIFs by host and network, VIFs by network, VM,
host and (host, network), VMs by host, networks by bridge, VLANs by tagged PIF, hosts, networks
and VMs by name_label, everything by uuid — up to date as it goes. Lookups that return tuples
copy one index bucket, never the pool.

It is pure data (no I/O, no threads); the engine owns the only writer.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from netctl.model import (
    NULL_REF,
    PIF,
    VIF,
    VLAN,
    VM,
    Bond,
    Host,
    Network,
    Pool,
    PoolQueries,
    PoolState,
    SDNController,
    Tunnel,
    XapiObject,
)

BUCKETS: dict[type, str] = {
    Host: "hosts", Network: "networks", PIF: "pifs", Bond: "bonds", VLAN: "vlans",
    Tunnel: "tunnels", VIF: "vifs", VM: "vms", SDNController: "sdn_controllers",
}


def _add(index: dict[Any, dict[str, Any]], key: Any, obj: Any) -> None:
    bucket = index.get(key)
    if bucket is None:
        index[key] = bucket = {}
    bucket[obj.ref] = obj


def _drop(index: dict[Any, dict[str, Any]], key: Any, ref: str) -> None:
    bucket = index.get(key)
    if bucket is not None:
        bucket.pop(ref, None)
        if not bucket:
            del index[key]


def _add_named(index: dict[str, Any], obj: Any) -> None:
    have = index.get(obj.name_label)
    if have is None or (not isinstance(have, dict) and have.ref == obj.ref):
        index[obj.name_label] = obj
    elif isinstance(have, dict):
        have[obj.ref] = obj
    else:
        index[obj.name_label] = {have.ref: have, obj.ref: obj}


def _drop_named(index: dict[str, Any], obj: Any) -> None:
    have = index.get(obj.name_label)
    if isinstance(have, dict):
        have.pop(obj.ref, None)
        if len(have) == 1:
            index[obj.name_label] = next(iter(have.values()))
    elif have is not None and have.ref == obj.ref:
        del index[obj.name_label]


class LivePool(PoolQueries):
    """A mutable, indexed pool with `PoolState`'s read API. See the module docstring."""

    def __init__(self, objects: Iterable[XapiObject] = ()) -> None:
        self.pool: Pool | None = None
        self.hosts: dict[str, Host] = {}
        self.networks: dict[str, Network] = {}
        self.pifs: dict[str, PIF] = {}
        self.bonds: dict[str, Bond] = {}
        self.vlans: dict[str, VLAN] = {}
        self.tunnels: dict[str, Tunnel] = {}
        self.vifs: dict[str, VIF] = {}
        self.vms: dict[str, VM] = {}
        self.sdn_controllers: dict[str, SDNController] = {}
        self.quarantined: set[str] = set()
        self._by_uuid: dict[str, XapiObject] = {}
        # ref -> object, whatever its class: `get` is asked for every changed ref of a round
        # (a walk of nine buckets was 290k lookups in a cold start at 64 x 1000)
        self._by_ref: dict[str, XapiObject] = {}
        self._pifs_by_host: dict[str, dict[str, PIF]] = {}
        self._pifs_by_network: dict[str, dict[str, PIF]] = {}
        self._pif_by_host_network: dict[tuple[str, str], dict[str, PIF]] = {}
        self._vifs_by_network: dict[str, dict[str, VIF]] = {}
        self._vifs_by_vm: dict[str, dict[str, VIF]] = {}
        self._vifs_by_host_network: dict[tuple[str, str], dict[str, VIF]] = {}
        self._vms_by_host: dict[str, dict[str, VM]] = {}
        self._networks_by_bridge: dict[str, dict[str, Network]] = {}
        self._vlans_by_tagged: dict[str, dict[str, VLAN]] = {}
        # class -> name_label -> the object, or {ref: object} for a name several share: how a
        # person names a host, network or VM (`named`). One object, not a bucket, per name: at
        # 64 x 1000 a bucket per VM name would cost ~8 MiB per pool.
        self._named: dict[type, dict[str, Any]] = {Host: {}, Network: {}, VM: {}}
        for obj in objects:
            self.upsert(obj)

    # --- writing ----------------------------------------------------------------------------

    def upsert(self, obj: XapiObject) -> XapiObject | None:
        """Add or replace one object (by ref); returns the object it replaced, if any."""
        if isinstance(obj, Pool):
            old = self.pool
            if old is not None:
                self._by_uuid.pop(old.uuid, None)
            self.pool = obj
            self._by_uuid[obj.uuid] = obj
            return old
        old = self.remove(obj.ref, type(obj))
        if obj.ref in self._by_ref:  # one object per ref, as in xapi: another class's goes
            self.remove(obj.ref)
        getattr(self, BUCKETS[type(obj)])[obj.ref] = obj
        self._by_uuid[obj.uuid] = obj
        self._by_ref[obj.ref] = obj
        self._index(obj)
        return old

    def remove(self, ref: str, cls: type | None = None) -> XapiObject | None:
        """Remove one object (by ref; `cls` narrows the search); returns it, if it was here."""
        if self.pool is not None and self.pool.ref == ref and cls in (None, Pool):
            old_pool = self.pool
            self.pool = None
            self._by_uuid.pop(old_pool.uuid, None)
            return old_pool
        if cls not in BUCKETS:
            held = self._by_ref.get(ref)
            if held is None:
                return None
            cls = type(held)
        old = getattr(self, BUCKETS[cls]).pop(ref, None)
        if old is None:
            return None
        if self._by_uuid.get(old.uuid) is old:
            del self._by_uuid[old.uuid]
        if self._by_ref.get(ref) is old:
            del self._by_ref[ref]
        self._unindex(old)
        return old

    def get(self, ref: str) -> XapiObject | None:
        """Any object by ref, whatever its class (one lookup)."""
        pool = self.pool
        if pool is not None and pool.ref == ref:
            return pool
        return self._by_ref.get(ref)

    def _index(self, obj: XapiObject) -> None:
        if isinstance(obj, Host | Network | VM):
            _add_named(self._named[type(obj)], obj)
        if isinstance(obj, PIF):
            _add(self._pifs_by_host, obj.host, obj)
            _add(self._pifs_by_network, obj.network, obj)
            _add(self._pif_by_host_network, (obj.host, obj.network), obj)
        elif isinstance(obj, VIF):
            _add(self._vifs_by_network, obj.network, obj)
            _add(self._vifs_by_vm, obj.vm, obj)
            _add(self._vifs_by_host_network, (self._vm_host(obj.vm), obj.network), obj)
        elif isinstance(obj, VM):
            _add(self._vms_by_host, obj.resident_on, obj)
            for vif in self._vifs_by_vm.get(obj.ref, {}).values():  # were under no host
                _drop(self._vifs_by_host_network, (NULL_REF, vif.network), vif.ref)
                _add(self._vifs_by_host_network, (obj.resident_on, vif.network), vif)
        elif isinstance(obj, Network):
            _add(self._networks_by_bridge, obj.bridge, obj)
        elif isinstance(obj, VLAN):
            _add(self._vlans_by_tagged, obj.tagged_pif, obj)

    def _unindex(self, obj: XapiObject) -> None:
        if isinstance(obj, Host | Network | VM):
            _drop_named(self._named[type(obj)], obj)
        if isinstance(obj, PIF):
            _drop(self._pifs_by_host, obj.host, obj.ref)
            _drop(self._pifs_by_network, obj.network, obj.ref)
            _drop(self._pif_by_host_network, (obj.host, obj.network), obj.ref)
        elif isinstance(obj, VIF):
            _drop(self._vifs_by_network, obj.network, obj.ref)
            _drop(self._vifs_by_vm, obj.vm, obj.ref)
            _drop(self._vifs_by_host_network, (self._vm_host(obj.vm), obj.network), obj.ref)
        elif isinstance(obj, VM):
            _drop(self._vms_by_host, obj.resident_on, obj.ref)
            for vif in self._vifs_by_vm.get(obj.ref, {}).values():  # now under no host
                _drop(self._vifs_by_host_network, (obj.resident_on, vif.network), vif.ref)
                _add(self._vifs_by_host_network, (NULL_REF, vif.network), vif)
        elif isinstance(obj, Network):
            _drop(self._networks_by_bridge, obj.bridge, obj.ref)
        elif isinstance(obj, VLAN):
            _drop(self._vlans_by_tagged, obj.tagged_pif, obj.ref)

    def _vm_host(self, vm_ref: str) -> str:
        """The host key a VIF is indexed under: its VM's resident_on (NULL_REF: no VM)."""
        vm = self.vms.get(vm_ref)
        return vm.resident_on if vm is not None else NULL_REF

    # --- index lookups (PoolQueries) --------------------------------------------------------

    def by_uuid(self, uuid: str) -> XapiObject | None:
        return self._by_uuid.get(uuid)

    def host_pifs(self, host: str) -> tuple[PIF, ...]:
        return tuple(self._pifs_by_host.get(host, {}).values())

    def pif_of(self, network: str, host: str) -> PIF | None:
        bucket = self._pif_by_host_network.get((host, network))
        return next(reversed(bucket.values())) if bucket else None

    def network_pifs(self, network: str) -> tuple[PIF, ...]:
        return tuple(self._pifs_by_network.get(network, {}).values())

    def network_vifs(self, network: str) -> tuple[VIF, ...]:
        return tuple(self._vifs_by_network.get(network, {}).values())

    def vm_vifs(self, vm: str) -> tuple[VIF, ...]:
        return tuple(self._vifs_by_vm.get(vm, {}).values())

    def resident_vms(self, host: str) -> tuple[VM, ...]:
        return tuple(self._vms_by_host.get(host, {}).values())

    def network_by_bridge(self, bridge: str) -> Network | None:
        bucket = self._networks_by_bridge.get(bridge)
        return next(reversed(bucket.values())) if bucket else None

    def networks_on_bridge(self, bridge: str) -> tuple[Network, ...]:
        """Every network naming `bridge` (more than one only in invalid intent)."""
        return tuple(self._networks_by_bridge.get(bridge, {}).values())

    def vlans_on(self, tagged_pif: str) -> tuple[VLAN, ...]:
        return tuple(self._vlans_by_tagged.get(tagged_pif, {}).values())

    def host_network_vifs(self, host: str, network: str) -> tuple[VIF, ...]:
        return tuple(self._vifs_by_host_network.get((host, network), {}).values())

    def named(self, cls: type[Host] | type[Network] | type[VM], name: str) -> tuple[Any, ...]:
        """The hosts, networks or VMs (`cls`) whose name_label is `name` — xapi does not make
        names unique, so any number. For `netctl status --vm NAME` and its kin: a person asks
        by name, and at 64 hosts x 1000 VIFs a walk over every VM costs more than the answer
        may. One index bucket is copied (safe to call from another thread, as the other
        lookups)."""
        found = self._named[cls].get(name)
        if found is None:
            return ()
        return tuple(found.values()) if isinstance(found, dict) else (found,)

    # --- snapshots ----------------------------------------------------------------------------

    def objects(self) -> list[XapiObject]:
        out: list[XapiObject] = [self.pool] if self.pool is not None else []
        for name in BUCKETS.values():
            out.extend(getattr(self, name).values())
        return out

    def snapshot(self) -> PoolState:
        """A frozen copy (O(pool): for tests, proofs and full recomputes, not per event)."""
        state = PoolState.build(self.objects())
        if self.quarantined:
            state = state.replace(quarantined=frozenset(self.quarantined))
        return state
