"""netctl/xapi: the sync client that reads intent from xapi (product) and a xapi simulator (rig).

- `XapiSync` (`netctl.xapi.sync`, with `convert` and `transport`): full sync then
  `event.from` increments; each batch a `ChangeSet` holding every changed object before and
  after (what `netctl run`'s engine applies), and `netctl.model.PoolState` snapshots for
  consumers that want a whole pool.
- `Simulator` (`netctl.xapi.sim`) + `serve()` (`netctl.xapi.server`): a pool master in memory,
  XML-RPC and JSON-RPC over HTTP. `Simulator.from_topology` seeds it from a pool description
  (`netctl.topology.Topology`: hosts, PIFs, bonds, VLANs, tunnels, networks, VMs, VIFs, and a
  VM template); from then on only calls change it, as they change xapi (networks, VIFs, the
  VM lifecycle, ...), and `event.from` reports them. The product never imports it.
"""
