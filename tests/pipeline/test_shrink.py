"""Shrinking frames for evidence and the live view: exact sizes, averaging kept (no aliasing)."""

from __future__ import annotations

import numpy as np
import pytest

from anjian.pipeline.shrink import shrink


def _checkerboard(h: int, w: int) -> np.ndarray:
    """One-pixel black and white checks: the pattern a point-sampling resize turns into stripes."""
    grid = ((np.indices((h, w)).sum(axis=0) % 2) * 255).astype(np.uint8)
    return np.dstack([grid] * 3)


@pytest.mark.parametrize(
    ("size_wh", "target_wh", "max_std"),
    [
        ((1920, 1080), (640, 360), 20),  # a linear resize alone: std 127 (all black or all white)
        ((1920, 1080), (700, 394), 20),  # a linear resize alone: std 42
        ((768, 432), (640, 360), 64),  # under 2x: one linear step, mild moire only
    ],
)
def test_fine_detail_averages_to_grey_at_the_exact_size(
    size_wh: tuple[int, int], target_wh: tuple[int, int], max_std: float
) -> None:
    small = shrink(_checkerboard(size_wh[1], size_wh[0]), target_wh)
    assert small.shape == (target_wh[1], target_wh[0], 3)
    assert abs(float(small.mean()) - 127.5) < 3
    assert float(small.std()) < max_std


def test_an_image_of_the_target_size_is_returned_as_it_is() -> None:
    image = _checkerboard(36, 64)
    assert shrink(image, (64, 36)) is image


def test_a_larger_target_is_reached_too() -> None:
    assert shrink(_checkerboard(36, 64), (128, 72)).shape == (72, 128, 3)
