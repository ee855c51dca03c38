"""Tempest plugin of passthrough-plugin: PCI passthrough tests, any cloud."""
