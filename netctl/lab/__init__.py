"""netctl/lab."""
