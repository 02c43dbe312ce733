"""The crosseval's image-level figures: found and false alarms at the operating score, and the image AP."""

from __future__ import annotations

import math

import numpy as np

from anjian.training.anjian_n_crosseval import _ImageHits
from anjian.training.evaluate import ImageMatches

FIRE = 2


def _image(name: str, *, shows_fire: bool, top: float | None) -> ImageMatches:
    scores = np.array([] if top is None else [top, top / 2])
    return ImageMatches(
        image=name,
        source="fire_smoke_cctv",
        size_wh=(640, 480),
        scored_classes=(FIRE,),
        gt_xyxy=np.array([[10.0, 10.0, 300.0, 300.0]]) if shows_fire else np.zeros((0, 4)),
        gt_class=np.array([FIRE] if shows_fire else [], np.int64),
        pred_xyxy=np.tile(
            [400.0, 10.0, 600.0, 200.0], (len(scores), 1)
        ),  # never on the fire: AP50 sees no hit
        pred_class=np.full(len(scores), FIRE, np.int64),
        pred_confidence=scores,
        tp=np.zeros((len(scores), 10), bool),
    )


def test_the_image_ap_ranks_frames_by_their_top_score_whatever_the_boxes() -> None:
    hits = _ImageHits({FIRE: "fire"}, score=0.35)
    for matches in (
        _image("a", shows_fire=True, top=0.9),  # seen, its box drawn elsewhere
        _image("b", shows_fire=False, top=0.8),  # a false alarm ranked second
        _image("c", shows_fire=True, top=0.2),  # seen below the operating score
        _image("d", shows_fire=True, top=None),  # never seen
        _image("e", shows_fire=False, top=None),
    ):
        hits(matches)

    row = hits.finish()["fire"]

    assert (row["with"], row["found"], row["without"], row["false_alarms"]) == (3, 1, 2, 1)
    # ranked: a (fire), b (none), c (fire); 3 images show fire. Precision 1 up to recall 1/3, then 2/3 up to 2/3.
    expected = (34 * 1.0 + 33 * (2 / 3)) / 101
    assert math.isclose(row["image_ap"], expected, rel_tol=1e-6)


def test_no_image_showing_the_class_gives_no_image_ap() -> None:
    hits = _ImageHits({FIRE: "fire"}, score=0.35)
    hits(_image("b", shows_fire=False, top=0.8))
    row = hits.finish()["fire"]
    assert row["with"] == 0 and row["false_alarms"] == 1 and math.isnan(row["image_ap"])
