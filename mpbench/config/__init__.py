"""Suite schema: data only; imports nothing above errors.py and hardware.py."""
