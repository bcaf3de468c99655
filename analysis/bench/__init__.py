"""Benchmarks: ``python -m analysis.bench <name> [options]`` (see ``--help``)."""
