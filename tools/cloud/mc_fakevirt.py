"""nova's FakeDriverWithPciResources with real-looking PCI ids (opt-in).

The stock driver reports vendor 'fake-vendor_id' and product
'fake-product_id', which nova's alias schema and the plugin's HostReport
(4 hex digits) cannot name. This subclass reports the same six devices at
the same addresses with the ids in ``$MINICLOUD_FAKE_PCI_IDS``
(``VENDOR:PF_PRODUCT:VF_PRODUCT``, default ``8086:1528:1515``). Selected by
``minicloud.py --fake-pci-ids``, which links this file into the harness
venv as ``nova.virt.minicloud_hexpci`` (nova loads drivers from there only).
"""

from __future__ import annotations

import json
import os
from typing import Any

from nova.virt import fake

from mc_settings import DEFAULT_PCI_IDS, parse_pci_ids

class HexPciFakeDriver(fake.FakeDriverWithPciResources):  # type: ignore[misc]
    """Same PFs and VFs as the parent, with hex vendor and product ids."""

    def get_available_resource(self, nodename: str) -> dict[str, Any]:
        status: dict[str, Any] = super().get_available_resource(nodename)
        vendor, pf, vf = parse_pci_ids(
            os.environ.get('MINICLOUD_FAKE_PCI_IDS', DEFAULT_PCI_IDS))
        devices = json.loads(status['pci_passthrough_devices'])
        for dev in devices:
            dev['vendor_id'] = vendor
            dev['product_id'] = pf if dev['dev_type'] == 'type-PF' else vf
        status['pci_passthrough_devices'] = json.dumps(devices)
        return status
