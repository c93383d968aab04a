"""The models a suite names: the reference transformers (reference.py), Transformers' causal
LMs built from a config (hf.py) and the user's own factories (user.py); entry.py builds any of
them, flops.py counts their FLOPs."""
