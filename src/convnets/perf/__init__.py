"""Measuring models: parameters, FLOPs, per-layer summaries, benchmarks."""
