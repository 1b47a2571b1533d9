"""Host bridges: xapi networks, PIFs, VLANs and tunnels → each host's OVS bridges, fake bridges,
tags, trunks and tunnel ports (`compile_host`). Pure: no I/O."""

from vlan.checks import check_host_networking
from vlan.host import compile_host, concerns_host
from vlan.tunnels import allocate_tunnel_keys, derived_key, tunnel_port_name

__all__ = ["allocate_tunnel_keys", "check_host_networking", "compile_host", "concerns_host",
           "derived_key", "tunnel_port_name"]
