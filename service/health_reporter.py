"""A pipeline running apart from its service reports its cameras' health there, every few seconds and when it stops.

``anjian run --service-url`` (a plant's pipeline node, or a lone pipeline) has no API
of its own: the service's ``GET /cameras``, control room and health reports to the hub
list its cameras from these reports (``POST /ingest/health``, gathered by
``anjian.service.camera_board.CameraHealthBoard``). They go through the pipeline's
``HttpEventSink`` (its client and token), one try each: the next report replaces a
lost one. The service shows a camera stale after three silent intervals, so a node
reports twice per lease round: its cameras show stale 1.5 rounds after it dies, well
before their leases (at least three rounds) let another node take them. Stopping
sends one last report, after the node has handed its cameras back: the service shows
them as no longer run at once, not after three intervals.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from anjian.pipeline.health_wire import HealthReportWire
from anjian.service.periodic import PeriodicThread

if TYPE_CHECKING:
    from anjian.cameras.health import CameraHealth
    from anjian.pipeline.http_sink import HttpEventSink
    from anjian.service.config import AnjianConfig

__all__ = ["LONE_PIPELINE_INTERVAL_S", "HealthReporter", "health_interval_s"]

LONE_PIPELINE_INTERVAL_S = 5.0
"""How often a pipeline that is not a node (no ``--node``) reports."""


def health_interval_s(config: AnjianConfig, node: str | None) -> float:
    """How often a pipeline reports its cameras' health: a node twice per lease round, else every 5 s."""
    if node is None or config.nodes is None:
        return LONE_PIPELINE_INTERVAL_S
    return config.nodes.renew_interval_s / 2


class HealthReporter:
    """POSTs the health of a pipeline's cameras through its HTTP sink every ``interval_s``, and once when stopped.

    Args:
        sink: The pipeline's sink to the service (its client and token).
        health: The cameras' health now (``PipelineRunner.health``).
        node: The node's name (``--node``), ``None`` for a lone pipeline.
        interval_s: Seconds between reports (``health_interval_s``).

    Example:
        >>> reporter = HealthReporter(sink, runner.health, node="line-b", interval_s=1.5)
        >>> reporter.start(); ...; reporter.stop()  # after the node and the runner, before the sink
    """

    def __init__(
        self,
        sink: HttpEventSink,
        health: Callable[[], Sequence[CameraHealth]],
        *,
        node: str | None,
        interval_s: float,
    ) -> None:
        self._sink = sink
        self._health = health
        self._node = node
        self.interval_s = interval_s
        self._thread = PeriodicThread(self.report, interval_s=interval_s, name="anjian-health-report")

    def report(self) -> bool:
        """Send the cameras' health now; ``True`` when the service took it (never raises)."""
        return self._sink.report_health(
            HealthReportWire.from_health(self._health(), node=self._node, interval_s=self.interval_s)
        )

    def start(self) -> None:
        """Report every ``interval_s`` from now on (the first one after an interval)."""
        self._thread.start()

    def stop(self) -> None:
        """Stop the reports, then send the last one: the cameras the pipeline runs now (none, for a node that stopped)."""
        self._thread.stop()
        self.report()
