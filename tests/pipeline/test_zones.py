"""Zones: membership by anchor point, coverage, masks, exclusions."""

from __future__ import annotations

import numpy as np
import pytest

from anjian.pipeline.config import ZoneConfig
from anjian.pipeline.zones import Zone, ZoneSet, anchor_points

SQUARE = ZoneConfig(id="desk", kind="post", polygon=[(0.5, 0.5), (1.0, 0.5), (1.0, 1.0), (0.5, 1.0)])


@pytest.mark.parametrize(
    ("point", "inside"),
    [((0.75, 0.75), True), ((0.5, 0.5), True), ((0.25, 0.75), False), ((0.75, 0.49), False)],
    ids=["centre", "corner", "left", "above"],
)
def test_contains(point: tuple[float, float], inside: bool) -> None:
    assert Zone(SQUARE).contains(np.array([point])).tolist() == [inside]


def test_person_is_in_the_zone_by_its_feet_and_other_objects_by_their_centre() -> None:
    zones = ZoneSet([SQUARE], {"person": "bottom_center"})
    box = np.array([[120, 10, 160, 90]], np.float32)  # top above the zone, feet inside (200 x 100 frame)
    person = zones.anchors_norm(box, ["person"], (200, 100))
    pallet = zones.anchors_norm(box, ["pallet"], (200, 100))
    assert person.tolist() == [[0.7, 0.9]] and pallet.tolist() == [[0.7, 0.5]]
    assert anchor_points(box, ["top_center"]).tolist() == [[140.0, 10.0]]


def test_coverage_and_mask() -> None:
    zone = Zone(SQUARE)
    assert zone.coverage(np.zeros((0, 4))) == 0.0
    assert zone.coverage(np.array([[0.0, 0.0, 1.0, 1.0]])) == pytest.approx(1.0)
    assert zone.coverage(np.array([[0.5, 0.5, 0.75, 1.0]])) == pytest.approx(0.5, abs=0.05)
    mask = zone.mask((20, 10))
    assert mask.shape == (10, 20) and mask[9, 19] and not mask[0, 0]


def test_exclusion_zones_apply_to_their_behaviours() -> None:
    bed = ZoneConfig(
        id="bed", kind="exclusion", excludes=["fallen_person"], polygon=[(0, 0), (0.5, 0), (0.5, 1)]
    )
    furnace = ZoneConfig(id="furnace", kind="exclusion", polygon=[(0.5, 0), (1, 0), (1, 1)])
    zones = ZoneSet([bed, furnace])
    points = np.array([[0.45, 0.1], [0.9, 0.1]])
    assert zones.excluded(points, "fallen_person").tolist() == [True, True]
    assert zones.excluded(points, "open_flame").tolist() == [False, True]


@pytest.mark.parametrize(
    ("zone", "message"),
    [
        ({"id": "a", "polygon": [(0, 0), (1, 0)]}, "at least 3 points"),
        ({"id": "a", "polygon": [(0, 0), (1, 0), (1, 1.5)]}, "normalised"),
        (
            {"id": "a", "kind": "post", "excludes": ["smoking"], "polygon": [(0, 0), (1, 0), (1, 1)]},
            "exclusion",
        ),
    ],
    ids=["two-points", "outside-unit-square", "excludes-on-post"],
)
def test_invalid_zones_are_rejected(zone: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ZoneConfig(**zone)


@pytest.mark.parametrize(
    ("polygon", "message"),
    [
        ([(0.6, 0.5), (1.0, 0.5), (0.6, 1.0), (1.0, 1.0)], r"zone 'desk': its edges cross .*not row by row"),
        ([(0.5, 0.5), (0.9, 0.9), (0.9, 0.5), (0.5, 0.9)], r"zone 'desk': its edges cross"),
        ([(0, 0), (1, 0), (1, 1), (0.5, 0), (0, 1)], r"zone 'desk': its edges cross"),  # a corner on an edge
        ([(0.5, 0.5), (0.5, 0.5), (0.6, 0.6)], r"zone 'desk': it encloses no area"),
        ([(0.1, 0.1), (0.5, 0.5), (0.9, 0.9)], r"zone 'desk': it encloses no area"),
    ],
    ids=["corners-row-by-row", "bow-tie", "touching-itself", "repeated-point", "on-one-line"],
)
def test_self_crossing_or_flat_polygons_are_rejected_naming_the_zone(
    polygon: list[tuple[float, float]], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        ZoneConfig(id="desk", kind="post", polygon=polygon)


@pytest.mark.parametrize(
    "polygon",
    [
        [(0.6, 0.5), (1.0, 0.5), (1.0, 1.0), (0.6, 1.0)],
        [(0.6, 1.0), (1.0, 1.0), (1.0, 0.5), (0.6, 0.5)],
        [(0.6, 0.5), (1.0, 0.5), (1.0, 1.0), (0.6, 1.0), (0.6, 0.5)],
        [(0.6, 0.5), (0.8, 0.5), (1.0, 0.5), (1.0, 1.0), (0.6, 1.0)],
        [(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.5, 0.2), (0.0, 1.0)],
    ],
    ids=["clockwise", "anticlockwise", "closed-by-repeating-the-first", "point-mid-edge", "concave"],
)
def test_polygons_listed_around_their_edge_are_accepted(polygon: list[tuple[float, float]]) -> None:
    assert ZoneConfig(id="desk", kind="post", polygon=polygon).polygon == polygon
