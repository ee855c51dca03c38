"""Benchmarks: ``tox -e bench`` (``python -m passthrough_plugin.bench``).

Each benchmark prints its figures and, where nova has code for the same
job, nova's figures on the same input and the ratio.
"""
