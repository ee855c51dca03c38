"""Fuzz targets of every console script: main(argv) called in-process."""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st
from oslo_config import cfg

from passthrough_plugin.cmd import agent as agent_cmd
from passthrough_plugin.cmd import billing as billing_cmd
from passthrough_plugin.cmd import common
from passthrough_plugin.cmd import demo as demo_cmd
from passthrough_plugin.cmd import scheduler as scheduler_cmd
from passthrough_plugin.demo import hosts as hosts_mod
from passthrough_plugin.lifecycle import demo as ledger_demo
from passthrough_plugin.scheduler import examples
from tests.fuzz import harness
from tests.fuzz import strategies as fz_st

INSTANCE = ledger_demo.INSTANCE
DATES = ['2026-11-01', '2026-11-02T08:30:00Z', '2026-02-30', 'x', '',
         '9999-12-31', '0001-01-01', '2026-11-01T00:00:00+14:00',
         '2026-11-03T00:00:00-12:00', '1' * 5000]
# Random tokens never hold "/": every path the fuzz makes up is relative
# to its own working directory.
tokens = fz_st.nasty_text.filter(lambda t: '/' not in t and t != '..')


def call(main: Callable[..., int], argv: list[str], **kwargs: Any
         ) -> tuple[int, str]:
    """Exit code and stderr of ``main(argv)``, as a shell would see them."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv, **kwargs)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (
                0 if exc.code is None else 2)
    text = err.getvalue()
    if code == common.EXIT_SOFTWARE or 'Traceback' in text:
        raise RuntimeError('exit %s: %s' % (code, text[-1500:]))
    return int(code), text


def _write(path: str, data: bytes | str) -> str:
    with open(path, 'wb') as handle:
        handle.write(data.encode() if isinstance(data, str) else data)
    return path


class CliTargets:
    """Files, a store, a ledger and a fake host for the four commands."""

    def __init__(self, workdir: str) -> None:
        self.dir = workdir
        self.store = os.path.join(workdir, 'cli-store')
        self.ledger_path = os.path.join(workdir, 'ledger.sqlite')
        self.ledger = 'sqlite:///%s' % self.ledger_path
        ledger_demo.run(self.ledger, os.path.join(workdir, 'xml'))
        self.sched_conf = _write(
            os.path.join(workdir, 'scheduler.conf'),
            '[file_store]\npath = %s\n\n[pci]\n' % self.store + ''.join(
                'alias = %s\n' % a for a in examples.alias_values()))
        self.bad = {
            'binary.bin': bytes(range(256)) * 8,
            'latin1.txt': '[pci]\nalias = {"name": "caf\xe9"}\n'.encode(
                'latin-1'),
            'bad-spec.conf': '[pci]\ndevice_spec = {"vendor_id": "zz"}\n',
            'bad-alias.conf': '[pci]\nalias = {"name": "a", '
                              '"resource_class": "!!!"}\n',
            'not-ini.conf': 'just words\n[[[\n',
            'report.json': examples.hosts()[0].to_json(),
            'domain.xml': '<domain><devices/></domain>',
        }
        for name, data in self.bad.items():
            _write(os.path.join(workdir, name), data)
        tree = hosts_mod.build(os.path.join(workdir, 'host'),
                               hosts_mod.EXAMPLES[0])
        self.sys, self.proc = str(tree.sys), str(tree.proc)
        self.agent_store = os.path.join(workdir, 'agent-store')
        self.state = os.path.join(workdir, 'agent-state.json')
        self.agent_conf = _write(
            os.path.join(workdir, 'agent.conf'),
            '[DEFAULT]\nhost = fz-agent\n\n[report_store]\ndriver = file\n\n'
            '[file_store]\npath = %s\n\n[lifecycle]\nconnection = %s\n'
            'libvirt_uri = test:///default\n\n[pci]\n'
            'device_spec = {"vendor_id": "8086"}\n' % (
                self.agent_store, self.ledger))
        self.billing_conf = _write(
            os.path.join(workdir, 'billing.conf'),
            '[lifecycle]\nconnection = %s\n' % self.ledger)
        call(scheduler_cmd.main, ['--store-path', self.store, 'examples'])
        files = sorted(self.bad) + ['missing.conf']
        self.file_tokens = files

    # -- passthrough-scheduler ---------------------------------------------

    def scheduler_argv(self) -> st.SearchStrategy[list[str]]:
        pool = st.one_of(st.sampled_from([
            '--extra-spec', 'pci_passthrough:alias=vf:1',
            'pci_passthrough:alias=gpu:2', 'pci_passthrough:alais=vf:99',
            'passthrough:vf_anti_affinity=true', 'x=', '=y',
            '--numa-cells', '0', '0,1', '-1', ',', '--host', '--on',
            '--consumer', 'vm-1', '', 'evil\n', 'x' * 300, '--format',
            'json', 'table', 'select', 'explain', 'claim', 'release',
            'publish', '--config-file', '--store-path', 'other-store',
            '-h', *[h.host for h in examples.hosts()],
            *self.file_tokens]), tokens)
        # Always a store of ours: the default is /var/lib/...
        prefix = st.sampled_from([
            ['--config-file', self.sched_conf, '--store-path', self.store],
            ['--store-path', self.store], ['--config-file', self.sched_conf]])
        command = st.sampled_from(['select', 'explain', 'claim', 'release',
                                   'publish', 'bogus'])
        return st.builds(lambda p, c, rest: p + [c] + rest, prefix, command,
                         st.lists(pool, max_size=8))

    def check_scheduler(self, argv: list[str]) -> str:
        before = harness.snapshot(self.store)
        code, err = call(scheduler_cmd.main, argv)
        if code != 0:
            if harness.snapshot(self.store) != before:
                raise harness.Finding('state: exit %d changed the store: '
                                      '%s' % (code, err[-300:]))
            return harness.REFUSED
        return harness.ACCEPTED

    # -- passthrough-billing -----------------------------------------------

    def billing_argv(self) -> st.SearchStrategy[list[str]]:
        pool = st.one_of(st.sampled_from([
            '--from', '--to', *DATES, '--project', ledger_demo.PROJECT,
            '--instance', INSTANCE, '--format', 'json', 'csv', 'table',
            '--ledger', 'sqlite:///binary.bin', 'sqlite:///latin1.txt',
            'sqlite:///new.sqlite', 'report', 'history', '--config-file',
            *self.file_tokens]), tokens, st.uuids().map(str))
        # Always a ledger of ours: the default is /var/lib/...
        prefix = st.sampled_from([['--ledger', self.ledger],
                                  ['--config-file', self.billing_conf]])
        command = st.one_of(
            st.sampled_from(['report', 'history', 'bogus']),
            # Mostly well-formed commands, so the fuzz gets past argparse.
            st.builds(lambda a, b: 'report --from %s --to %s' % (a, b),
                      st.sampled_from(DATES), st.sampled_from(DATES)),
            st.just('history --instance %s' % INSTANCE))
        return st.builds(lambda p, c, rest: p + c.split(' ') + rest,
                         prefix, command, st.lists(pool, max_size=4))

    def check_billing(self, argv: list[str]) -> str:
        before = harness.snapshot(self.ledger_path)
        code, err = call(billing_cmd.main, argv)
        # The billing commands only read: nothing may change the ledger.
        if harness.snapshot(self.ledger_path) != before:
            raise harness.Finding('state: exit %d changed the ledger: %s'
                                  % (code, err[-300:]))
        return harness.ACCEPTED if code == 0 else harness.REFUSED

    # -- passthrough-agent (the read-only and publishing commands) ---------

    def agent_argv(self) -> st.SearchStrategy[list[str]]:
        pool = st.one_of(st.sampled_from([
            '--format', 'json', 'table', '--all', '0000:81:00.0',
            '0000:81:02.0', 'zz', '81:00.0', '--guest-address',
            '--unmanaged', '--instance', INSTANCE, '--domain-xml',
            '--host-address', '--host', '--at', *DATES, '--config-file',
            *self.file_tokens]), tokens)
        command = st.sampled_from(['discover', 'doctor', 'hostdev-xml',
                                   'report', 'map', 'bogus'])
        suffix = ['--config-file', self.agent_conf, '--sysfs-root',
                  self.sys, '--proc-root', self.proc, '--state-path',
                  self.state]
        return st.builds(lambda c, rest: [c] + rest + suffix, command,
                         st.lists(pool, max_size=6))

    def check_agent(self, argv: list[str]) -> str:
        watched = [p for p in (self.agent_store, self.state, self.sys)
                   if os.path.exists(p)]
        before = harness.snapshot(*watched)
        code, err = call(agent_cmd.main, argv, conf=cfg.ConfigOpts())
        if code != 0:
            if harness.snapshot(*watched) != before:
                raise harness.Finding('state: exit %d changed the agent '
                                      'store, journal or sysfs: %s' % (
                                          code, err[-300:]))
            return harness.REFUSED
        return harness.ACCEPTED

    # -- passthrough-demo --------------------------------------------------

    def demo_argv(self) -> st.SearchStrategy[list[str]]:
        # Only configs that fail fast: a good one runs the whole demo.
        bad = [f for f in self.file_tokens if f not in ('report.json',)]
        pool = st.one_of(st.sampled_from(['--config-file', *bad,
                                          '--workdir', 'wd', '-h']),
                         tokens)
        return st.builds(
            lambda c, rest: ['--config-file', c] + rest + ['--workdir',
                                                           'demo-wd'],
            st.sampled_from(bad), st.lists(pool, max_size=4))

    def check_demo(self, argv: list[str]) -> str:
        code, _err = call(demo_cmd.main, argv)
        return harness.ACCEPTED if code == 0 else harness.REFUSED
