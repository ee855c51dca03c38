"""Fake hosts for tests, the benchmark and the demo: sysfs trees, a kernel."""
