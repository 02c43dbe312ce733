"""Sampling a stream down to the analysis rate works on stream time."""

from __future__ import annotations

import pytest

from anjian.cameras.decode import FrameSampler


@pytest.mark.parametrize(
    ("stream_fps", "analysis_fps", "expected"),
    [(25.0, 5.0, 50), (30.0, 2.0, 20), (10.0, 10.0, 100), (10.0, 30.0, 100)],
    ids=["25-to-5", "30-to-2", "same-rate", "analysis-above-stream"],
)
def test_sampler_keeps_the_analysis_rate(stream_fps: float, analysis_fps: float, expected: int) -> None:
    sampler = FrameSampler(analysis_fps)
    kept = sum(sampler.should_keep(i / stream_fps) for i in range(int(10 * stream_fps)))
    assert kept == expected


def test_sampler_resyncs_after_a_gap_and_after_time_goes_back() -> None:
    sampler = FrameSampler(1.0)
    assert sampler.should_keep(0.0)
    assert not sampler.should_keep(0.5)
    assert sampler.should_keep(100.0)  # a gap: keep at once, no burst afterwards
    assert not sampler.should_keep(100.5)
    assert sampler.should_keep(3.0)  # timeline restarted (reconnect): keep at once


def test_sampler_rejects_non_positive_rate() -> None:
    with pytest.raises(ValueError, match="fps must be > 0"):
        FrameSampler(0)
