"""The decode benchmark measures every method on the same generated clip and prints ratios."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from anjian.service.benchmarks.decode import format_decode_table, run_decode_bench


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
