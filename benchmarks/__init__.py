"""Benchmarks: load generator, baselines, and one module per model (docs/benchmarks.md)."""
