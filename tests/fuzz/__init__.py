"""Fuzzing harnesses (mutation of real and synthetic slides); see harness.py."""
