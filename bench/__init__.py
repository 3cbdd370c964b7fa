"""Benchmarks of exact-sync against the in-process sandbox (`python -m bench.throughput`, `exact-sync bench`)."""
