"""Benchmarks: each script measures a stage against bare anchors in the same run and prints JSON."""
