"""PCI passthrough and SR-IOV scheduling and host management for OpenStack."""
