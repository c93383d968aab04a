"""Formats other tools read: pytest-benchmark JSON."""
