"""The decode benchmark measures every method on the same generated clip and prints ratios; the
reconnect benchmark times a real server outage and a dead camera's effect on the others."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from anjian.cameras.bench import format_decode_table, run_decode_bench
from anjian.cameras.reconnect_bench import (
    DeadCameraReport,
    ReconnectRound,
    format_reconnect_report,
    run_dead_camera_bench,
    run_reconnect_bench,
    run_stall_bench,
)
from tests.support.rtsp import rtsp_server_available


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs the ffmpeg CLI (Debian package ffmpeg)")
def test_decode_bench_runs_every_method_on_the_same_clip(tmp_path: Path) -> None:
    rows = run_decode_bench(tmp_path, resolutions=["360p"], seconds=2, fps=10, analysis_fps=5)
    by_method = {row.method: row for row in rows}
    assert list(by_method) == ["ffmpeg -f null", "anjian", "anjian keyframes", "cv2.VideoCapture"]
    assert by_method["anjian"].frames_decoded == 20 and by_method["anjian"].frames_out == 10
    assert by_method["anjian keyframes"].frames_decoded == 1  # a keyframe every 2 s
    assert by_method["cv2.VideoCapture"].frames_out == 20
    assert all(row.ffmpeg_cpu_s == by_method["ffmpeg -f null"].cpu_s for row in rows)
    table = format_decode_table(rows, analysis_fps=5)
    assert "vs ffmpeg" in table and "1.00x" in table and table.count("\n360p") == 4


def test_decode_bench_rejects_unknown_resolutions(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown resolutions"):
        run_decode_bench(tmp_path, resolutions=["4k"])


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
