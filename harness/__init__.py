"""Rigs shared by the test suite and the benchmarks (issue 11, "the house").

Benchmarks used to import test files for their set-ups; both now import this package instead.
It sits beside `netctl/`, never inside it: product code must not import it (a test in
`tests/bench/test_harness_boundary.py` checks that), and it is not part of the installed
package (`pyproject.toml` ships `netctl*`, `flows*`, `bonding*`, `vlan*` only).

- `harness.footprint`: what a lab leaves behind on this machine, read from the machine itself.
- `harness.sandbox`: one real ovsdb-server + ovs-vswitchd in a namespace of its own.
- `harness.hostnet_builders`: hand-made `PoolState`s for the host-networking compilers.
- `harness.hostnet_lab`: a lab whose host networking netctl builds over OVSDB.
- `harness.sdn`: a lab under netctl's OpenFlow controller process, fed by the xapi simulator.
- `harness.synthetic`: large synthetic pools (H hosts x V VIFs) for the xapi simulator.
"""
