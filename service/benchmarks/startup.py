"""Measure how long anjian takes to start: ``anjian --help``, and a service until it answers.

Each figure is a fresh process timed from spawn:

* ``anjian --help``: the CLI's import cost, what every command pays first (its CPU
  seconds too, the figure a loaded machine disturbs least);
* ``anjian serve``: until ``/readyz`` answers 200 (database migrated, webhooks sent),
  on a new database (migrations run) and again on the existing one;
* ``anjian run`` with one camera (a generated clip) and the demo model, on an existing
  database: until ``/readyz`` answers 200, and until ``/cameras`` shows the camera
  online (the model and the pipeline loaded).

``anjian bench startup`` prints the medians and the slowest of several runs.
"""

from __future__ import annotations

import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import yaml

from anjian.service.benchmarks.clips import write_synthetic_clip
from anjian.service.benchmarks.ports import free_port
from anjian.service.benchmarks.processes import process_cpu_s
from anjian.service.benchmarks.service_process import create_token

__all__ = ["StartupFigure", "format_startup_report", "run_startup_bench"]

_POLL_S = 0.02


@dataclass(frozen=True, slots=True)
class StartupFigure:
    """Seconds to one milestone over several runs.

    Attributes:
        what: The command and milestone, e.g. ``"anjian serve: /readyz 200 (new database)"``.
        seconds: One figure per run; ``None`` where the milestone was not reached in time.
    """

    what: str
    seconds: list[float | None]

    @property
    def median_s(self) -> float | None:
        """The median of the runs that reached the milestone."""
        reached = [s for s in self.seconds if s is not None]
        return statistics.median(reached) if reached else None


def _anjian_command() -> list[str]:
    """The ``anjian`` console script next to this interpreter, else ``python -m anjian.service``."""
    script = Path(sys.executable).with_name("anjian")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "anjian.service"]


def _time_help() -> tuple[float, float]:
    """Wall and CPU seconds (user + system) of one ``anjian --help``; CPU time barely moves with load."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run([*_anjian_command(), "--help"], capture_output=True, check=True, timeout=120)
    wall_s = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall_s, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _site(folder: Path, *, with_camera: bool) -> Path:
    """A site YAML storing in ``folder``; with a looping file camera and the demo model when asked."""
    cameras = []
    if with_camera:
        clip = folder.parent / "startup-clip.mp4"
        if not clip.is_file():
            write_synthetic_clip(clip, seconds=4.0, fps=10, keyframe_interval_s=2.0)
        cameras = [{"id": "cam-1", "url": str(clip), "loop": True, "analysis_fps": 2}]
    config = {
        "site": {"id": "bench", "workshops": [{"id": "ws", "cameras": cameras}]},
        "model": {"path": "builtin:anjian-demo"},
        "storage": {"dir": str(folder / "data")},
    }
    path = folder / "site.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def _time_service(
    command: str, site: Path, *, timeout_s: float, camera_token: str | None = None
) -> tuple[float | None, float | None, float | None]:
    """Spawn ``anjian COMMAND --config SITE``; seconds until ``/readyz`` is 200 (and the CPU
    seconds it had used by then) and, with ``camera_token``, until ``/cameras`` shows a camera online.

    Raises:
        RuntimeError: The process exited before answering (its last log lines are in the message).
    """
    port = free_port()
    env = {**os.environ, "ANJIAN_PORT": str(port), "YOLO_OFFLINE": "1"}
    base = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {camera_token}"} if camera_token else {}
    log = site.with_name(f"{command}.log")
    started = time.perf_counter()
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            [*_anjian_command(), command, "--config", str(site), "--log-level", "WARNING"],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=env,
        )
    ready_s: float | None = None
    ready_cpu_s: float | None = None
    online_s: float | None = None
    try:
        with httpx.Client(timeout=2.0) as client:
            while time.perf_counter() - started < timeout_s and process.poll() is None:
                try:
                    if ready_s is None and client.get(f"{base}/readyz").status_code == 200:
                        ready_s = time.perf_counter() - started
                        ready_cpu_s = process_cpu_s(process.pid)
                    if camera_token and ready_s is not None and online_s is None:
                        cameras = client.get(f"{base}/cameras", headers=headers)
                        if cameras.status_code == 200 and any(c["state"] == "online" for c in cameras.json()):
                            online_s = time.perf_counter() - started
                except httpx.HTTPError:
                    pass
                if ready_s is not None and (online_s is not None or not camera_token):
                    break
                time.sleep(_POLL_S)
    finally:
        exit_code = process.poll()
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if exit_code is not None:
        tail = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-5:]
        raise RuntimeError(f"anjian {command} exited with status {exit_code}: " + " / ".join(tail))
    return ready_s, ready_cpu_s, online_s


def run_startup_bench(
    *, runs: int = 3, timeout_s: float = 60.0, progress: Callable[[str], None] | None = None
) -> list[StartupFigure]:
    """Time ``anjian --help``, ``anjian serve`` and ``anjian run`` from spawn to answering, ``runs`` times each.

    Args:
        runs: Fresh processes per figure.
        timeout_s: Give up on one start after this long (that run counts as ``None``).
        progress: Called with a line per measured run.

    Returns:
        The figures, in the order they are printed.

    Raises:
        RuntimeError: A service exited instead of answering.
    """
    helps: list[float | None] = []
    helps_cpu: list[float | None] = []
    serve_new: list[float | None] = []
    serve_again: list[float | None] = []
    serve_again_cpu: list[float | None] = []
    run_ready: list[float | None] = []
    run_online: list[float | None] = []
    with tempfile.TemporaryDirectory(prefix="anjian-startup-") as tmp:
        for index in range(runs):
            wall_s, cpu_s = _time_help()
            helps.append(wall_s)
            helps_cpu.append(cpu_s)
            folder = Path(tmp) / f"serve-{index}"
            folder.mkdir()
            site = _site(folder, with_camera=False)
            serve_new.append(_time_service("serve", site, timeout_s=timeout_s)[0])
            ready, ready_cpu, _ = _time_service("serve", site, timeout_s=timeout_s)
            serve_again.append(ready)
            serve_again_cpu.append(ready_cpu)
            folder = Path(tmp) / f"run-{index}"
            folder.mkdir()
            site = _site(folder, with_camera=True)
            ready, _, online = _time_service(
                "run", site, timeout_s=timeout_s, camera_token=create_token(site, "viewer")
            )
            run_ready.append(ready)
            run_online.append(online)
            if progress is not None:
                progress(
                    f"run {index + 1}: --help {wall_s:.2f} s ({cpu_s:.2f} s CPU), serve {_shown(serve_new[-1])} / "
                    f"{_shown(serve_again[-1])}, run {_shown(ready)} (camera online {_shown(online)})"
                )
    return [
        StartupFigure("anjian --help", helps),
        StartupFigure("anjian --help (CPU seconds)", helps_cpu),
        StartupFigure("anjian serve: /readyz 200, new database", serve_new),
        StartupFigure("anjian serve: /readyz 200, existing database", serve_again),
        StartupFigure("anjian serve: CPU seconds used by then", serve_again_cpu),
        StartupFigure("anjian run (1 camera, demo model): /readyz 200, existing database", run_ready),
        StartupFigure("anjian run (1 camera, demo model): camera online", run_online),
    ]


def _shown(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.2f} s"


def format_startup_report(figures: list[StartupFigure]) -> str:
    """The figures as a table: median and slowest seconds from spawn, and runs that never got there."""
    width = max(len(f.what) for f in figures)
    lines = [f"{'from spawn to':<{width}}  median    slowest  missed"]
    for figure in figures:
        reached = [s for s in figure.seconds if s is not None]
        slowest = _shown(max(reached)) if reached else "-"
        missed = len(figure.seconds) - len(reached)
        lines.append(f"{figure.what:<{width}}  {_shown(figure.median_s):>8}  {slowest:>8}  {missed:>6}")
    return "\n".join(lines)
