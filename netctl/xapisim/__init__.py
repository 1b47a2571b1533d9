"""netctl/xapisim: a xapi pool master in memory (a test rig, beside the product).

`Simulator` (`netctl.xapisim.sim`) + `serve()` (`netctl.xapisim.server`): XML-RPC and JSON-RPC
over HTTP, which the official `XenAPI` client cannot tell from xapi for what netctl and an
operator use. `Simulator.from_topology` seeds it from a pool description
(`netctl.topology.Topology`: hosts, PIFs, bonds, VLANs, tunnels, networks, VMs, VIFs, and a VM
template); from then on only calls change it, as they change xapi (networks, VIFs, the VM
lifecycle, ...), and `event.from` reports them. The product never imports it; the product's
own xapi client is `netctl.sources.xapi`.
"""
