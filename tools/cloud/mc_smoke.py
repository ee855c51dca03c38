"""Smoke test of a running mini cloud: a PCI server boots, holds, releases."""

from __future__ import annotations

import time
from typing import Any

import mc_api
import mc_configs
import mc_tempest
from mc_procs import CloudError, log
from mc_settings import Settings

NOVA_MICROVERSION = {'OpenStack-API-Version': 'compute 2.37'}


def _server(api: mc_api.Api, server_id: str) -> dict[str, Any] | None:
    status, body = api.request(
        'GET', '{}/servers/{}'.format(api.s.url('nova-api'), server_id),
        headers=NOVA_MICROVERSION)
    return None if status == 404 else dict(body['server'])


def _wait_status(api: mc_api.Api, server_id: str, want: set[str],
                 timeout: float) -> dict[str, Any]:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        server = _server(api, server_id)
        if server and server['status'] in want:
            return server
        time.sleep(0.5)
    raise CloudError('server {} not {} after {:.0f}s'.format(
        server_id, '/'.join(sorted(want)), timeout))


def _allocations(api: mc_api.Api, consumer: str) -> dict[str, int]:
    body = api.call('GET', '{}/allocations/{}'.format(
        api.s.url('placement'), consumer))
    total: dict[str, int] = {}
    for rp in body['allocations'].values():
        for rc, amount in rp['resources'].items():
            total[rc] = total.get(rc, 0) + amount
    return total


def boot(api: mc_api.Api, flavor: str, name: str, image: str) -> str:
    body = api.call('POST', api.s.url('nova-api') + '/servers', {'server': {
        'name': name, 'imageRef': image, 'flavorRef': flavor,
        'networks': 'none'}}, headers=NOVA_MICROVERSION)
    return str(body['server']['id'])


def delete(api: mc_api.Api, server_id: str, timeout: float) -> None:
    api.call('DELETE', f"{api.s.url('nova-api')}/servers/{server_id}",
             ok=(204, 404))
    t0 = time.monotonic()
    while _server(api, server_id) is not None:
        if time.monotonic() - t0 > timeout:
            raise CloudError(
                f'server {server_id} not gone after {timeout:.0f}s')
        time.sleep(0.5)


def smoke(s: Settings) -> None:
    """Boot the PCI flavor (ACTIVE, VF allocated), delete it (released),
    and boot the over-asking flavor (ERROR: No valid host)."""
    api = mc_api.Api(s)
    api.login()
    image = api.ensure_image()
    t0 = time.monotonic()
    sid = boot(api, mc_tempest.PCI_FLAVOR, 'smoke-pci', image)
    try:
        server = _wait_status(api, sid, {'ACTIVE', 'ERROR'}, s.timeout)
        if server['status'] != 'ACTIVE':
            raise CloudError('PCI server {} went ERROR: {}'.format(
                sid, server.get('fault', {}).get('message')))
        log('server %s (flavor %s) ACTIVE after %.1fs on %s', sid,
            mc_tempest.PCI_FLAVOR, time.monotonic() - t0,
            server.get('OS-EXT-SRV-ATTR:host'))
        allocs = _allocations(api, sid)
        log('placement allocations of %s: %s', sid, allocs)
        # nova's own VF provider (hex ids with the plugin) holds the VF.
        want = (s.resource_class('vf') if s.plugin else 'CUSTOM_FAKE_VF'
                if mc_configs.pci_in_placement(s) else None)
        if want and allocs.get(want) != 1:
            raise CloudError(f'expected 1 {want} allocated to {sid}, '
                             f'got {allocs}')
    finally:
        t1 = time.monotonic()
        delete(api, sid, s.timeout)
        log('server %s deleted after %.1fs', sid, time.monotonic() - t1)
    if _allocations(api, sid):
        raise CloudError(f'allocations of deleted server {sid} remain')
    t2 = time.monotonic()
    over = mc_tempest.PCI_FLAVOR_OVER[s.plugin]
    sid = boot(api, over, 'smoke-over', image)
    try:
        server = _wait_status(api, sid, {'ACTIVE', 'ERROR'}, s.timeout)
        fault = server.get('fault', {}).get('message', '')
        if server['status'] != 'ERROR' or 'No valid host' not in fault:
            raise CloudError('over-asking flavor {}: expected ERROR with No '
                             'valid host, got {} {!r}'.format(
                                 over,
                                 server['status'], fault))
        log('server %s (flavor %s) ERROR after %.1fs: %s', sid,
            over, time.monotonic() - t2, fault)
    finally:
        delete(api, sid, s.timeout)
