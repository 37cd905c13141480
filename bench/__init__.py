"""Benchmarks (make bench-*): each script writes its figures to bench/results/."""
