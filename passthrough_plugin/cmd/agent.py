"""``passthrough-agent``: the compute host agent's command line."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from oslo_config import cfg
from oslo_log import log as logging

from passthrough_plugin import exception
from passthrough_plugin.agent import discovery
from passthrough_plugin.agent import doctor
from passthrough_plugin.agent import hostdev
from passthrough_plugin.agent import hotplug_pool
from passthrough_plugin.agent import nova_spec
from passthrough_plugin.agent import service
from passthrough_plugin.agent import sriov
from passthrough_plugin.agent import sysfs as sysfs_mod
from passthrough_plugin.agent import uevents
from passthrough_plugin.agent import vf_settings
from passthrough_plugin.cmd import agent_hotplug
from passthrough_plugin.cmd import agent_topology
from passthrough_plugin.cmd import common
from passthrough_plugin.cmd import ledger_map
from passthrough_plugin.conf import agent as agent_conf
from passthrough_plugin.conf import hotplug as hotplug_conf
from passthrough_plugin.conf import lifecycle as lifecycle_conf
from passthrough_plugin.conf import pci as pci_conf
from passthrough_plugin.conf import scheduler as scheduler_conf
from passthrough_plugin.conf import store as store_conf
from passthrough_plugin.pci import address as addr

LOG = logging.getLogger(__name__)
PROG = 'passthrough-agent'
EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad command-line input: one line, exit 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse's own: exit 2 too
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    shared = _Parser(add_help=False)
    shared.add_argument('--config-file', action='append', default=[],
                        metavar='PATH', help='an oslo.config file; repeat '
                        'for more (default: the usual search path)')
    shared.add_argument('--sysfs-root', metavar='DIR', default=None,
                        help='where sysfs is mounted (default: [agent] '
                        'sysfs_root, /sys)')
    shared.add_argument('--proc-root', metavar='DIR', default=None,
                        help='where procfs is mounted (default: /proc)')
    shared.add_argument('--state-path', metavar='PATH', default=None,
                        help='the intent journal (default: [agent] '
                        'state_path)')
    common.add_debug_option(shared)
    printing = _Parser(add_help=False)
    printing.add_argument('--format', choices=('table', 'json'),
                          default='table')
    parser = _Parser(prog=PROG, description='Discover, configure, bind and '
                     'report the PCI devices of this compute host.')
    sub = parser.add_subparsers(dest='command', required=True,
                                parser_class=_Parser)

    def add(name: str, helptext: str, prints: bool = True) -> _Parser:
        parents = [shared, printing] if prints else [shared]
        return sub.add_parser(name, help=helptext, parents=parents)

    p = add('discover', 'list PCI devices and what the report would say')
    p.add_argument('--all', action='store_true',
                   help='also devices [pci] device_spec does not list; '
                   'JSON becomes {"report": ..., "all_devices": [...]}')
    p = add('configure-vfs', 'set VF counts (PF COUNT, or [sriov] '
            'vf_count) and VF settings ([sriov] vf_settings)')
    p.add_argument('pf', nargs='?', metavar='PF',
                   help='PF address or interface name')
    p.add_argument('count', nargs='?', type=int, metavar='COUNT')
    p.add_argument('--force', action='store_true',
                   help='also remove VFs bound to vfio-pci or held by an '
                   'instance')
    for name, what in (('bind', 'bind devices (and their IOMMU groups)'),
                       ('unbind', 'return devices to their drivers')):
        p = add(name, what)
        p.add_argument('addresses', nargs='+', metavar='ADDRESS',
                       type=common.address_arg('ADDRESS argument'))
        p.add_argument('--binder', default=None,
                       help='binder entry point (default: [agent] binder)')
        if name == 'bind':
            p.add_argument('--force', action='store_true',
                           help='bind even a device the host uses')
    p = add('doctor', 'check the host is ready for passthrough')
    p.add_argument('--nova-config', metavar='PATH', default=None,
                   help="nova.conf whose [pci] device_spec must cover only "
                   'devices the agent can assign (default: %s, when it '
                   'exists)' % doctor.NOVA_CONF)
    p = add('hostdev-xml', 'libvirt <hostdev> XML and the qemu argument')
    p.add_argument('address', metavar='ADDRESS',
                   type=common.address_arg('ADDRESS argument'))
    p.add_argument('--guest-address', metavar='ADDRESS', default=None,
                   type=common.address_arg('--guest-address'))
    p.add_argument('--unmanaged', action='store_true',
                   help="managed='no': the agent, not libvirt, binds it")
    add('report', 'publish the report to the configured store')
    add('nova-device-spec', "nova's [pci] device_spec lines for exactly the "
        'devices the agent can assign')
    p = add('run', 'apply the desired state, then rescan and publish',
            prints=False)
    p.add_argument('--once', action='store_true',
                   help='one scan and publish, then exit')
    # ``map`` (the ledger's answer) brings its own --format.
    ledger_map.add_map_parser(sub, parents=[shared])
    # Live hotplug: attach, detach (agent_hotplug).
    agent_hotplug.add_parsers(sub, parents=[shared, printing])
    # The host's PCI tree (agent_topology): text, dot or json.
    agent_topology.add_parser(sub, parents=[shared])
    return parser


# -- output ------------------------------------------------------------------
def table(rows: Sequence[Sequence[object]], header: Sequence[str]) -> str:
    text = [[str('-' if v is None else v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in text)) if text else len(h)
              for i, h in enumerate(header)]
    lines = ['  '.join(h.ljust(w) for h, w in zip(header, widths,
                                                   strict=True)).rstrip()]
    lines += ['  '.join(c.ljust(w) for c, w in zip(r, widths,
                                                  strict=True)).rstrip()
              for r in text]
    return '\n'.join(lines)


# -- commands ----------------------------------------------------------------
def cmd_discover(agent: service.Agent, args: argparse.Namespace) -> int:
    scan = discovery.scan(agent.fs)
    report = hotplug_pool.build_report(agent.fs, agent.specs,
                                       agent.hotplug_specs,
                                       agent.conf.agent.host, scan)
    listed = {d.address: d for d in report.devices}
    rows = []
    for info in scan.devices.values():
        dev = listed.get(info.address)
        if dev is None and not args.all:
            continue
        rows.append((info.address, '%s:%s' % (info.vendor_id,
                                              info.product_id),
                     info.class_code, info.dev_type, info.driver,
                     info.numa_node, info.iommu_group, info.physfn,
                     ','.join(info.netdevs) or None,
                     '%d/%d' % (info.num_vfs, info.total_vfs)
                     if info.total_vfs else None,
                     (dev.resource_class + (' (hotplug pool)'
                                            if dev.hotplug_pool else ''))
                     if dev else '(not listed)'))
    # JSON: the HostReport itself; with --all, the report beside every
    # device sysfs shows (so the report part still loads as a HostReport).
    data: dict[str, Any] = report.to_dict()
    if args.all:
        data = {'report': data, 'all_devices': [
            i.to_dict() for i in scan.devices.values()]}
    foreign = ''.join(
        '\nIOMMU group %d is not assignable: %s not listed' % (
            g, ', '.join(m)) for g, m in sorted(
                report.iommu.foreign_members.items()))
    common.emit(args, data, table(rows, (
        'ADDRESS', 'ID', 'CLASS', 'TYPE', 'DRIVER', 'NUMA', 'GROUP',
        'PF', 'NETDEV', 'VFS', 'RESOURCE CLASS')) + (
        '\nIOMMU: %s' % ('on' if report.iommu.enabled else 'OFF')) + foreign)
    return EXIT_OK


def cmd_configure_vfs(agent: service.Agent,
                      args: argparse.Namespace) -> int:
    if (args.pf is None) != (args.count is None):
        raise UsageError('give both PF and COUNT, or neither to apply '
                         '[sriov] vf_count')
    if args.count is not None and args.count < 0:
        raise UsageError('COUNT %d must be 0 or more' % args.count)
    desired = ([(args.pf, args.count)] if args.pf is not None
               else agent.desired_vfs)
    if not desired and not agent.vf_settings:
        raise UsageError('nothing to do: give PF COUNT or set [sriov] '
                         'vf_count or [sriov] vf_settings')
    with common.Progress('waiting for the VFs') as progress:
        result: dict[str, Any] = sriov.apply_desired(
            agent.fs, desired, agent.conf.sriov.vf_timeout,
            force=args.force,
            held={} if args.force else agent.held_devices(),
            progress=progress)
    text = table([(pf, len(vfs), ' '.join(vfs) or None)
                  for pf, vfs in result.items()], ('PF', 'VFS', 'ADDRESSES'))
    if agent.vf_settings:
        # With PF COUNT: that PF's settings only, on its new VFs.
        settings = vf_settings.apply(
            agent.fs, agent.vf_settings,
            only=next(iter(result)) if args.pf is not None else None)
        if settings:
            result['vf_settings'] = settings
            text += '\n\n' + table(
                [(pf, vf, vf_settings.describe(fields))
                 for pf, vfs in settings.items()
                 for vf, fields in vfs.items()], ('PF', 'VF', 'SETTINGS'))
    common.emit(args, result, text)
    return EXIT_OK


def cmd_bind(agent: service.Agent, args: argparse.Namespace) -> int:
    gb = agent.group_binding(force=getattr(args, 'force', False))
    if args.command == 'bind':
        with common.Progress('binding') as progress:
            done = gb.bind(args.addresses, progress=progress)
    else:
        done = gb.unbind(args.addresses)
    rows = [(a, agent.fs.driver(a), agent.fs.iommu_group(a)) for a in done]
    common.emit(args, {'command': args.command, 'devices': [
        {'address': a, 'driver': d, 'iommu_group': g} for a, d, g in rows]},
        table(rows, ('ADDRESS', 'DRIVER', 'GROUP')) if rows
        else 'nothing to do')
    return EXIT_OK


def cmd_doctor(agent: service.Agent, args: argparse.Namespace) -> int:
    checks = doctor.run(agent.fs, agent.state_path)
    checks.append(hotplug_pool.check_overlap(agent.fs, agent.specs,
                                             agent.hotplug_specs))
    nova_conf = args.nova_config or (
        doctor.NOVA_CONF if os.path.isfile(doctor.NOVA_CONF) else None)
    if nova_conf is not None:
        checks.append(doctor.check_nova_device_spec(
            agent.fs, agent.report(), nova_conf))
    common.emit(args, {'checks': [c.to_dict() for c in checks],
                'ok': not doctor.failed(checks)},
         table([(c.status.upper(), c.name, c.detail, c.hint or None)
                for c in checks], ('STATUS', 'CHECK', 'DETAIL', 'HINT')))
    return EXIT_FAIL if doctor.failed(checks) else EXIT_OK


def cmd_hostdev(agent: service.Agent, args: argparse.Namespace) -> int:
    agent.fs.require_device(args.address)
    host = addr.PciAddress.parse(args.address)
    guest = (addr.PciAddress.parse(args.guest_address)
             if args.guest_address else None)
    xml = hostdev.hostdev_xml(host, guest, managed=not args.unmanaged)
    qemu = hostdev.qemu_device(host, guest)
    common.emit(args, {'xml': xml, 'qemu': ['-device', qemu]},
         '%s\n\nqemu: -device %s' % (xml, qemu))
    return EXIT_OK


def cmd_report(agent: service.Agent, args: argparse.Namespace) -> int:
    report = agent.report()
    generation = agent.publish(report)
    common.emit(args, {'host': report.host, 'generation': generation,
                'devices': len(report.devices)},
         'published %d devices of %s: generation %d' % (
             len(report.devices), report.host, generation))
    return EXIT_OK


def cmd_nova_device_spec(agent: service.Agent,
                         args: argparse.Namespace) -> int:
    report = agent.report()
    found, left_out = nova_spec.entries(report)
    common.emit(args, {'host': report.host, 'device_spec': found,
                'left_out': [{'address': a, 'reason': r}
                             for a, r in left_out]},
         nova_spec.render(report))
    return EXIT_OK


def cmd_run(agent: service.Agent, args: argparse.Namespace) -> int:
    agent_hotplug.wire_run(agent)
    # Kernel uevents wake the loop when a PCI device comes or goes.
    agent.run(iterations=1 if args.once else None,
              sleep=uevents.sleeper())
    return EXIT_OK


COMMANDS: dict[str, Callable[[service.Agent, argparse.Namespace], int]] = {
    'discover': cmd_discover, 'configure-vfs': cmd_configure_vfs,
    'bind': cmd_bind, 'unbind': cmd_bind, 'doctor': cmd_doctor,
    'hostdev-xml': cmd_hostdev, 'report': cmd_report, 'run': cmd_run,
    'nova-device-spec': cmd_nova_device_spec,
    'map': lambda agent, args: ledger_map.run_map(args, agent.conf),
    'attach': agent_hotplug.cmd_attach, 'detach': agent_hotplug.cmd_detach,
    'topology': agent_topology.cmd_topology,
}


def _setup(args: argparse.Namespace, conf: cfg.ConfigOpts) -> None:
    pci_conf.register_opts(conf)
    store_conf.register_opts(conf)
    agent_conf.register_opts(conf)
    lifecycle_conf.register_opts(conf)
    hotplug_conf.register_opts(conf)
    # [passthrough_scheduler] nova_compatible_matching applies to the
    # agent's device_spec matching.
    scheduler_conf.register_opts(conf)
    logging.register_options(conf)
    conf([], project='passthrough-plugin', prog=PROG,
         default_config_files=args.config_file or None)
    # One-shot commands print their result: warnings only (--debug: all).
    common.setup_logging(PROG, args.debug, conf,
                         service=args.command == 'run')


@common.console(PROG)
def main(argv: Sequence[str] | None = None,
         conf: cfg.ConfigOpts | None = None,
         kernel: sysfs_mod.KernelEmulator | None = None) -> int:
    """Run one command; return the exit code (2: bad input).

    ``kernel`` is for tests: the emulator behind a fake sysfs tree.
    """
    conf = conf if conf is not None else cfg.CONF
    return _main(argv, conf, kernel)


def _main(argv: Sequence[str] | None, conf: cfg.ConfigOpts,
          kernel: sysfs_mod.KernelEmulator | None) -> int:
    try:
        args = build_parser().parse_args(argv)
        _setup(args, conf)
        # The command line wins over the options (not by set_override:
        # main() may run many times in one process, e.g. in tests).
        fs = sysfs_mod.Sysfs(args.sysfs_root or conf.agent.sysfs_root,
                             args.proc_root or conf.agent.proc_root,
                             kernel=kernel)
        agent = service.Agent(conf, fs, state_path=args.state_path,
                              binder=getattr(args, 'binder', None))
        return COMMANDS[args.command](agent, args)
    except UsageError as exc:
        print('%s: error: %s' % (PROG, exc), file=sys.stderr)
        return EXIT_USAGE
    except (exception.Invalid, exception.DeviceNotFound, cfg.Error) as exc:
        print('%s: error: %s' % (PROG, getattr(exc, 'message', exc)),
              file=sys.stderr)
        return EXIT_USAGE
    except exception.PassthroughException as exc:
        print('%s: %s' % (PROG, exc.message), file=sys.stderr)
        return EXIT_FAIL
    except BrokenPipeError:
        raise  # common.console: a closed pipe ends the command quietly
    except OSError as exc:
        print('%s: %s' % (PROG, exc), file=sys.stderr)
        return EXIT_FAIL
    except KeyboardInterrupt:
        print('%s: interrupted' % PROG, file=sys.stderr)
        return common.EXIT_INTERRUPTED


if __name__ == '__main__':
    sys.exit(main())
