"""Real-kernel tests: a QEMU guest harness and its smoke test."""
