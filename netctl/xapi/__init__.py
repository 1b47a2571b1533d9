"""netctl/xapi."""
