"""Benchmarks whose results are written into docs/benchmarks.md (figures as ratios to a
baseline measured in the same run)."""
