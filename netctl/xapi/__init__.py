"""netctl/xapi: the xapi simulator and the sync client that reads intent from xapi.

- `Simulator` (`netctl.xapi.sim`) + `serve()` (`netctl.xapi.server`): a pool master in memory,
  XML-RPC and JSON-RPC over HTTP, seeded from a lab topology (`Simulator.from_topology`).
- `XapiSync` (`netctl.xapi.sync`): full sync then `event.from` increments into immutable
  `netctl.model.PoolState` snapshots plus a `ChangeSet` per batch.
"""
