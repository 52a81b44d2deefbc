"""Benchmarks: measure, never assert. `python -m bench.run_all` regenerates docs/benchmarks.md."""
