"""[report_store] and [file_store]: where host reports live."""

from __future__ import annotations

from oslo_config import cfg

from passthrough_plugin.conf import groups

report_store_group = cfg.OptGroup(
    'report_store',
    title='Host report store',
    help='Which store holds the latest host report of every compute host.')

report_store_opts: list[cfg.Opt] = [
    cfg.StrOpt(
        'driver',
        default='file',
        help="""
The report store, by its entry-point name in the
``passthrough_plugin.report_stores`` namespace.

* ``file``: one JSON file per host in ``[file_store] path``; the embedded
  default for one machine.
* ``placement``: the OpenStack Placement service, for many hosts and many
  schedulers.

Related options:

* ``[file_store] path``
"""),
]

file_store_group = cfg.OptGroup(
    'file_store',
    title='File report store',
    help='The embedded default store: a directory of JSON host reports.')

file_store_opts: list[cfg.Opt] = [
    cfg.StrOpt(
        'path',
        default='/var/lib/passthrough-plugin/reports',
        help="""
Directory holding one ``<host>.json`` HostReport per host. Writers replace
files atomically; claims take a lock file in the same directory, so the
directory must be local (or on a filesystem with working ``flock``).

Related options:

* ``[report_store] driver``
* ``[file_store] lock_timeout``
"""),
    cfg.FloatOpt(
        'lock_timeout',
        default=30.0,
        min=0.1,
        help="""
How long, in seconds, a writer (an agent publishing, a claim, a release)
waits for the store's lock file before giving up with "report store
unavailable". Writes hold the lock for milliseconds; waiting this long means
a process holding it is stuck.

Related options:

* ``[file_store] path``
"""),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    groups.register(conf, report_store_group, report_store_opts)
    groups.register(conf, file_store_group, file_store_opts)


def list_opts() -> dict[cfg.OptGroup, list[cfg.Opt]]:
    return {report_store_group: report_store_opts,
            file_store_group: file_store_opts}
