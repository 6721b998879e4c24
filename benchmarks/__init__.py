"""Benchmarks: load generator, baselines, and one module per model (see README)."""
