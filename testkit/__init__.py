"""Test doubles that both the tests and the benchmarks use (never imported by `app`)."""
