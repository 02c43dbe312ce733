"""The one box-maths module: IoU of xyxy boxes, pairwise and of two boxes, with the edge cases as a table."""

from __future__ import annotations

import numpy as np
import pytest

from anjian.datasets.boxes import iou_cxcywh
from anjian.models.boxes import box_ios_batch, box_iou, box_iou_batch

_CASES = [
    ([0, 0, 2, 2], [0, 0, 2, 2], 1.0),
    ([0, 0, 2, 2], [0, 0, 2, 1], 0.5),
    ([0, 0, 2, 2], [1, 1, 3, 3], 1 / 7),
    ([0, 0, 2, 2], [2, 0, 4, 2], 0.0),  # touching edges share no area
    ([0, 0, 2, 2], [5, 5, 6, 6], 0.0),
    ([0, 0, 0, 0], [0, 0, 0, 0], 0.0),  # no area at all: 0, not NaN
    ([100, 100, 200, 200], [150, 150, 250, 250], 2500 / 17500),
]
_IDS = ["same", "half", "corner", "touching", "apart", "degenerate", "pixels"]


@pytest.mark.parametrize(("a", "b", "expected"), _CASES, ids=_IDS)
def test_box_iou_of_two_boxes(a: list[float], b: list[float], expected: float) -> None:
    assert box_iou(np.array(a), np.array(b)) == pytest.approx(expected, abs=1e-6)
    assert box_iou(np.array(b), np.array(a)) == pytest.approx(expected, abs=1e-6)


def test_box_iou_batch_is_every_pair_of_the_two_sets() -> None:
    a = np.array([case[0] for case in _CASES], np.float32)
    b = np.array([case[1] for case in _CASES], np.float32)
    matrix = box_iou_batch(a, b)
    assert matrix.shape == (len(a), len(b)) and matrix.dtype == np.float64
    expected = np.array([[box_iou(x, y) for y in b] for x in a])
    np.testing.assert_allclose(matrix, expected, atol=1e-6)
    np.testing.assert_allclose(np.diag(matrix), [case[2] for case in _CASES], atol=1e-6)


@pytest.mark.parametrize(("n", "m"), [(0, 3), (3, 0), (0, 0)], ids=["no-a", "no-b", "neither"])
def test_box_iou_batch_of_an_empty_set_is_an_empty_matrix(n: int, m: int) -> None:
    a = np.tile([0.0, 0.0, 1.0, 1.0], (n, 1))
    b = np.tile([0.0, 0.0, 1.0, 1.0], (m, 1))
    assert box_iou_batch(a, b).shape == (n, m)
    assert box_iou_batch(np.zeros(0), b).shape == (0, m)  # a bare empty array counts as no boxes


def test_box_iou_batch_names_the_argument_of_the_wrong_shape() -> None:
    with pytest.raises(ValueError, match=r"b_xyxy: expected an \(n, 4\) array .* got shape \(2, 3\)"):
        box_iou_batch(np.zeros((1, 4)), np.zeros((2, 3)))


def test_normalised_cxcywh_iou_agrees_with_the_xyxy_one() -> None:
    xyxy = np.array([[0.1, 0.1, 0.5, 0.5], [0.3, 0.2, 0.9, 0.6], [0.0, 0.0, 1.0, 1.0]])
    cxcywh = np.concatenate([(xyxy[:, :2] + xyxy[:, 2:]) / 2, xyxy[:, 2:] - xyxy[:, :2]], axis=1)
    np.testing.assert_allclose(iou_cxcywh(cxcywh, cxcywh), box_iou_batch(xyxy, xyxy), atol=1e-6)


def test_box_ios_batch_is_the_intersection_over_the_smaller_box() -> None:
    a = np.array([[0, 0, 1, 1], [0, 0, 2, 2], [0, 0, 0, 0]], np.float32)
    b = np.array([[0, 0, 4, 4], [1, 1, 3, 3], [5, 5, 6, 6]], np.float32)
    np.testing.assert_allclose(
        box_ios_batch(a, b),
        [[1.0, 0.0, 0.0], [1.0, 0.25, 0.0], [0.0, 0.0, 0.0]],  # inside; a corner of two 2x2 boxes; no area: 0
        atol=1e-6,
    )
