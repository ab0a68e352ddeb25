"""Benchmark scripts; each prints its figures (see BENCHMARKS.md)."""
