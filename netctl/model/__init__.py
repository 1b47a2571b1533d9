"""The pool as netctl sees it: xapi's networking objects as frozen data, the pool state with its
queries, and validation of bad intent. Everything downstream (the OVSDB compilers for bridges,
bonds, VLANs and tunnels, the OpenFlow compiler, the engine) reads intent through this package
and nothing else, so it is pure: no I/O, no wire format; it imports the standard library only
(netaddr would be allowed; `tests/unit/test_architecture.py` holds the rule).
`netctl.sources.xapi.convert` turns xapi records (XML-RPC or JSON-RPC) into these objects.

Three jobs, one module each:

- `netctl.model.types`: the objects (`Pool`, `Host`, `Network`, `PIF`, `Bond`, `VLAN`,
  `Tunnel`, `VIF`, `VM`, `SDNController`), `FrozenMap`, `PifType` and the vocabulary of their
  fields (`NULL_REF`, the modes xapi accepts, `LOCKING_OVERRIDE_KEY`);
- `netctl.model.state`: `PoolState`, an immutable indexed snapshot, and `PoolQueries`, the
  lookups every reader of the pool uses (the engine's live pool answers the same ones);
- `netctl.model.validation`: `validate(state)` turns bad intent into `Problem`s and returns a
  `PoolState` without the invalid objects (and without the objects that depend on them), so
  bad intent never blocks good intent; the per-object `check_*` rules it is made of are shared
  with the engine's incremental validator.

Beside them, `netctl.model.hostport` writes and reads ADDRESS:PORT the way OVS does (an IPv6
address in brackets), for every room that joins a pool's address with a port.

Import from here (`from netctl.model import VIF, PoolState, Problem`): `__all__` below is the
model's public API; the modules' underscore names are theirs alone.
"""

from netctl.model.state import FrozenRefMap, PoolQueries, PoolState
from netctl.model.types import (
    BOND_MODES,
    EMPTY,
    ENFORCED_LOCKING_MODES,
    IP_CONFIGURATION_MODES,
    IPV6_CONFIGURATION_MODES,
    LACP_PROPERTIES,
    LOCKING_OVERRIDE_KEY,
    NETWORK_DEFAULT_LOCKING_MODES,
    NULL_REF,
    PIF,
    SDN_PROTOCOLS,
    TUNNEL_PROTOCOLS,
    VIF,
    VIF_LOCKING_MODES,
    VLAN,
    VM,
    VM_POWER_STATES,
    XAPI_CLASS,
    Bond,
    FrozenMap,
    Host,
    Network,
    PifType,
    Pool,
    SDNController,
    Tunnel,
    XapiObject,
    tap_port,
    tap_twin,
    vif_port,
)
from netctl.model.validation import (
    BRIDGE_RE,
    MAC_RE,
    Finding,
    Problem,
    applied,
    blocks,
    check_bond,
    check_network,
    check_pif,
    check_pif_represents,
    check_pool,
    check_sdn,
    check_tunnel,
    check_vif,
    check_vlan,
    check_vm,
    describe,
    duplicate_macs,
    validate,
)

__all__ = [
    # types: xapi's objects and the vocabulary of their fields
    "BOND_MODES",
    "EMPTY",
    "ENFORCED_LOCKING_MODES",
    "IPV6_CONFIGURATION_MODES",
    "IP_CONFIGURATION_MODES",
    "LACP_PROPERTIES",
    "LOCKING_OVERRIDE_KEY",
    "NETWORK_DEFAULT_LOCKING_MODES",
    "NULL_REF",
    "PIF",
    "SDN_PROTOCOLS",
    "TUNNEL_PROTOCOLS",
    "VIF",
    "VIF_LOCKING_MODES",
    "VLAN",
    "VM",
    "VM_POWER_STATES",
    "XAPI_CLASS",
    "Bond",
    "FrozenMap",
    "Host",
    "Network",
    "PifType",
    "Pool",
    "SDNController",
    "Tunnel",
    "XapiObject",
    "tap_port",
    "tap_twin",
    "vif_port",
    # state: the pool snapshot and its queries
    "FrozenRefMap",
    "PoolQueries",
    "PoolState",
    # validation: bad intent found and said
    "BRIDGE_RE",
    "MAC_RE",
    "Finding",
    "Problem",
    "applied",
    "blocks",
    "check_bond",
    "check_network",
    "check_pif",
    "check_pif_represents",
    "check_pool",
    "check_sdn",
    "check_tunnel",
    "check_vif",
    "check_vlan",
    "check_vm",
    "describe",
    "duplicate_macs",
    "validate",
]
