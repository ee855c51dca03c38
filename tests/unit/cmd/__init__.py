"""Tests of the console entry points' shared behaviour (cmd/common.py)."""
