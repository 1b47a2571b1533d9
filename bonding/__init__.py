"""bonding."""
