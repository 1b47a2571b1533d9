"""vlan."""
