"""Tempest plugin of passthrough-plugin: PCI passthrough tests for any cloud."""
