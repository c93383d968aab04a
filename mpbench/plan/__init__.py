"""The run plan: one RunSpec per run a suite expands to (pure data over the suite schema).

Below the profilers, which read the spec of the run they measure; the checks that need
registries are in mpbench.train.load."""
