"""A read-only Neutron stand-in: NOT neutron.

nova-api lists ports, security groups and quotas even for servers booted
with ``--nic none``; this answers those GETs with empty lists (and unlimited
quotas) and refuses every write with 501.  Usage: neutron_stub.py PORT
"""

from __future__ import annotations

import json
import re
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

COLLECTION = re.compile(r'^/v2\.0/([a-z_-]+)(\.json)?$')
QUOTA = re.compile(r'^/v2\.0/quotas/[^/]+(\.json)?$')


class Handler(BaseHTTPRequestHandler):
    server_version = 'neutron-stub/1'

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        sys.stderr.write(f'{self.command} {self.path}\n')

    def _send(self, code: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802
        path = self.path.split('?')[0].rstrip('/')
        port = self.server.server_port  # type: ignore[attr-defined]
        if path in ('', '/v2.0'):
            self._send(200, {'versions': [{
                'id': 'v2.0', 'status': 'CURRENT', 'links': [{
                    'rel': 'self',
                    'href': f'http://127.0.0.1:{port}/v2.0/'}]}]})
        elif QUOTA.match(path):
            self._send(200, {'quota': {
                'port': -1, 'network': -1, 'subnet': -1,
                'security_group': -1, 'floatingip': -1}})
        elif match := COLLECTION.match(path):
            self._send(200, {match.group(1).replace('-', '_'): []})
        else:
            self._send(404, {'NeutronError': {
                'type': 'NotFound', 'message': path, 'detail': ''}})

    def _refuse(self) -> None:
        self._send(501, {'NeutronError': {
            'type': 'NotImplemented', 'detail': '',
            'message': 'read-only neutron stand-in of the mini cloud'}})

    do_POST = do_PUT = do_DELETE = _refuse


def main() -> None:
    server = ThreadingHTTPServer(('127.0.0.1', int(sys.argv[1])), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == '__main__':
    main()
