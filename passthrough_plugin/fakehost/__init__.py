"""Fake hosts for tests, the benchmark and the demo: a sysfs tree builder and a kernel emulator."""
