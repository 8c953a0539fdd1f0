"""Measurement: open-set evaluation, calibration of thresholds and benchmarks."""
