"""nova's FakeDriverWithPciResources with real-looking PCI ids (opt-in).

The stock driver reports vendor 'fake-vendor_id' and product
'fake-product_id', which nova's alias schema and the plugin's HostReport
(4 hex digits) cannot name. This subclass reports the same PFs at the same
addresses with the ids in ``$MINICLOUD_FAKE_PCI_IDS``
(``VENDOR:PF_PRODUCT:VF_PRODUCT``, default ``8086:1528:1515``), and a second
VF per PF (``0000:0N:00.2``), so that two VFs of one request can come from
one PF or from two. Selected by ``minicloud.py --fake-pci-ids``, which links
this file into the harness venv as ``nova.virt.minicloud_hexpci`` (nova
loads drivers from there only).

It also writes, per server it spawns, the libvirt domain XML a libvirt host
would show (``<hostdev>`` per PCI device nova assigned) to
``$MINICLOUD_BASE/data/domains/<host>/<uuid>.xml``, and removes it when the
server goes: what ``passthrough-agent map`` reads on a real host.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from nova.virt import fake

from mc_fakedevs import domain_xml, with_second_vfs
from mc_settings import DEFAULT_PCI_IDS, parse_pci_ids


class HexPciFakeDriver(fake.FakeDriverWithPciResources):  # type: ignore[misc]
    """Same PFs as the parent, two VFs each, hex vendor and product ids."""

    def get_available_resource(self, nodename: str) -> dict[str, Any]:
        status: dict[str, Any] = super().get_available_resource(nodename)
        vendor, pf, vf = parse_pci_ids(
            os.environ.get('MINICLOUD_FAKE_PCI_IDS', DEFAULT_PCI_IDS))
        devices = with_second_vfs(json.loads(
            status['pci_passthrough_devices']))
        for dev in devices:
            dev['vendor_id'] = vendor
            dev['product_id'] = pf if dev['dev_type'] == 'type-PF' else vf
        status['pci_passthrough_devices'] = json.dumps(devices)
        return status

    def _domain_file(self, uuid: str) -> Path | None:
        base = os.environ.get('MINICLOUD_BASE')
        if not base or not self._host:
            return None
        return Path(base) / 'data' / 'domains' / self._host / f'{uuid}.xml'

    def spawn(self, context: Any, instance: Any, *args: Any,
              **kwargs: Any) -> None:
        super().spawn(context, instance, *args, **kwargs)
        path = self._domain_file(instance.uuid)
        if path is None:
            return
        addresses = [d.address for d in instance.get_pci_devices()]
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix('.tmp')
        tmp.write_text(domain_xml(instance.uuid, instance.name, addresses))
        os.replace(tmp, path)

    def destroy(self, context: Any, instance: Any, *args: Any,
                **kwargs: Any) -> None:
        super().destroy(context, instance, *args, **kwargs)
        path = self._domain_file(instance.uuid)
        if path is not None:
            path.unlink(missing_ok=True)
