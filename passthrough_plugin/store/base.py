"""The report store contract: latest HostReport per host, and atomic claims."""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Sequence

from oslo_config import cfg

from passthrough_plugin import exception
from passthrough_plugin.pci import limits
from passthrough_plugin.pci import report as report_mod
from passthrough_plugin.pci import request as request_mod
from passthrough_plugin.pci import pool_counts as summary_mod

NAMESPACE = 'passthrough_plugin.report_stores'


def check_consumer(consumer: object) -> str:
    """A consumer id every store accepts: a UUID or a safe token.

    :raises: Invalid naming the consumer (an excerpt) and what is valid.
    """
    problem = limits.consumer_problem(consumer)
    if problem is not None:
        raise exception.Invalid(reason=problem)
    assert isinstance(consumer, str)
    return consumer


class ReportStore(abc.ABC):
    """Holds the latest report of every host and arbitrates claims.

    Every change to a host's devices (a publish, a claim, a release) bumps
    the host's generation, so readers can cache per generation and writers
    can detect that someone else changed the host under them. Claims belong
    to the store: a publish by the host's agent keeps the claims on devices
    that are still present.
    """

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        self.conf = conf

    @abc.abstractmethod
    def publish(self, report: report_mod.HostReport) -> int:
        """Store the agent's latest report of a host; return its generation.

        Claims held in the store for devices that are still present are
        kept; claims on vanished devices are reported in the log and kept
        as ``unavailable`` until released.

        :raises: StoreUnavailable, InvalidHostReport
        """

    @abc.abstractmethod
    def get(self, host: str) -> report_mod.HostReport:
        """The latest report of ``host``, claims applied.

        :raises: HostReportNotFound, InvalidHostReport (a corrupt report),
            StoreUnavailable
        """

    @abc.abstractmethod
    def generations(self) -> dict[str, int]:
        """Every host's current generation: the cheap cache check.

        Readers compare the values for equality only: a value that changed
        means the host's report changed. (The file store hands out a
        negative token for a file that was replaced outside the store.)
        One call per scheduling request, so it must not read every report.

        :raises: StoreUnavailable
        """

    @abc.abstractmethod
    def claim(self, host: str, consumer: str, devices: Sequence[str],
              expected_generation: int | None = None,
              source: str = 'flavor') -> int:
        """Claim ``devices`` of ``host`` for ``consumer``, all or none.

        :param expected_generation: fail with GenerationConflict if the
            host changed since the caller read it (None: do not check).
        :returns: the host's new generation.
        :raises: ClaimFailed (a device is not free), GenerationConflict,
            HostReportNotFound, StoreUnavailable
        """

    @abc.abstractmethod
    def release(self, host: str, consumer: str) -> list[str]:
        """Release everything ``consumer`` holds on ``host``.

        :returns: the released addresses (empty if it held nothing).
        :raises: HostReportNotFound, StoreUnavailable
        """

    @abc.abstractmethod
    def remove(self, host: str) -> None:
        """Forget ``host`` (decommissioned).

        :raises: HostReportNotFound, StoreUnavailable
        """

    def hosts(self) -> list[str]:
        """The hosts with a report, sorted.

        :raises: StoreUnavailable
        """
        return sorted(self.generations())


@dataclasses.dataclass
class HostFacts:
    """A host as a pool-level store sees it: pool facts, no devices.

    ``handle`` is the store's own (e.g. provider uuids), passed back to
    :meth:`PoolLevelStore.claim_pools`.
    """

    host: str
    generation: int
    pools: list[summary_mod.PoolFacts]
    sockets: dict[int, int | None]
    handle: object = None


class PoolLevelStore(ReportStore):
    """A store that knows pools, not devices (Placement counts VFs).

    Schedulers on such a store ask it for candidate hosts, decide with
    :meth:`Summary.from_pools` and claim the pools
    :meth:`Summary.choose` picked.
    """

    @abc.abstractmethod
    def candidates(self, requests: request_mod.RequestSet
                   ) -> list[HostFacts]:
        """The hosts that may fit ``requests`` (a prefilter), by name.

        :raises: StoreUnavailable, Invalid (a request the store cannot ask)
        """

    @abc.abstractmethod
    def facts(self, host: str) -> HostFacts:
        """One host's pool facts (for per-host deciding, e.g. in nova).

        :raises: HostReportNotFound, StoreUnavailable
        """

    @abc.abstractmethod
    def claim_pools(self, facts: HostFacts, consumer: str,
                    choice: Sequence[dict[tuple[str, str], int]]
                    ) -> list[str]:
        """Claim, for ``consumer``, what ``choice`` takes of each pool.

        :returns: one line per pool taken ("<address> <class> x<n>").
        :raises: ClaimFailed (no room any more), StoreUnavailable
        """
