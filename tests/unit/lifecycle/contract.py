"""Ledger tests every database backend must pass (SQLite, PostgreSQL).

A test class mixes :class:`LedgerContract` in and sets ``make_url()``.
"""

from __future__ import annotations

import datetime

from alembic import autogenerate
from alembic import migration

from passthrough_plugin import exception
from passthrough_plugin.lifecycle import billing
from passthrough_plugin.lifecycle import claims
from passthrough_plugin.lifecycle import evacuate
from passthrough_plugin.lifecycle import hotplug
from passthrough_plugin.lifecycle import ledger as ledger_mod
from passthrough_plugin.lifecycle import mapping
from passthrough_plugin.lifecycle import models
from passthrough_plugin.lifecycle import rebuild
from passthrough_plugin.lifecycle import resize
from tests.unit.lifecycle import fakes

UTC = datetime.timezone.utc
VF_RC = 'CUSTOM_PCI_8086_154C'
GPU_RC = 'CUSTOM_GPU_A100'


def at(hms: str, day: int = 2) -> datetime.datetime:
    hour, minute, second = (int(x) for x in hms.split(':'))
    return datetime.datetime(2026, 11, day, hour, minute, second,
                             tzinfo=UTC)


class Releases:
    """Stands in for a report store's ``release``: records the calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def release(self, host: str, consumer: str) -> list[str]:
        self.calls.append((host, consumer))
        return ['0000:3b:02.3']


class LedgerContract:
    """Mixed into a testtools.TestCase; ``make_url()`` names the database."""

    def make_url(self) -> str | None:
        raise NotImplementedError

    def setUp(self) -> None:
        super().setUp()  # type: ignore[misc]
        self.fx = self.useFixture(  # type: ignore[attr-defined]
            fakes.LedgerFixture(self.make_url()))
        self.ledger = self.fx.ledger
        self.clock = self.fx.clock

    def write_domain(self, hostdevs, interfaces=()) -> str:
        import fixtures

        tmp = self.useFixture(fixtures.TempDir()).path
        path = tmp + '/domain.xml'
        with open(path, 'w', encoding='utf-8') as out:
            out.write(fakes.domain_xml(fakes.INSTANCE, hostdevs, interfaces))
        return path

    def map_table(self, **kwargs):
        return [(r.host_address, r.guest_address, r.source,
                 r.since, r.state)
                for r in mapping.map_rows(self.ledger, **kwargs)]

    def intervals(self):
        return [(i.host, i.host_address, i.source, i.start, i.end,
                 i.end_reason)
                for i in self.ledger.intervals(instance=fakes.INSTANCE)]

    # -- the acceptance scenario -------------------------------------------

    def test_scenario_boot_hotplug_rebuild_evacuate_delete(self) -> None:
        a = fakes.pools('compute-a')
        b = fakes.pools('compute-b', gpus=0)
        vf0, vf1, gpu = '0000:3b:02.3', '0000:3b:02.2', '0000:5e:00.0'

        # 08:00:00 boot with 2 flavor VFs (as SR-IOV ports).
        self.clock.now = at('08:00:00')
        fit = claims.boot(self.ledger, a, fakes.INSTANCE, fakes.PROJECT,
                          fakes.flavor())
        self.assertEqual(((vf0, vf1),), fit.devices)
        self.assertEqual([vf0, vf1], a.held_by(fakes.INSTANCE))
        domain = self.write_domain(
            [], [(vf0, '0000:00:05.0', 'fa:16:3e:00:00:01'),
                 (vf1, '0000:00:06.0', 'fa:16:3e:00:00:02')])
        self.assertEqual(
            [(vf0, '0000:00:05.0', 'flavor', at('08:00:00'), 'attached'),
             (vf1, '0000:00:06.0', 'flavor', at('08:00:00'), 'attached')],
            self.map_table(domain_xml=domain))

        # 09:00:17 hotplug 1 GPU.
        self.clock.now = at('09:00:17')
        opened = hotplug.attach(self.ledger, a, fakes.INSTANCE, 'gpu',
                                fakes.ALIASES,
                                guest_addresses=['0000:00:07.0'])
        self.assertEqual([(gpu, 'hotplug', GPU_RC)],
                         [(i.host_address, i.source, i.resource_class)
                          for i in opened])
        self.assertEqual({'gpu': 1},
                         hotplug.extras(self.ledger, fakes.INSTANCE))
        domain = self.write_domain(
            [(gpu, '0000:00:07.0')],
            [(vf0, '0000:00:05.0', 'fa:16:3e:00:00:01'),
             (vf1, '0000:00:06.0', 'fa:16:3e:00:00:02')])
        self.assertEqual(
            [(gpu, '0000:00:07.0', 'hotplug', at('09:00:17'), 'attached'),
             (vf0, '0000:00:05.0', 'flavor', at('08:00:00'), 'attached'),
             (vf1, '0000:00:06.0', 'flavor', at('08:00:00'), 'attached')],
            self.map_table(domain_xml=domain))
        # The reverse question: which guest device is host device gpu?
        self.assertEqual(
            [(gpu, '0000:00:07.0', 'hotplug', at('09:00:17'), 'attached')],
            self.map_table(host_address='5e:00.0'))
        # Resize or re-placement asks for the flavor plus the GPU again.
        self.assertEqual(
            ['2 x vf', '1 x gpu'],
            [r.describe() for r in hotplug.requests_for_move(
                self.ledger, fakes.INSTANCE, fakes.flavor(),
                fakes.ALIASES).requests])

        # 09:30:00 rebuild: same host, same devices, intervals go on.
        self.clock.now = at('09:30:00')
        before = self.intervals()
        kept = rebuild.rebuild(self.ledger, fakes.INSTANCE, 'compute-a')
        self.assertEqual([vf0, vf1, gpu], [i.host_address for i in kept])
        self.assertEqual(before, self.intervals())
        self.assertEqual(
            [(vf0, None, 'flavor', at('08:00:00'), 'attached'),
             (vf1, None, 'flavor', at('08:00:00'), 'attached'),
             (gpu, '0000:00:07.0', 'hotplug', at('09:00:17'), 'attached')],
            self.map_table(instance=fakes.INSTANCE))

        hotplugged = domain
        # 10:15:42 compute-a dies; evacuate to compute-b, which has no GPU.
        self.clock.now = at('10:15:42')
        self.assertRaises(
            exception.EvacuateRefused, evacuate.evacuate, self.ledger,
            fakes.INSTANCE, b, fakes.flavor(), fakes.ALIASES,
            policy='require')
        self.assertEqual(before, self.intervals())
        result = evacuate.evacuate(self.ledger, fakes.INSTANCE, b,
                                   fakes.flavor(), fakes.ALIASES,
                                   policy='best_effort')
        self.assertEqual([(gpu, 'no_match')],
                         [(lo.interval.host_address, lo.reason)
                          for lo in result.lost])
        self.assertEqual({}, hotplug.extras(self.ledger, fakes.INSTANCE))
        self.assertEqual([vf0, vf1], b.held_by(fakes.INSTANCE))
        lost = ('lost on evacuate to compute-b: no_match: compute-b needs '
                '1 x gpu (10de:20b5 type-PCI): no device on the host '
                'matches')
        self.assertEqual([
            ('compute-a', vf0, 'flavor', at('08:00:00'), at('10:15:42'),
             'evacuated to compute-b'),
            ('compute-a', vf1, 'flavor', at('08:00:00'), at('10:15:42'),
             'evacuated to compute-b'),
            ('compute-a', gpu, 'hotplug', at('09:00:17'), at('10:15:42'),
             lost),
            ('compute-b', vf0, 'flavor', at('10:15:42'), None, None),
            ('compute-b', vf1, 'flavor', at('10:15:42'), None, None),
        ], self.intervals())
        domain = self.write_domain(
            [], [(vf0, '0000:00:05.0', 'fa:16:3e:00:00:01'),
                 (vf1, '0000:00:06.0', 'fa:16:3e:00:00:02')])
        self.assertEqual(
            [(vf0, '0000:00:05.0', 'flavor', at('10:15:42'), 'attached'),
             (vf1, '0000:00:06.0', 'flavor', at('10:15:42'), 'attached')],
            self.map_table(domain_xml=domain))
        self.assertEqual(['compute-a'], [
            p.host for p in self.ledger.pending_releases()])

        # 12:00:05 delete.
        self.clock.now = at('12:00:05')
        claims.delete(self.ledger, fakes.INSTANCE, b)
        self.assertEqual([], b.held_by(fakes.INSTANCE))
        self.assertEqual([], self.map_table(instance=fakes.INSTANCE))
        self.assertEqual(
            [at('12:00:05')] * 2,
            [i.end for i in self.ledger.intervals(host='compute-b')])
        # After the fact: which host devices were these guest devices?
        self.assertEqual(
            [(gpu, '0000:00:07.0', 'hotplug', at('09:00:17'), 'attached'),
             (vf0, '0000:00:05.0', 'flavor', at('08:00:00'), 'attached'),
             (vf1, '0000:00:06.0', 'flavor', at('08:00:00'), 'attached')],
            self.map_table(domain_xml=hotplugged, at=at('10:15:41')))
        self.assertEqual(
            [('compute-a', fakes.INSTANCE)],
            [(r.host, r.instance) for r in mapping.map_rows(
                self.ledger, host_address=gpu, at=at('10:15:41'))])
        self.assertEqual([], self.map_table(host_address=gpu,
                                            at=at('10:15:42')))
        self.assertEqual(['boot', 'hotplug', 'rebuild', 'evacuate',
                          'delete'],
                         [e.action for e in self.ledger.events(
                             fakes.INSTANCE)])

        # Billing, to the second. Flavor: 2 x 2:15:42 on compute-a and
        # 2 x 1:44:23 on compute-b; hotplug: 1:15:25 of GPU.
        day = billing.report(self.ledger, at('00:00:00'),
                             at('00:00:00', day=3))
        self.assertEqual([
            (fakes.INSTANCE, VF_RC, 'flavor', 4, 2 * 8142 + 2 * 6263),
            (fakes.INSTANCE, GPU_RC, 'hotplug', 1, 4525),
        ], [(ln.instance, ln.resource_class, ln.source, ln.devices,
             ln.seconds) for ln in day.lines])
        self.assertEqual(
            [('flavor', 28810, '8.002778'), ('hotplug', 4525, '1.256944'),
             ('all', 33335, '9.259722')],
            [(t['source'], t['seconds'], t['device_hours'])
             for t in day.totals()])
        hour = billing.report(self.ledger, at('09:00:00'), at('10:00:00'))
        self.assertEqual([7200, 3583],
                         [ln.seconds for ln in hour.lines])

    # -- storage -------------------------------------------------------------

    def test_timestamps_stored_as_aware_utc(self) -> None:
        berlin = datetime.timezone(datetime.timedelta(hours=1))
        self.clock.now = datetime.datetime(2026, 11, 2, 9, 0, 1,
                                           tzinfo=berlin)
        claims.boot(self.ledger, fakes.pools('compute-a'), fakes.INSTANCE,
                    fakes.PROJECT, fakes.flavor())
        start = self.ledger.intervals()[0].start
        self.assertEqual(UTC, start.tzinfo)
        self.assertEqual(at('08:00:01'), start)

    def test_naive_clock_refused(self) -> None:
        self.clock.now = datetime.datetime(2026, 11, 2, 9, 0, 0)
        self.assertRaises(exception.LedgerError, claims.boot, self.ledger,
                          fakes.pools('compute-a'), fakes.INSTANCE,
                          fakes.PROJECT, fakes.flavor())

    def test_schema_matches_models_and_reopen_is_noop(self) -> None:
        with self.ledger.engine.connect() as connection:
            context = migration.MigrationContext.configure(connection)
            self.assertEqual('0002_no_overlap', context.get_current_revision())
            diff = autogenerate.compare_metadata(context,
                                                 models.Base.metadata)
        self.assertEqual([], diff)
        again = ledger_mod.Ledger(self.fx.url, self.clock)
        self.addCleanup(again.close)
        self.assertEqual([], again.intervals())

    def test_device_held_once(self) -> None:
        pools = fakes.pools('compute-a')
        claims.boot(self.ledger, pools, fakes.INSTANCE, fakes.PROJECT,
                    fakes.flavor())
        # A second instance told (wrongly) that the same VF is free.
        stale = fakes.pools('compute-a')
        error = self.assertRaises(
            exception.LedgerError, claims.boot, self.ledger, stale,
            fakes.OTHER, fakes.PROJECT, fakes.flavor())
        self.assertIn('0000:3b:02.3 of host compute-a is already held by '
                      'instance %s' % fakes.INSTANCE, str(error))
        self.assertRaises(exception.UnknownInstance, self.ledger.instance,
                          fakes.OTHER)

    def test_database_refuses_two_open_intervals_on_a_device(self) -> None:
        import sqlalchemy as sa

        pools = fakes.pools('compute-a')
        claims.boot(self.ledger, pools, fakes.INSTANCE, fakes.PROJECT,
                    fakes.flavor({'pci_passthrough:alias': 'vf:1'}))

        def row(ended: datetime.datetime | None) -> models.Assignment:
            return models.Assignment(
                instance_uuid=fakes.INSTANCE, project_id=fakes.PROJECT,
                host='compute-a', host_address='0000:3b:02.3',
                resource_class=VF_RC, source='flavor',
                started_at=at('07:00:00'), ended_at=ended)

        with self.ledger.sessions() as session:
            # Closed intervals of the same device are history: allowed.
            session.add(row(at('07:30:00')))
            session.commit()
            # A second open one, written past the ledger's own check.
            session.add(row(None))
            self.assertRaises(sa.exc.IntegrityError, session.commit)

    def test_clock_stepping_back_is_refused(self) -> None:
        vf = {'pci_passthrough:alias': 'vf:1'}
        self.clock.now = at('10:00:00')
        claims.boot(self.ledger, fakes.pools('compute-a'), fakes.INSTANCE,
                    fakes.PROJECT, fakes.flavor(vf))
        self.clock.now = at('11:00:00')
        claims.delete(self.ledger, fakes.INSTANCE)
        before = self.ledger.intervals()
        # The clock steps back half an hour: the device was held then.
        self.clock.now = at('10:30:00')
        error = self.assertRaises(
            exception.LedgerError, claims.boot, self.ledger,
            fakes.pools('compute-a'), fakes.OTHER, fakes.PROJECT,
            fakes.flavor(vf))
        self.assertIn('the clock stepped back', str(error))
        self.assertIn('until 2026-11-02T11:00:00+00:00', str(error))
        self.assertEqual(before, self.ledger.intervals())
        self.assertRaises(exception.UnknownInstance, self.ledger.instance,
                          fakes.OTHER)
        # Once the clock is past the last use, the device is free again.
        self.clock.now = at('11:00:00')
        claims.boot(self.ledger, fakes.pools('compute-a'), fakes.OTHER,
                    fakes.PROJECT, fakes.flavor(vf))

    def test_ending_before_the_start_is_refused(self) -> None:
        self.clock.now = at('10:00:00')
        claims.boot(self.ledger, fakes.pools('compute-a'), fakes.INSTANCE,
                    fakes.PROJECT, fakes.flavor())
        before = self.ledger.intervals()
        self.clock.now = at('09:59:59')
        error = self.assertRaises(exception.LedgerError, claims.delete,
                                  self.ledger, fakes.INSTANCE)
        self.assertIn('the clock stepped back', str(error))
        self.assertEqual(before, self.ledger.intervals())
        self.assertIsNone(self.ledger.instance(fakes.INSTANCE).deleted_at)

    def test_database_refuses_overlapping_closed_intervals(self) -> None:
        import sqlalchemy as sa

        def row(start: str, end: str | None) -> models.Assignment:
            return models.Assignment(
                instance_uuid=fakes.INSTANCE, project_id=fakes.PROJECT,
                host='compute-a', host_address='0000:3b:02.3',
                resource_class=VF_RC, source='flavor',
                started_at=at(start), ended_at=at(end) if end else None)

        self.clock.now = at('06:00:00')
        claims.boot(self.ledger, fakes.pools('compute-a'), fakes.INSTANCE,
                    fakes.PROJECT, fakes.flavor({
                        'pci_passthrough:alias': 'gpu:1'}))
        with self.ledger.sessions() as session:
            session.add(row('07:00:00', '08:00:00'))
            session.commit()
            # Back to back is not an overlap (half-open intervals).
            session.add(row('08:00:00', '08:30:00'))
            session.commit()
            for start, end in (('07:30:00', '07:45:00'),
                               ('06:00:00', '07:00:01'),
                               ('08:29:59', None),
                               ('09:00:00', '08:00:00')):
                session.add(row(start, end))
                self.assertRaises(sa.exc.IntegrityError, session.commit)
                session.rollback()
        self.assertEqual(2, len(self.ledger.intervals(
            host_address='0000:3b:02.3')))

    def test_half_open_clipping(self) -> None:
        self.clock.now = at('10:00:00')
        claims.boot(self.ledger, fakes.pools('compute-a'), fakes.INSTANCE,
                    fakes.PROJECT, fakes.flavor({
                        'pci_passthrough:alias': 'vf:1'}))
        self.clock.now = at('11:00:00')
        claims.delete(self.ledger, fakes.INSTANCE)

        def seconds(start: str, end: str) -> list[int]:
            return [ln.seconds for ln in billing.report(
                self.ledger, at(start), at(end)).lines]

        self.assertEqual([], seconds('11:00:00', '12:00:00'))
        self.assertEqual([], seconds('09:00:00', '10:00:00'))
        self.assertEqual([1], seconds('09:00:00', '10:00:01'))
        self.assertEqual([900], seconds('10:30:00', '10:45:00'))
        self.assertEqual([3600], seconds('00:00:00', '23:59:59'))

    def test_open_interval_billed_until_now(self) -> None:
        self.clock.now = at('10:00:00')
        claims.boot(self.ledger, fakes.pools('compute-a'), fakes.INSTANCE,
                    fakes.PROJECT, fakes.flavor())
        self.clock.now = at('10:00:30')
        lines = billing.report(self.ledger, at('00:00:00'),
                               at('00:00:00', day=3)).lines
        self.assertEqual([60], [ln.seconds for ln in lines])
        self.assertEqual((), billing.report(
            self.ledger, at('00:00:00'), at('00:00:00', day=3),
            project='someone-else').lines)

    # -- hotplug -------------------------------------------------------------

    def test_hotplug_respects_headroom_of_other_instances(self) -> None:
        pools = fakes.pools('compute-a', gpus=2)
        claims.boot(self.ledger, pools, fakes.OTHER, fakes.PROJECT,
                    fakes.flavor({'pci_passthrough:alias': 'vf:1',
                                  'passthrough:hotplug_headroom': 'gpu:1'}))
        claims.boot(self.ledger, pools, fakes.INSTANCE, fakes.PROJECT,
                    fakes.flavor())
        hotplug.attach(self.ledger, pools, fakes.INSTANCE, 'gpu',
                       fakes.ALIASES)
        error = self.assertRaises(
            exception.HotplugRefused, hotplug.attach, self.ledger, pools,
            fakes.INSTANCE, 'gpu', fakes.ALIASES)
        self.assertEqual('hotplug_headroom', error.kwargs['reason'])
        # The other instance may use the headroom it was promised.
        hotplug.attach(self.ledger, pools, fakes.OTHER, 'gpu',
                       fakes.ALIASES)
        self.assertEqual({'gpu': 1}, hotplug.extras(self.ledger,
                                                    fakes.OTHER))

    def test_hotplug_beyond_host_refused_with_reason(self) -> None:
        pools = fakes.pools('compute-a', gpus=0)
        claims.boot(self.ledger, pools, fakes.INSTANCE, fakes.PROJECT,
                    fakes.flavor())
        error = self.assertRaises(
            exception.HotplugRefused, hotplug.attach, self.ledger, pools,
            fakes.INSTANCE, 'gpu', fakes.ALIASES)
        self.assertEqual('no_match', error.kwargs['reason'])
        self.assertEqual([], self.ledger.hotplugs(fakes.INSTANCE))
        self.assertRaises(exception.UnknownInstance, hotplug.attach,
                          self.ledger, pools, fakes.OTHER, 'gpu',
                          fakes.ALIASES)

    def test_detach_closes_and_forgets(self) -> None:
        pools = fakes.pools('compute-a')
        self.clock.now = at('08:00:00')
        claims.boot(self.ledger, pools, fakes.INSTANCE, fakes.PROJECT,
                    fakes.flavor())
        self.clock.now = at('08:10:00')
        hotplug.attach(self.ledger, pools, fakes.INSTANCE, 'gpu',
                       fakes.ALIASES)
        self.clock.now = at('08:20:00')
        self.assertRaises(exception.InvalidLedgerInput, hotplug.detach,
                          self.ledger, fakes.INSTANCE, '0000:3b:02.3', pools)
        closed = hotplug.detach(self.ledger, fakes.INSTANCE, '0000:5e:00.0',
                                pools)
        self.assertEqual((at('08:20:00'), 'detached'),
                         (closed.end, closed.end_reason))
        self.assertEqual({}, hotplug.extras(self.ledger, fakes.INSTANCE))
        self.assertEqual(['0000:3b:02.2', '0000:3b:02.3'],
                         sorted(pools.held_by(fakes.INSTANCE)))

    # -- resize --------------------------------------------------------------

    def _booted_with_gpu(self):
        a = fakes.pools('compute-a')
        self.clock.now = at('08:00:00')
        claims.boot(self.ledger, a, fakes.INSTANCE, fakes.PROJECT,
                    fakes.flavor())
        self.clock.now = at('08:30:00')
        hotplug.attach(self.ledger, a, fakes.INSTANCE, 'gpu', fakes.ALIASES)
        self.clock.now = at('09:00:00')
        return a

    def test_resize_to_other_host_takes_the_hotplug_along(self) -> None:
        a, b = self._booted_with_gpu(), fakes.pools('compute-b')
        small = fakes.flavor({'pci_passthrough:alias': 'vf:1'})
        move = resize.resize(self.ledger, fakes.INSTANCE, a, b, small,
                             fakes.ALIASES)
        self.assertEqual([], a.held_by(fakes.INSTANCE))
        self.assertEqual(['0000:3b:02.3', '0000:5e:00.0'],
                         b.held_by(fakes.INSTANCE))
        self.assertEqual(
            [('compute-b', '0000:3b:02.3', 'flavor', at('09:00:00'), None,
              None),
             ('compute-b', '0000:5e:00.0', 'hotplug', at('09:00:00'), None,
              None)],
            [x for x in self.intervals() if x[4] is None])
        self.assertEqual(3, len(move.closed))
        self.assertEqual({'gpu': 1}, hotplug.extras(self.ledger,
                                                    fakes.INSTANCE))
        self.assertEqual('compute-b',
                         self.ledger.instance(fakes.INSTANCE).host)

    def test_resize_on_same_host_keeps_intervals_going(self) -> None:
        a = self._booted_with_gpu()
        small = fakes.flavor({'pci_passthrough:alias': 'vf:1'})
        move = resize.resize(self.ledger, fakes.INSTANCE, a, a, small,
                             fakes.ALIASES)
        self.assertEqual((), move.opened)
        self.assertEqual(['0000:3b:02.3', '0000:5e:00.0'],
                         [i.host_address for i in move.kept])
        self.assertEqual([('0000:3b:02.2', at('09:00:00'), 'resized')],
                         [(i.host_address, i.end, i.end_reason)
                          for i in move.closed])
        self.assertEqual(['0000:3b:02.3', '0000:5e:00.0'],
                         sorted(a.held_by(fakes.INSTANCE)))

    def test_resize_refused_changes_nothing(self) -> None:
        a = self._booted_with_gpu()
        before = self.intervals()
        no_gpu = fakes.pools('compute-b', gpus=0)
        error = self.assertRaises(
            exception.ResizeRefused, resize.resize, self.ledger,
            fakes.INSTANCE, a, no_gpu, fakes.flavor(), fakes.ALIASES)
        self.assertEqual('no_match', error.kwargs['reason'])
        big = fakes.flavor({'pci_passthrough:alias': 'vf:8'})
        self.assertRaises(exception.ResizeRefused, resize.resize,
                          self.ledger, fakes.INSTANCE, a, a, big,
                          fakes.ALIASES)
        self.assertEqual(before, self.intervals())
        self.assertEqual(['0000:3b:02.2', '0000:3b:02.3', '0000:5e:00.0'],
                         sorted(a.held_by(fakes.INSTANCE)))

    # -- evacuate ------------------------------------------------------------

    def test_evacuate_keeps_hotplug_when_destination_has_it(self) -> None:
        a, b = fakes.pools('compute-a'), fakes.pools('compute-b')
        claims.boot(self.ledger, a, fakes.INSTANCE, fakes.PROJECT,
                    fakes.flavor())
        hotplug.attach(self.ledger, a, fakes.INSTANCE, 'gpu', fakes.ALIASES)
        result = evacuate.evacuate(self.ledger, fakes.INSTANCE, b,
                                   fakes.flavor(), fakes.ALIASES)
        self.assertEqual((), result.lost)
        self.assertEqual([('flavor', '0000:3b:02.3'),
                          ('flavor', '0000:3b:02.2'),
                          ('hotplug', '0000:5e:00.0')],
                         [(i.source, i.host_address) for i in result.opened])
        self.assertEqual({'gpu': 1}, hotplug.extras(self.ledger,
                                                    fakes.INSTANCE))
        self.assertEqual('compute-b',
                         self.ledger.instance(fakes.INSTANCE).host)

    def test_evacuate_refused_when_flavor_does_not_fit(self) -> None:
        a, b = fakes.pools('compute-a'), fakes.pools('compute-b', vfs=1)
        claims.boot(self.ledger, a, fakes.INSTANCE, fakes.PROJECT,
                    fakes.flavor())
        error = self.assertRaises(
            exception.EvacuateRefused, evacuate.evacuate, self.ledger,
            fakes.INSTANCE, b, fakes.flavor(), fakes.ALIASES,
            policy='best_effort')
        self.assertIn('the flavor devices do not fit', str(error))
        self.assertEqual('compute-a',
                         self.ledger.instance(fakes.INSTANCE).host)
        self.assertRaises(exception.InvalidLedgerInput, evacuate.evacuate,
                          self.ledger, fakes.INSTANCE, a, fakes.flavor(),
                          fakes.ALIASES)

    def test_source_claims_released_only_when_it_reports_again(self) -> None:
        a, b = fakes.pools('compute-a'), fakes.pools('compute-b')
        self.clock.now = at('08:00:00')
        claims.boot(self.ledger, a, fakes.INSTANCE, fakes.PROJECT,
                    fakes.flavor())
        self.clock.now = at('09:00:00')
        evacuate.evacuate(self.ledger, fakes.INSTANCE, b, fakes.flavor(),
                          fakes.ALIASES)
        releases = Releases()
        old = fakes.host_report('compute-a')
        old.reported_at = '2026-11-02T08:59:59Z'
        self.assertEqual([], evacuate.apply_pending_releases(
            self.ledger, releases, old))
        self.assertEqual([], releases.calls)
        new = fakes.host_report('compute-a')
        new.reported_at = '2026-11-02T09:05:00Z'
        applied = evacuate.apply_pending_releases(self.ledger, releases, new)
        self.assertEqual([('compute-a', fakes.INSTANCE)], releases.calls)
        self.assertEqual(('0000:3b:02.3', '0000:3b:02.2'),
                         applied[0].addresses)
        self.assertEqual([], self.ledger.pending_releases('compute-a'))
        evacuate.apply_pending_releases(self.ledger, releases, new)
        self.assertEqual(1, len(releases.calls))
