"""A small stdlib REST client for the mini cloud: catalog, image, flavors."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

from mc_procs import CloudError, log
from mc_settings import PASSWORD, REGION, Settings

# The services nova and tempest find in the catalog.
SERVICES = {
    # user: (service type, settings service)
    'placement': ('placement', 'placement'),
    'glance': ('image', 'glance'),
    'nova': ('compute', 'nova-api'),
    'neutron': ('network', 'neutron-stub'),
}


class Api:
    """Admin-scoped calls with a token from Keystone; retried on 5xx."""

    def __init__(self, s: Settings) -> None:
        self.s = s
        self.token = ''

    def request(self, method: str, url: str, body: Any = None, *,
                headers: dict[str, str] | None = None,
                raw: bytes | None = None, retries: int = 5) -> tuple[int, Any]:
        hdrs = {'Accept': 'application/json'}
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            hdrs['Content-Type'] = 'application/json'
        if self.token:
            hdrs['X-Auth-Token'] = self.token
        hdrs.update(headers or {})
        for attempt in range(1, retries + 1):
            # URLs are built from the settings: http to 127.0.0.1 only.
            req = urllib.request.Request(url, data=data, headers=hdrs,  # noqa: S310
                                         method=method)
            try:
                with urllib.request.urlopen(req, timeout=60) as resp:  # noqa: S310
                    text = resp.read()
                    status = int(resp.status)
                    self.last_headers = dict(resp.headers)
            except urllib.error.HTTPError as exc:
                status, text = exc.code, exc.read()
            except OSError as exc:
                status, text = 0, str(exc).encode()
            if status and status < 500:
                break
            if attempt < retries:
                log('%s %s: %s, retrying', method, url, status or text)
                time.sleep(2 * attempt)
        try:
            payload = json.loads(text) if text else None
        except ValueError:
            payload = text.decode(errors='replace')
        return status, payload

    def call(self, method: str, url: str, body: Any = None,
             ok: tuple[int, ...] = (200, 201, 202, 204), **kw: Any) -> Any:
        status, payload = self.request(method, url, body, **kw)
        if status not in ok:
            raise CloudError(
                f'{method} {url} answered {status}: {str(payload)[:500]}')
        return payload

    def login(self) -> None:
        body = {'auth': {
            'identity': {'methods': ['password'], 'password': {'user': {
                'name': 'admin', 'domain': {'id': 'default'},
                'password': PASSWORD}}},
            'scope': {'project': {'name': 'admin',
                                  'domain': {'id': 'default'}}}}}
        self.token = ''
        self.call('POST', self.s.url('keystone') + '/auth/tokens', body)
        self.token = self.last_headers['X-Subject-Token']

    # -- identity ------------------------------------------------------------

    def _find_or_create(self, path: str, kind: str, query: str,
                        body: dict[str, Any]) -> str:
        ks = self.s.url('keystone')
        found = self.call('GET', f'{ks}/{path}?{query}')[path]
        if found:
            return str(found[0]['id'])
        return str(self.call('POST', f'{ks}/{path}',
                             {kind: body})[kind]['id'])

    def register_catalog(self) -> None:
        """Service project, service users with admin, services, endpoints."""
        ks = self.s.url('keystone')
        project = self._find_or_create(
            'projects', 'project', 'name=service',
            {'name': 'service', 'domain_id': 'default'})
        role = self.call('GET', ks + '/roles?name=admin')['roles'][0]['id']
        for user, (stype, svc) in SERVICES.items():
            uid = self._find_or_create(
                'users', 'user', 'name=' + user,
                {'name': user, 'password': PASSWORD, 'domain_id': 'default'})
            self.call('PUT',
                      f'{ks}/projects/{project}/users/{uid}/roles/{role}')
            sid = self._find_or_create('services', 'service', 'type=' + stype,
                                       {'name': user, 'type': stype})
            have = {e['interface'] for e in self.call(
                'GET', f'{ks}/endpoints?service_id={sid}')['endpoints']}
            for iface in ('public', 'internal', 'admin'):
                if iface not in have:
                    self.call('POST', ks + '/endpoints', {'endpoint': {
                        'service_id': sid, 'interface': iface,
                        'url': self.s.url(svc), 'region_id': REGION}})
        log('catalog: %s', ', '.join(SERVICES))

    # -- image and flavors ---------------------------------------------------

    def ensure_image(self, name: str = 'fake-image') -> str:
        glance = self.s.url('glance') + '/v2/images'
        found = self.call('GET', glance + '?name=' + name)['images']
        if found and found[0]['status'] == 'active':
            return str(found[0]['id'])
        image = self.call('POST', glance, {
            'name': name, 'disk_format': 'raw', 'container_format': 'bare',
            'visibility': 'public'})
        # The fake driver never reads it: 1 MiB of zeros is a valid raw disk.
        self.call('PUT', '{}/{}/file'.format(glance, image['id']),
                  raw=b'\0' * (1 << 20),
                  headers={'Content-Type': 'application/octet-stream'})
        return str(image['id'])

    def ensure_flavor(self, flavor_id: str, name: str, ram: int,
                      extra_specs: dict[str, str] | None = None) -> None:
        nova = self.s.url('nova-api')
        status, _ = self.request('GET', f'{nova}/flavors/{flavor_id}')
        if status == 404:
            self.call('POST', nova + '/flavors', {'flavor': {
                'id': flavor_id, 'name': name, 'ram': ram, 'vcpus': 1,
                'disk': 1}})
        if extra_specs:
            self.call('POST', f'{nova}/flavors/{flavor_id}/os-extra_specs',
                      {'extra_specs': extra_specs})

    # -- compute host --------------------------------------------------------

    def resource_providers(self) -> list[dict[str, Any]]:
        rps = self.call('GET', self.s.url('placement') + '/resource_providers',
                        headers={'OpenStack-API-Version': 'placement 1.14'})
        return list(rps['resource_providers'])

    def computes_up(self) -> int:
        """How many nova-compute services are up."""
        nova = self.s.url('nova-api')
        status, body = self.request(
            'GET', nova + '/os-services?binary=nova-compute', retries=1)
        if status != 200:
            return 0
        return sum(svc['state'] == 'up' for svc in body['services'])
