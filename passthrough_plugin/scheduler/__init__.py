"""Scheduler side: filter, weigher, standalone engine and nova adapters."""
