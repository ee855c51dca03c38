"""``passthrough-demo``: the main job on the embedded default, no services.

For each bundled example host it builds a sysfs tree, runs the agent's
discovery with the configured ``[pci] device_spec``, publishes the report
into a file store, claims the devices of instances already running, and
then asks the scheduler which hosts fit the sample flavor and why the
others do not: agent -> store -> scheduler, as in production.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Sequence
from typing import TextIO

from oslo_config import cfg

from passthrough_plugin import conf as conf_pkg
from passthrough_plugin import exception
from passthrough_plugin.conf import groups
from passthrough_plugin.agent import discovery
from passthrough_plugin.agent import sysfs as sysfs_mod
from passthrough_plugin.cmd import common
from passthrough_plugin.cmd import scheduler as scheduler_cmd
from passthrough_plugin.demo import hosts as hosts_mod
from passthrough_plugin.pci import device_spec
from passthrough_plugin.scheduler import engine as engine_mod

PROG = 'passthrough-demo'
DEFAULT_CONFIG = os.path.join('etc', 'passthrough-demo.conf')

demo_group = cfg.OptGroup('demo', title='passthrough-demo options')
demo_opts = [
    cfg.MultiStrOpt('extra_spec', default=[],
                    help='The sample flavor: KEY=VALUE extra specs.'),
    cfg.MultiStrOpt('existing', default=[],
                    help='Instances already running: HOST:INSTANCE:KEY=VALUE'
                    '[;KEY=VALUE]'),
]


def _pairs(values: Sequence[str], option: str) -> list[tuple[str, str]]:
    out = []
    for value in values:
        key, sep, val = value.partition('=')
        if not sep or not key.strip():
            raise exception.InvalidConfig(
                group='demo', option=option, value=value,
                reason='expected KEY=VALUE, e.g. pci_passthrough:alias=vf:2')
        out.append((key.strip(), val.strip()))
    return out


def load_conf(path: str) -> cfg.ConfigOpts:
    conf = cfg.ConfigOpts()
    conf_pkg.register_all(conf)
    groups.register(conf, demo_group, demo_opts)
    if not os.path.exists(path):
        raise exception.InvalidConfig(
            group='-', option='--config-file', value=path,
            reason='no such file; run from the repository root or pass '
            '--config-file')
    try:
        conf([], project='passthrough-plugin', prog=PROG,
             default_config_files=[path])
    except cfg.ConfigFileParseError as exc:
        raise exception.InvalidConfig(
            group='-', option='--config-file', value=path,
            reason=str(exc)) from None
    except UnicodeDecodeError:
        raise exception.InvalidConfig(
            group='-', option='--config-file', value=path,
            reason='not UTF-8 text; an oslo.config INI file') from None
    return conf


def run(config: str, workdir: str | None, out: TextIO) -> int:
    conf = load_conf(config)
    specs = device_spec.DeviceSpecList.from_config(conf.pci.device_spec)
    # Only once the configuration is good: bad input leaves nothing behind.
    workdir = workdir or tempfile.mkdtemp(prefix='passthrough-demo-')
    store_dir = os.path.join(workdir, 'reports')
    conf.set_override('driver', 'file', group='report_store')
    conf.set_override('path', store_dir, group='file_store')
    engine = engine_mod.Engine(conf)

    out.write('== agent: discover each host and publish its report\n')
    for example in hosts_mod.EXAMPLES:
        tree = hosts_mod.build(os.path.join(workdir, 'hosts', example.name),
                               example)
        fs = sysfs_mod.Sysfs(root=str(tree.sys), proc_root=str(tree.proc))
        scan = discovery.scan(fs)
        report = discovery.build_report(fs, specs, example.name, scan)
        generation = engine.store.publish(report)
        out.write('%-10s %s\n           %d PCI devices, %d whitelisted, '
                  'IOMMU %s -> generation %d\n' % (
                      example.name, example.story, len(scan.devices),
                      len(report.devices),
                      'on' if report.iommu.enabled else 'OFF', generation))

    existing = conf.demo.existing
    if existing:
        out.write('\n== store: devices of instances already running\n')
        engine.refresh()
    for entry in existing:
        host, _sep, rest = entry.partition(':')
        instance, _sep, specs_text = rest.partition(':')
        request = engine.request(dict(_pairs(specs_text.split(';'),
                                             'existing')))
        devices = engine.claim(host, request, instance)
        out.write('%s holds %d device(s) on %s\n' % (
            instance, len(devices), host))

    flavor = _pairs(conf.demo.extra_spec, 'extra_spec')
    out.write('\n== scheduler: the sample flavor %s\n' % ' '.join(
        '%s=%s' % kv for kv in flavor))
    argv = ['--config-file', config, '--store-path', store_dir]
    for key, value in flavor:
        argv += ['--extra-spec', '%s=%s' % (key, value)]
    out.write('\n$ passthrough-scheduler select ...\n')
    scheduler_cmd.main(argv[:4] + ['select'] + argv[4:], out=out)
    out.write('\n$ passthrough-scheduler explain ...\n')
    scheduler_cmd.main(argv[:4] + ['explain'] + argv[4:], out=out)
    out.write('\nThe reports are in %s; try for example:\n  '
              'passthrough-scheduler --config-file %s --store-path %s '
              'explain --extra-spec pci_passthrough:alias=vf:4\n' % (
                  store_dir, config, store_dir))
    return 0


@common.console(PROG)
def main(argv: Sequence[str] | None = None, out: TextIO | None = None,
         err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__)
    parser.add_argument('--config-file', default=DEFAULT_CONFIG,
                        metavar='PATH', help='default: %(default)s')
    parser.add_argument('--workdir', metavar='DIR',
                        help='where the host trees and reports go '
                        '(default: a new temporary directory)')
    common.add_debug_option(parser)
    args = parser.parse_args(argv)
    common.setup_logging(PROG, args.debug)
    try:
        return run(args.config_file, args.workdir, out)
    except exception.Invalid as exc:
        err.write('%s: error: %s\n' % (PROG, exc))
        return 2
    except exception.PassthroughException as exc:
        err.write('%s: %s\n' % (PROG, exc))
        return 1


if __name__ == '__main__':
    sys.exit(main())
