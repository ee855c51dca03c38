"""The OpenStackClient plugin: ``openstack pci ...`` commands."""
