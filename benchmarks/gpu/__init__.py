"""Running the benchmarks on the ``device`` tool's CUDA machines: wheels and shell scripts."""
