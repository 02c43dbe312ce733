"""Every camera of the plant in one list: those this process reads and those pipeline nodes elsewhere report.

The alert service shows camera health (``GET /cameras``, ``/healthz``, the control
room's wall, ``/metrics``, the health reports to the hub) from one provider, the
``CameraHealthBoard``. It gathers:

- the cameras of the pipeline in this process (``anjian run``), read fresh at every call,
  marked with this process's node name when it is one (``--node``);
- the cameras of pipelines running elsewhere (``anjian run --service-url``), which POST
  their health every ``interval_s`` (``POST /ingest/health``, ``record``).

One entry per camera: the latest report of it wins, whoever sent it, so a camera
taken over by another node shows that node at its first report; this process's own
cameras win over a report from elsewhere (they are read now). A camera is shown
``stale`` (its last known figures kept, ``fps`` 0, ``last_error`` saying since when)
when no one reports it any more:

- its last report is older than ``stale_after_intervals`` report intervals (the node
  died, or lost the service), or
- the named node that reported it sent a report without it (it stopped running the
  camera: handed over, or its lease lapsed) and no one else reports it yet.

A stale camera stays listed, never dropped: a camera whose node died shows as not
reporting until another node takes it over. A camera this process stops reading
without being a node (a camera reload removed it) is dropped, as before.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from anjian.cameras.health import CameraHealth, CameraState

__all__ = ["STALE_AFTER_INTERVALS", "CameraHealthBoard"]

STALE_AFTER_INTERVALS = 3
"""Report intervals without a report after which a remote camera shows as stale."""


@dataclass(frozen=True, slots=True)
class _Entry:
    """The last report of one camera, and who sent it."""

    health: CameraHealth  # its ``node`` names the reporter
    is_local: bool
    interval_s: float  # how often the reporter reports (0 for this process: read at every call)
    received_at: float
    is_released: bool = False  # its named node reported without it


class CameraHealthBoard:
    """Camera health of the whole plant: this process's pipeline and the nodes reporting from elsewhere.

    Call it (``board()``) for the list; it is the service's ``CameraHealthProvider``.
    Thread-safe.

    Args:
        local: The health of the cameras this process reads (``PipelineRunner.health``);
            ``None`` when it reads none (``anjian serve``).
        local_node: This process's node name (``anjian run --node NAME``), else ``None``.
        camera_order: The site's camera ids in the order to list them (the site YAML's);
            cameras not in it come last.
        clock: Epoch seconds; reports age on it.
        stale_after_intervals: Report intervals after which a silent reporter's cameras are stale.

    Example:
        >>> board = CameraHealthBoard(runner.health, local_node="node-a", camera_order=["cam-a", "cam-b"])
        >>> board.record("node-b", 3.0, [cam_b_health])  # POST /ingest/health
        >>> [(h.camera_id, h.node, h.state) for h in board()]
        [('cam-a', 'node-a', 'online'), ('cam-b', 'node-b', 'online')]
    """

    def __init__(
        self,
        local: Callable[[], Sequence[CameraHealth]] | None = None,
        *,
        local_node: str | None = None,
        camera_order: Iterable[str] = (),
        clock: Callable[[], float] = time.time,
        stale_after_intervals: int = STALE_AFTER_INTERVALS,
    ) -> None:
        if stale_after_intervals < 1:
            raise ValueError(f"stale_after_intervals must be >= 1, got {stale_after_intervals}")
        self._local = local
        self._local_node = local_node
        self._order = {camera_id: index for index, camera_id in enumerate(camera_order)}
        self._clock = clock
        self._stale_after = stale_after_intervals
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}

    @property
    def is_reading_cameras(self) -> bool:
        """Whether this process reads cameras itself (``anjian run``)."""
        return self._local is not None

    def stale_after_s(self, interval_s: float) -> float:
        """Seconds without a report after which a reporter sending every ``interval_s`` shows stale cameras."""
        return self._stale_after * interval_s

    def record(self, node: str | None, interval_s: float, cameras: Sequence[CameraHealth]) -> None:
        """Take a report from a pipeline elsewhere: the health of every camera it reads now.

        Args:
            node: The reporting node's name; ``None`` for a lone pipeline (its cameras
                only age: several lone pipelines cannot be told apart).
            interval_s: How often it reports, seconds (> 0).
            cameras: Every camera it reads (a camera it no longer lists is no longer its).

        Raises:
            ValueError: ``interval_s`` is not positive.
        """
        if not interval_s > 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s}")
        now = self._clock()
        with self._lock:
            self._take(cameras, node=node, is_local=False, interval_s=interval_s, now=now)

    def __call__(self) -> list[CameraHealth]:
        """Every camera known, in the site's order: reported, or shown stale."""
        local = list(self._local()) if self._local is not None else None
        now = self._clock()
        with self._lock:
            if local is not None:
                self._take(local, node=self._local_node, is_local=True, interval_s=0.0, now=now)
            entries = list(self._entries.values())
        shown = [self._shown(entry, now) for entry in entries]
        last = len(self._order)
        return sorted(shown, key=lambda h: self._order.get(h.camera_id, last))

    def _take(
        self,
        cameras: Sequence[CameraHealth],
        *,
        node: str | None,
        is_local: bool,
        interval_s: float,
        now: float,
    ) -> None:
        """Store one reporter's cameras (lock held), releasing or dropping those it no longer lists."""
        listed = {h.camera_id for h in cameras}
        for camera_id, entry in list(self._entries.items()):
            if camera_id in listed or entry.is_local != is_local or entry.health.node != node:
                continue
            if is_local and node is None:
                del self._entries[camera_id]  # removed from this process's pipeline
            elif node is not None and not entry.is_released:
                self._entries[camera_id] = replace(entry, is_released=True)
        for health in cameras:
            current = self._entries.get(health.camera_id)
            if not is_local and current is not None and current.is_local and not current.is_released:
                continue  # this process reads it now: its own reading wins
            self._entries[health.camera_id] = _Entry(replace(health, node=node), is_local, interval_s, now)

    def _shown(self, entry: _Entry, now: float) -> CameraHealth:
        """The entry's health, or its stale form when no one reports the camera any more."""
        is_old = not entry.is_local and now - entry.received_at > self.stale_after_s(entry.interval_s)
        if not (entry.is_released or is_old):
            return entry.health
        health = entry.health
        reporter = "its pipeline" if health.node is None else f"node {health.node}"
        at = datetime.fromtimestamp(entry.received_at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        why = (
            f"{reporter} no longer runs it (last reported {at})"
            if entry.is_released
            else f"{reporter} has not reported it since {at}"
        )
        return replace(
            health,
            state=CameraState.STALE,
            since=entry.received_at,
            fps=0.0,
            down_since=health.down_since if health.down_since is not None else entry.received_at,
            last_error=f"not reporting: {why} (last state: {health.state.value})",
        )
