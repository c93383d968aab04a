"""Suite schema: data only; imports nothing above errors.py and dtypes.py."""
