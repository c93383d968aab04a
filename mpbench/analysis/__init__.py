"""Statistics and claim verdicts shared by the CLI summary, the report and the gate."""
