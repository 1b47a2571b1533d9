"""Random change sequences on real pool shapes, for the engine's proofs: each step is what a
xapi event batch could carry (objects added, changed, removed), good intent and bad."""

from __future__ import annotations

import random
from dataclasses import replace

from netctl.model import NULL_REF, PIF, VIF, VLAN, VM, FrozenMap, Network, PoolState, Tunnel
from netctl.sources.xapi.convert import state_from_records
from netctl.sources.xapi.sync import SYNC_CLASSES
from netctl.topology import parse_file
from netctl.xapisim.sim import Simulator
from tests.conftest import TOPOLOGIES


def topology_state(name: str = "demo-pool.yaml") -> PoolState:
    sim = Simulator.from_topology(parse_file(TOPOLOGIES / name))
    user, password = next(iter(sim.users.items()))
    session = sim.call("session.login_with_password", [user, password])
    return state_from_records({c: sim.call(f"{c}.get_all_records", [session])
                               for c in SYNC_CLASSES})


def mutate(objs: dict, rng: random.Random, removed: dict | None = None) -> list:
    """Apply one random change to `objs` (ref -> object, the raw pool); returns the refs
    changed. `removed` keeps what was removed, for putting it back later."""
    global _REMOVED
    _REMOVED = removed if removed is not None else {}
    kinds = [_vif_locking, _vif_mac, _vif_plug, _vif_move, _vm_move, _vm_power, _vif_trunks,
             _network_bridge, _network_mtu, _pif_mtu, _pif_attach, _vlan_tag, _tunnel_ip,
             _tunnel_family,
             _remove, _readd, _vif_new, _network_default, _pool_fail_mode, _network_fail_mode,
             _vif_backend, _network_in_band, _pif_keys, _vif_qos, _mirror, _export,
             _rules]
    for _ in range(20):
        changed = rng.choice(kinds)(objs, rng)
        if changed:
            return changed
    return []


def _pick(objs: dict, cls: type, rng: random.Random):
    items = sorted((o for o in objs.values() if isinstance(o, cls)), key=lambda o: o.uuid)
    return rng.choice(items) if items else None


def _put(objs: dict, obj) -> list:
    objs[obj.ref] = obj
    return [obj.ref]


def _vif_locking(objs, rng):
    v = _pick(objs, VIF, rng)
    if v is None:
        return []
    mode = rng.choice(["locked", "unlocked", "disabled", "network_default", "bogus"])
    v4 = rng.choice([(), ("10.10.0.11",), ("10.10.0.0/24",), ("not-an-ip",)])
    v6 = rng.choice([(), ("fd4e:10::11",), ("fd4e:10::/64",)])
    other = rng.choice([FrozenMap(), FrozenMap({"netctl-locking-mode": "locked"}),
                        FrozenMap({"netctl-locking-mode": "lockd"})])
    return _put(objs, replace(v, locking_mode=mode, ipv4_allowed=v4, ipv6_allowed=v6,
                              other_config=other))


def _rules(objs, rng):
    """Traffic rules (`netctl.model.rules`) on a VIF or a network, good and bad."""
    obj = _pick(objs, rng.choice([VIF, Network]), rng)
    if obj is None:
        return []
    value = rng.choice([None, "allow tcp out 443; drop any", "drop udp in 53-60 10.0.0.0/8",
                        "dorp tcp 22x; allow icmpv6 fd00::/8", "allow arp; drop any in"])
    oc = dict(obj.other_config)
    oc.pop("netctl-rules", None)
    if value is not None:
        oc["netctl-rules"] = value
    return _put(objs, replace(obj, other_config=FrozenMap(oc)))


def _vif_backend(objs, rng):
    """Bad (and good) values of what a VIF's backend reads: issue 17's per-field rules."""
    v = _pick(objs, VIF, rng)
    if v is None:
        return []
    other = rng.choice([FrozenMap(), FrozenMap({"mtu": "abc"}), FrozenMap({"mtu": "9000"}),
                        FrozenMap({"mtu": "abc", "netctl-locking-mode": "bogus"})])
    qos = rng.choice([("", FrozenMap()), ("ratelimit", FrozenMap({"kbps": "-5"})),
                      ("ratelimit", FrozenMap({"kbps": "100"})), ("leaky", FrozenMap())])
    return _put(objs, replace(v, other_config=other, qos_algorithm_type=qos[0],
                              qos_algorithm_params=qos[1]))


def _network_in_band(objs, rng):
    n = _pick(objs, Network, rng)
    value = rng.choice([None, "true", "maybe"])
    oc = dict(n.other_config) if n else {}
    oc.pop("vswitch-disable-in-band", None)
    if value:
        oc["vswitch-disable-in-band"] = value
    return _put(objs, replace(n, other_config=FrozenMap(oc))) if n else []


def _pif_keys(objs, rng):
    p = _pick(objs, PIF, rng)
    oc = rng.choice([FrozenMap(), FrozenMap({"bond-downdelay": "soon"}),
                     FrozenMap({"vswitch-disable-in-band": "0", "mtu": "jumbo"}),
                     FrozenMap({"bond-lacp-time": "fast"})])
    return _put(objs, replace(p, other_config=oc)) if p else []


def _vif_mac(objs, rng):
    v = _pick(objs, VIF, rng)
    others = [o for o in objs.values() if isinstance(o, VIF) and o.ref != (v.ref if v else "")]
    if v is None or not others:
        return []
    mac = rng.choice([rng.choice(others).mac.upper(), f"02:00:00:00:77:{rng.randrange(8):02x}",
                      "zz"])
    return _put(objs, replace(v, mac=mac))


def _vif_plug(objs, rng):
    v = _pick(objs, VIF, rng)
    return _put(objs, replace(v, currently_attached=not v.currently_attached)) if v else []


def _vif_move(objs, rng):
    v, n = _pick(objs, VIF, rng), _pick(objs, Network, rng)
    return _put(objs, replace(v, network=n.ref)) if v and n else []


def _vif_trunks(objs, rng):
    v = _pick(objs, VIF, rng)
    return _put(objs, replace(v, trunks=rng.choice([(), (10,), (20, 30), (5000,)]))) if v else []


def _vif_qos(objs, rng):
    """A rate limit set, changed, removed or mistyped (`flows.qos`: a meter per port)."""
    v = _pick(objs, VIF, rng)
    if not v:
        return []
    kbps = rng.choice([None, "1000", "2441", "0", "fast"])
    return _put(objs, replace(v, qos_algorithm_type="ratelimit" if kbps else "",
                              qos_algorithm_params=FrozenMap({"kbps": kbps} if kbps else {})))


def _mirror(objs, rng):
    """A VIF or network mirrored (to another VIF, an RSPAN VLAN, a bad value) or not
    (`vlan.mirror`); other keys of its other_config kept."""
    obj = _pick(objs, rng.choice([VIF, Network]), rng)
    other = _pick(objs, VIF, rng)
    if obj is None or other is None:
        return []
    oc = {k: v for k, v in obj.other_config.items() if not k.startswith("netctl-mirror-")}
    to = rng.choice([None, other.uuid, other.uuid, "vlan:10", "vlan:20", "vlan:30", "vlan:0",
                     "nowhere"])
    if to is not None:
        oc["netctl-mirror-to"] = to
        direction = rng.choice([None, "both", "from-vm", "to-vm", "sideways"])
        if direction is not None:
            oc["netctl-mirror-direction"] = direction
    return _put(objs, replace(obj, other_config=FrozenMap(oc)))


def _export(objs, rng):
    """Flow export set, changed, removed or mistyped on the pool or a network (`vlan.export`:
    every bridge's NetFlow/IPFIX/sFlow rows); other keys of its other_config kept."""
    pool = next((o for o in objs.values() if type(o).__name__ == "Pool"), None)
    obj = pool if rng.random() < 0.5 else _pick(objs, Network, rng)
    if obj is None:
        return []
    oc = {k: v for k, v in obj.other_config.items()
          if not k.startswith(("netflow-", "ipfix-", "sflow-"))}
    for key, values in (("netflow-targets", ["192.0.2.1:2055", "+[2001:db8::1]:2055", "none",
                                             "192.0.2.1"]),
                        ("ipfix-targets", ["192.0.2.1:4739", "[::1]:4739"]),
                        ("ipfix-sampling", ["1", "0"]),
                        ("sflow-targets", ["192.0.2.1:6343,192.0.2.2:6343", "none"]),
                        ("sflow-polling", ["0", "soon"])):
        if rng.random() < 0.4:
            oc[key] = rng.choice(values)
    return _put(objs, replace(obj, other_config=FrozenMap(oc)))


def _vif_new(objs, rng):
    vm, n = _pick(objs, VM, rng), _pick(objs, Network, rng)
    if vm is None or n is None or vm.is_control_domain:
        return []
    i = rng.randrange(10_000)
    used = {o.device for o in objs.values() if isinstance(o, VIF) and o.vm == vm.ref}
    if str(7 + i % 3) in used:  # xapi refuses a device a VM already has
        return []
    return _put(objs, VIF(f"OpaqueRef:new-vif-{i}", f"new-vif-{i}", str(7 + i % 3), n.ref, vm.ref,
                          f"02:00:00:00:88:{i % 16:02x}", currently_attached=True))


def _vm_move(objs, rng):
    vm = _pick(objs, VM, rng)
    hosts = [o.ref for o in sorted((o for o in objs.values() if type(o).__name__ == "Host"),
                                   key=lambda o: o.uuid)]
    if vm is None or vm.is_control_domain or not hosts:
        return []
    host = rng.choice(hosts)
    # unique per host in xapi; here pool-wide, so a just-left domain's port (which may linger
    # a moment on its old host: FakeSwitches) never shares its name with a newcomer's
    taken = {o.domid for o in objs.values() if isinstance(o, VM)}
    domid = rng.choice([d for d in range(1, 199) if d not in taken])
    return _put(objs, replace(vm, resident_on=host, domid=domid))


def _vm_power(objs, rng):
    vm = _pick(objs, VM, rng)
    if vm is None or vm.is_control_domain:
        return []
    state = rng.choice(["Running", "Halted", "Paused"])
    return _put(objs, replace(vm, power_state=state,
                              resident_on=vm.resident_on if state != "Halted" else NULL_REF))


def _network_bridge(objs, rng):
    n, m = _pick(objs, Network, rng), _pick(objs, Network, rng)
    if n is None:
        return []
    bridge = rng.choice([m.bridge if m else "xapi9", "xapi9", "", "bad bridge!"])
    return _put(objs, replace(n, bridge=bridge))


def _network_mtu(objs, rng):
    n = _pick(objs, Network, rng)
    return _put(objs, replace(n, mtu=rng.choice([1500, 9000, 20000, 60]))) if n else []


def _network_default(objs, rng):
    n = _pick(objs, Network, rng)
    mode = rng.choice(["unlocked", "disabled", "weird"])
    return _put(objs, replace(n, default_locking_mode=mode)) if n else []


def _network_fail_mode(objs, rng):
    n = _pick(objs, Network, rng)
    value = rng.choice([None, "standalone", "secure", "open"])
    oc = dict(n.other_config) if n else {}
    oc.pop("vswitch-controller-fail-mode", None)
    if value:
        oc["vswitch-controller-fail-mode"] = value
    return _put(objs, replace(n, other_config=FrozenMap(oc))) if n else []


def _pool_fail_mode(objs, rng):
    pool = next((o for o in objs.values() if type(o).__name__ == "Pool"), None)
    if pool is None:
        return []
    value = rng.choice([None, "standalone", "secure"])
    oc = dict(pool.other_config)
    oc.pop("vswitch-controller-fail-mode", None)
    if value:
        oc["vswitch-controller-fail-mode"] = value
    return _put(objs, replace(pool, other_config=FrozenMap(oc)))


def _pif_mtu(objs, rng):
    p = _pick(objs, PIF, rng)
    oc = rng.choice([FrozenMap(), FrozenMap({"mtu": "9000"}), FrozenMap({"mtu": "99999"})])
    return _put(objs, replace(p, other_config=oc)) if p else []


def _pif_attach(objs, rng):
    p = _pick(objs, PIF, rng)
    return _put(objs, replace(p, currently_attached=not p.currently_attached)) if p else []


def _vlan_tag(objs, rng):
    v, w = _pick(objs, VLAN, rng), _pick(objs, VLAN, rng)
    return _put(objs, replace(v, tag=rng.choice([w.tag, 10, 20, 4095, 77]))) if v and w else []


def _tunnel_ip(objs, rng):
    t = _pick(objs, Tunnel, rng)
    if t is None or t.transport_pif not in objs:
        return []
    pif = objs[t.transport_pif]
    ip = rng.choice(["", pif.ip or "172.30.0.9", "172.30.0.77"])
    mode = "None" if not ip else "Static"
    return _put(objs, replace(pif, ip=ip, ip_configuration_mode=mode))


def _tunnel_family(objs, rng):
    """A transport PIF turns IPv6 (with or without an address) or back to IPv4: its peers'
    tunnels follow, or a mixed-family Problem comes."""
    t = _pick(objs, Tunnel, rng)
    if t is None or t.transport_pif not in objs:
        return []
    pif = objs[t.transport_pif]
    family = rng.choice(["IPv4", "IPv6", "IPv6"])
    ipv6 = rng.choice([("fd00:30::9/64",), ("fe80::9/64", "fd00:30::77/64"), ("",)])
    return _put(objs, replace(pif, primary_address_type=family, ipv6=ipv6,
                              ipv6_configuration_mode="None" if ipv6 == ("",) else "Static"))


_REMOVED: dict[str, object] = {}


def _remove(objs, rng):
    ref = rng.choice([o.ref for o in sorted(objs.values(), key=lambda o: o.uuid)
                      if type(o).__name__ != "Pool"])
    _REMOVED[ref] = objs.pop(ref)
    return [ref]


def _readd(objs, rng):
    gone = [o.ref for o in sorted(_REMOVED.values(), key=lambda o: o.uuid) if o.ref not in objs]
    if not gone:
        return []
    ref = rng.choice(gone)
    objs[ref] = _REMOVED.pop(ref)
    return [ref]
