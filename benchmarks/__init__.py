"""Benchmarks for fingerprint (run with ``python -m pytest benchmarks``; see README.md)."""
