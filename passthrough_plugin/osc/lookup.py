"""Nova flavors and servers by name or ID through an SDK connection."""

from __future__ import annotations

from typing import Any

from openstack import exceptions as sdk_exc

from passthrough_plugin import exception


def flavor_extra_specs(connection: Any, name_or_id: str) -> dict[str, str]:
    """The extra specs of a flavor named by name or ID.

    :raises: Invalid naming the flavor when nova has no such flavor.
    """
    try:
        flavor = connection.compute.find_flavor(
            name_or_id, ignore_missing=False, get_extra_specs=True)
    except sdk_exc.ResourceNotFound:
        raise exception.Invalid(
            reason='--flavor %r: no such flavor (name or ID); see '
            '"openstack flavor list"' % name_or_id) from None
    except sdk_exc.DuplicateResource:
        raise exception.Invalid(
            reason='--flavor %r: more than one flavor has this name; give '
            'its ID' % name_or_id) from None
    return {str(k): str(v) for k, v in (flavor.extra_specs or {}).items()}


def server_id(connection: Any, name_or_id: str) -> str:
    """The UUID of a server named by name or ID, in any project.

    :raises: Invalid naming the server when nova has no such server.
    """
    try:
        server = connection.compute.find_server(
            name_or_id, ignore_missing=False, all_projects=True)
    except sdk_exc.ResourceNotFound:
        raise exception.Invalid(
            reason='--server %r: no such server (name or ID); see '
            '"openstack server list --all-projects"' % name_or_id) from None
    except sdk_exc.DuplicateResource:
        raise exception.Invalid(
            reason='--server %r: more than one server has this name; give '
            'its ID' % name_or_id) from None
    return str(server.id)
