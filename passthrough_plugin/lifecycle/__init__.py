"""The ledger of device assignments: mapping, billing, rebuild and evacuate."""
