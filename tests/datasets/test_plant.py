"""The demo plant's scripted scenes: each camera shows its behaviours at the scripted times, quiet at the loop seam."""

from __future__ import annotations

import pytest

from anjian.datasets.synthetic import PLANT_CAMERAS, PLANT_LOOP_S, plant_scene_spec, render_scene

SMALL_WH = (320, 180)


def _labels(camera_id: str, t_s: float) -> list[str]:
    _, boxes = render_scene(plant_scene_spec(camera_id, SMALL_WH), t_s)
    return sorted(box.class_name for box in boxes)


@pytest.mark.parametrize("camera", [c.camera_id for c in PLANT_CAMERAS])
def test_the_loop_seam_is_seamless(camera: str) -> None:
    """The first and last frame of a loop show the same quiet scene: no flame, cigarette, pallet or fall."""
    first, last = _labels(camera, 0.0), _labels(camera, PLANT_LOOP_S - 0.2)
    assert first == last
    assert not {"fire", "smoke", "cigarette", "fallen_person", "pallet"} & set(first)


@pytest.mark.parametrize(
    ("camera", "t_s", "present", "absent"),
    [
        ("polishing-1-cam-1", 30.0, {"cigarette", "person"}, {"fire"}),
        ("polishing-1-cam-1", 70.0, {"fire", "person"}, {"cigarette"}),
        ("polishing-1-cam-2", 80.0, {"pallet", "person"}, set()),
        ("polishing-1-cam-2", 130.0, {"person"}, {"pallet"}),
        ("refrigeration-1-cam-1", 20.0, {"person"}, set()),
        ("refrigeration-1-cam-1", 90.0, set(), {"person"}),
        ("refrigeration-1-cam-2", 150.0, {"fallen_person"}, {"person"}),
        ("refrigeration-1-cam-2", 100.0, set(), {"person", "fallen_person"}),
    ],
)
def test_each_camera_shows_its_script(camera: str, t_s: float, present: set[str], absent: set[str]) -> None:
    """At the scripted times the labels say what the README promises the operator will see."""
    labels = set(_labels(camera, t_s))
    assert present <= labels
    assert not absent & labels


def test_an_unknown_camera_is_named() -> None:
    with pytest.raises(KeyError, match="no demo camera 'cam-9'"):
        plant_scene_spec("cam-9")
