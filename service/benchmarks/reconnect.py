"""Measure how fast a camera comes back after its server does, and what a dead camera costs the others.

Measurements against a real RTSP server (:mod:`anjian.service.benchmarks.rtsp`,
GStreamer under Debian's python3, the one the tests use too):

* **Reconnect**: a camera with the default reconnect settings reads the server; the
  server is stopped for ``down_s``, restarted on the same port, and the seconds from
  "the server listens again" to "the camera is online" are recorded, with the number
  of full opens the reader tried while the server was down (hammering shows there).
* **A hung camera**: the server is paused (SIGSTOP: its sockets stay open, nothing
  flows); the seconds until the camera is reported ``stalled`` (against its
  ``stall_timeout_s``), and until it is online again once the server resumes.
* **One dead camera among N** (optional): N cameras read N mounts; one server is
  killed; each healthy camera's delivered rate over the next seconds is compared with
  its rate before, in the same run.

``anjian bench reconnect`` prints both tables.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from anjian.cameras.camera_set import CameraSet
from anjian.cameras.config import CameraConfig
from anjian.cameras.health import CameraState
from anjian.cameras.source import VideoSource
from anjian.service.benchmarks.clips import write_synthetic_clip
from anjian.service.benchmarks.rtsp import RtspTestServer, rtsp_server_available

__all__ = [
    "DeadCameraReport",
    "ReconnectRound",
    "StallReport",
    "format_reconnect_report",
    "run_dead_camera_bench",
    "run_reconnect_bench",
    "run_stall_bench",
]

_CLIP_FPS = 10
_POLL_S = 0.05


@dataclass(frozen=True, slots=True)
class ReconnectRound:
    """One outage of the server and the camera's return.

    Attributes:
        down_s: Seconds the server was down.
        opens_while_down: Full opens the reader tried while the server was down.
        online_after_s: Seconds from the server listening again to the camera online
            (``None``: not back within the deadline).
    """

    down_s: float
    opens_while_down: int
    online_after_s: float | None


@dataclass(frozen=True, slots=True)
class DeadCameraReport:
    """Healthy cameras' delivered rates before and after one of them died.

    Attributes:
        cameras: Cameras read, the dead one included.
        window_s: Seconds each rate was measured over.
        fps_before: Delivered frames per second of each healthy camera before the kill.
        fps_after: The same after the kill.
    """

    cameras: int
    window_s: float
    fps_before: dict[str, float]
    fps_after: dict[str, float]

    @property
    def worst_ratio(self) -> float:
        """The lowest after/before rate over the healthy cameras (1.0: not slowed at all)."""
        return min(self.fps_after[c] / self.fps_before[c] for c in self.fps_before if self.fps_before[c] > 0)


@dataclass(frozen=True, slots=True)
class StallReport:
    """A hung server: how soon its camera was reported stalled, and back once it resumed.

    Attributes:
        stall_timeout_s: The camera's stall timeout.
        stalled_after_s: Seconds from the server hanging to ``stalled`` (``None``: never).
        online_after_s: Seconds from the server resuming to ``online`` (``None``: never).
    """

    stall_timeout_s: float
    stalled_after_s: float | None
    online_after_s: float | None


def _server(mounts: dict[str, Path]) -> RtspTestServer:
    """A started RTSP server serving ``mounts``, or a clear error where it cannot run."""
    is_available, reason = rtsp_server_available()
    if not is_available:
        raise RuntimeError(f"the RTSP server cannot run here: {reason} (make system-deps installs it)")
    return RtspTestServer(mounts).start()


def _wait(predicate: Callable[[], bool], timeout_s: float) -> float | None:
    """Seconds until ``predicate`` held, or ``None`` after ``timeout_s``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if predicate():
            return time.monotonic() - started
        time.sleep(_POLL_S)
    return None


def _clip(directory: Path | None) -> Path:
    """The served clip (320x240, 4 s), written once per folder."""
    clip = (directory or Path(tempfile.gettempdir()) / "anjian-bench") / "reconnect-320x240.mp4"
    if clip.is_file():
        return clip
    return write_synthetic_clip(clip, seconds=4.0, fps=_CLIP_FPS, keyframe_interval_s=2.0)


def run_reconnect_bench(
    *,
    rounds: int = 3,
    down_s: float = 20.0,
    deadline_s: float = 60.0,
    directory: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[ReconnectRound]:
    """Stop and restart a real RTSP server ``rounds`` times; time the camera's return each time.

    The camera has every setting at its default (reconnect backoff, probes, timeouts).

    Args:
        rounds: Outages to measure.
        down_s: Seconds the server stays down each time.
        deadline_s: Give up waiting for the camera after this long (the round records ``None``).
        directory: Where the test clip goes (default: a temp folder).
        progress: Called with a line per round.

    Returns:
        One ``ReconnectRound`` per outage.

    Raises:
        RuntimeError: The RTSP server is not available here.
    """
    server = _server({"/cam": _clip(directory)})
    source = VideoSource(CameraConfig(id="bench", url=server.url("/cam")))
    results: list[ReconnectRound] = []
    try:
        source.start()
        if _wait(lambda: source.health().state == CameraState.ONLINE, deadline_s) is None:
            raise RuntimeError(f"the camera never came online: {source.health().last_error}")
        for index in range(rounds):
            server.stop()
            opens_before = source.health().reconnects
            time.sleep(down_s)
            server.start()
            opens = source.health().reconnects - opens_before
            online_after_s = _wait(lambda: source.health().state == CameraState.ONLINE, deadline_s)
            results.append(ReconnectRound(down_s, opens, online_after_s))
            if progress is not None:
                shown = "not back" if online_after_s is None else f"online {online_after_s:.2f} s after"
                progress(f"round {index + 1}: server down {down_s:g} s, {opens} open(s) meanwhile, {shown}")
    finally:
        source.stop()
        server.stop()
    return results


def run_stall_bench(*, deadline_s: float = 60.0, directory: Path | None = None) -> StallReport:
    """Hang a real RTSP server (SIGSTOP) under a camera with default settings, then resume it.

    Raises:
        RuntimeError: The RTSP server is not available, or the camera never came online.
    """
    server = _server({"/cam": _clip(directory)})
    camera = CameraConfig(id="bench", url=server.url("/cam"))
    source = VideoSource(camera)
    try:
        source.start()
        if _wait(lambda: source.health().state == CameraState.ONLINE, deadline_s) is None:
            raise RuntimeError(f"the camera never came online: {source.health().last_error}")
        server.pause()
        stalled_after_s = _wait(lambda: source.health().state == CameraState.STALLED, deadline_s)
        server.resume()
        online_after_s = _wait(lambda: source.health().state == CameraState.ONLINE, deadline_s)
    finally:
        source.stop()
        server.stop()
    return StallReport(camera.stall_timeout_s, stalled_after_s, online_after_s)


def run_dead_camera_bench(
    *,
    cameras: int = 8,
    window_s: float = 5.0,
    directory: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> DeadCameraReport:
    """Read ``cameras`` streams, kill one server, and compare the others' delivered rates before and after.

    Raises:
        RuntimeError: The RTSP server is not available, or the cameras never all came online.
    """
    clip = _clip(directory)
    healthy = _server({f"/cam{i}": clip for i in range(1, cameras)})
    doomed = _server({"/dead": clip})
    configs = [
        CameraConfig(id=f"cam{i}", url=healthy.url(f"/cam{i}"), analysis_fps=5) for i in range(1, cameras)
    ]
    camera_set = CameraSet()
    camera_set.apply([*configs, CameraConfig(id="dead", url=doomed.url("/dead"), analysis_fps=5)])
    try:
        camera_set.start()
        if _wait(lambda: all(h.state == CameraState.ONLINE for h in camera_set.health()), 60) is None:
            raise RuntimeError(f"not every camera came online: {camera_set.health()}")
        fps_before = _delivered_fps(camera_set, window_s)
        doomed.kill()
        if progress is not None:
            progress(f"killed the server of 'dead'; measuring the other {cameras - 1} for {window_s:g} s")
        fps_after = _delivered_fps(camera_set, window_s)
    finally:
        camera_set.stop()
        healthy.stop()
        doomed.stop()
    del fps_before["dead"], fps_after["dead"]
    return DeadCameraReport(cameras, window_s, fps_before, fps_after)


def _delivered_fps(camera_set: CameraSet, window_s: float) -> dict[str, float]:
    """Frames each camera delivered per second over the next ``window_s``."""
    before = {h.camera_id: h.frames_delivered for h in camera_set.health()}
    started = time.monotonic()
    time.sleep(window_s)
    elapsed = time.monotonic() - started
    return {h.camera_id: (h.frames_delivered - before[h.camera_id]) / elapsed for h in camera_set.health()}


def format_reconnect_report(
    rounds: list[ReconnectRound], dead: DeadCameraReport | None = None, stall: StallReport | None = None
) -> str:
    """The reconnect rounds (and the hung and dead camera measurements) as plain-text tables."""
    lines = ["round  server down  opens while down  server up -> camera online"]
    for index, r in enumerate(rounds, 1):
        shown = "not back" if r.online_after_s is None else f"{r.online_after_s:.2f} s"
        lines.append(f"{index:>5}  {r.down_s:>9.1f} s  {r.opens_while_down:>16}  {shown:>26}")
    back = [r.online_after_s for r in rounds if r.online_after_s is not None]
    if back:
        lines.append(
            f"camera online {statistics.median(back):.2f} s (median), {max(back):.2f} s (max) after its server "
            f"answered again; {len(rounds) - len(back)} round(s) not back"
        )
    if stall is not None:
        stalled = "never" if stall.stalled_after_s is None else f"{stall.stalled_after_s:.2f} s"
        resumed = "never" if stall.online_after_s is None else f"{stall.online_after_s:.2f} s"
        lines.append("")
        lines.append(
            f"hung server: camera reported stalled {stalled} after it hung (stall_timeout_s "
            f"{stall.stall_timeout_s:g}), online {resumed} after it resumed"
        )
    if dead is not None:
        lines.append("")
        lines.append(
            f"one dead camera among {dead.cameras}: healthy cameras' delivered fps over {dead.window_s:g} s"
        )
        lines.append("camera   before   after")
        for camera_id in sorted(dead.fps_before):
            lines.append(
                f"{camera_id:<7} {dead.fps_before[camera_id]:>7.2f} {dead.fps_after[camera_id]:>7.2f}"
            )
        lines.append(f"worst healthy camera kept {dead.worst_ratio:.0%} of its rate")
    return "\n".join(lines)
