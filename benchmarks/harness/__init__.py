"""The benchmark harness: the suite, the load generator, server processes and the baselines."""
