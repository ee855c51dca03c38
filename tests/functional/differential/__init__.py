"""Differential tests: the core against nova 34's own code on random cases."""
