"""The reconnect benchmark times a real server outage, a hung server and a dead camera's effect on the others."""

from __future__ import annotations

from pathlib import Path

import pytest

from anjian.service.benchmarks.reconnect import (
    DeadCameraReport,
    ReconnectRound,
    format_reconnect_report,
    run_dead_camera_bench,
    run_reconnect_bench,
    run_stall_bench,
)
from anjian.service.benchmarks.rtsp import rtsp_server_available


@pytest.mark.slow
def test_reconnect_bench_times_a_real_outage_and_a_dead_camera(tmp_path: Path) -> None:
    if not rtsp_server_available()[0]:
        pytest.skip(f"RTSP test server unavailable: {rtsp_server_available()[1]}")
    rounds = run_reconnect_bench(rounds=1, down_s=2, directory=tmp_path)
    stall = run_stall_bench(directory=tmp_path)
    dead = run_dead_camera_bench(cameras=3, window_s=2, directory=tmp_path)
    assert len(rounds) == 1 and rounds[0].online_after_s is not None and rounds[0].opens_while_down >= 1
    assert stall.stalled_after_s is not None and stall.online_after_s is not None
    assert sorted(dead.fps_before) == ["cam1", "cam2"] and dead.worst_ratio > 0
    report = format_reconnect_report(rounds, dead, stall)
    assert "server up -> camera online" in report and "one dead camera among 3" in report
    assert "hung server: camera reported stalled" in report


def test_reconnect_report_summarises_rounds_and_the_dead_camera() -> None:
    rounds = [ReconnectRound(20, 4, 2.5), ReconnectRound(20, 4, 3.5), ReconnectRound(20, 5, None)]
    dead = DeadCameraReport(3, 5.0, {"cam1": 5.0, "cam2": 5.0}, {"cam1": 5.0, "cam2": 4.0})
    report = format_reconnect_report(rounds, dead)
    assert "3.00 s (median), 3.50 s (max)" in report and "1 round(s) not back" in report
    assert "worst healthy camera kept 80% of its rate" in report
