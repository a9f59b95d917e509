"""Benchmarks: side-by-side measurements printed as tables, `--json` for scripts."""
