"""[lifecycle]: the device assignment ledger, evacuation and notifications."""

from __future__ import annotations

from oslo_config import cfg

from passthrough_plugin.conf import groups

DEFAULT_CONNECTION = 'sqlite:////var/lib/passthrough-plugin/ledger.sqlite'
POLICY_REQUIRE = 'require'
POLICY_BEST_EFFORT = 'best_effort'

lifecycle_group = cfg.OptGroup(
    'lifecycle',
    title='Device lifecycle ledger',
    help="""
The ledger records every interval during which an instance held a PCI
device (flavor devices and hot-plugged ones), answers which host device a
guest device is, decides what follows an instance on evacuate, and feeds
``passthrough-billing``.
""")

lifecycle_opts = [
    cfg.StrOpt(
        'connection',
        default=DEFAULT_CONNECTION,
        secret=True,
        help="""
SQLAlchemy URL of the ledger database. The default, an SQLite file, suits
one machine; the directory is created when missing. With several machines,
every agent and scheduler that records or reads the ledger must use the
same server database (an evacuation spans two compute hosts), e.g.::

    connection = postgresql+psycopg://ledger:secret@db.example.org/ledger
    connection = mysql+pymysql://ledger:secret@db.example.org/ledger

The schema is created and upgraded (alembic ``upgrade head``) when the
ledger is opened.
"""),
    cfg.StrOpt(
        'evacuate_hotplug_policy',
        default=POLICY_REQUIRE,
        choices=[
            (POLICY_REQUIRE,
             'the destination must give the flavor devices and every '
             'hot-plugged device again, or the evacuation is refused'),
            (POLICY_BEST_EFFORT,
             'the flavor devices are required; hot-plugged devices the '
             'destination cannot give are recorded as lost, with the '
             'reason, and their billing stops at the evacuation'),
        ],
        help="""
What evacuate does with devices that were hot-plugged into the instance.
The flavor's devices are always required. ``require`` (the default) never
drops a device the tenant pays for without an operator's decision;
``best_effort`` favours bringing the instance back up.

Related options:

* ``[lifecycle] connection``
"""),
    cfg.BoolOpt(
        'notifications',
        default=False,
        help="""
Send ``passthrough.device.attach`` and ``passthrough.device.detach``
notifications through oslo.messaging (the ``[oslo_messaging_notifications]``
transport) for each assignment interval that starts or ends, for metering
systems. Needs the oslo.messaging package; off by default.

Related options:

* ``[lifecycle] notification_topic``
"""),
    cfg.StrOpt(
        'notification_topic',
        default='notifications',
        help="""
The oslo.messaging topic of the device notifications, e.g. ``notifications``
(what ceilometer listens to).

Related options:

* ``[lifecycle] notifications``
"""),
    cfg.StrOpt(
        'libvirt_uri',
        default='qemu:///system',
        help="""
The libvirt connection ``passthrough-agent map --instance`` reads live
domain XML from, when libvirt-python is installed. Without libvirt-python
(or with ``--domain-xml FILE``) the map uses the ledger and the file.
"""),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    groups.register(conf, lifecycle_group, lifecycle_opts)


def list_opts() -> dict[cfg.OptGroup, list[cfg.Opt]]:
    return {lifecycle_group: lifecycle_opts}
