"""Plan and run training specs; write records."""
