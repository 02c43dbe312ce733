"""SLA escalation: a worker that escalates alerts left unacknowledged past their colour's deadline.

The rule itself is ``EventStore.escalate_overdue`` (one transaction: colour up,
audit line, ``event.escalated`` deliveries); this thread runs it every
``sla.check_interval_s`` (the commit that escalates wakes the webhook dispatcher
through the outbox). Tests call ``run_once`` with a fake clock instead of waiting.
"""

from __future__ import annotations

from anjian.service.config import SlaConfig
from anjian.service.metrics import ServiceMetrics
from anjian.service.periodic import PeriodicThread
from anjian.service.records import StoredEvent
from anjian.service.store import EventStore

__all__ = ["Escalator"]


class Escalator:
    """Escalates overdue alerts periodically.

    Args:
        store: Where the alerts live (its clock decides what is overdue).
        sla: Deadlines per colour and how often to look.
        metrics: Counts escalations, when given.
    """

    def __init__(
        self,
        store: EventStore,
        sla: SlaConfig,
        *,
        metrics: ServiceMetrics | None = None,
    ) -> None:
        self._store = store
        self._sla = sla
        self._metrics = metrics
        self._ticker = PeriodicThread(self.run_once, interval_s=sla.check_interval_s, name="anjian-escalator")

    @property
    def is_running(self) -> bool:
        """Whether the worker thread is alive."""
        return self._ticker.is_running

    def run_once(self) -> list[StoredEvent]:
        """Escalate what is overdue now; returns the escalated alerts."""
        escalated = self._store.escalate_overdue(self._sla)
        if escalated and self._metrics is not None:
            self._metrics.escalations.inc(len(escalated))
        return escalated

    def start(self) -> None:
        """Start the worker thread.

        Raises:
            RuntimeError: It is running already, or was stopped (create a new one).
        """
        self._ticker.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the worker thread; safe to call twice."""
        self._ticker.stop(timeout_s)
