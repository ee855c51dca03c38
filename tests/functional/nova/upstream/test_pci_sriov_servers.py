"""nova's test_pci_sriov_servers, unmodified, with the plugin enabled."""

from __future__ import annotations

from tests.functional.nova.upstream import harness

globals().update(harness.plugin_classes(
    __name__, 'nova.tests.functional.libvirt.test_pci_sriov_servers'))
