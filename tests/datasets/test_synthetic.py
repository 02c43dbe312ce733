"""Tests of the procedural workshop footage: determinism, labels, YOLO layout, demo clip."""

from __future__ import annotations

import math
from pathlib import Path

import av
import numpy as np
import pytest
import yaml

from anjian.datasets.synthetic import (
    CLASS_NAMES,
    SceneSpec,
    demo_scene_spec,
    random_scene_spec,
    render_scene,
    write_demo_video,
    write_training_set,
)
from anjian.datasets.synthetic.specs import FlameSpec

SMALL_WH = (160, 96)


def _spec(seed: int, **kwargs: object) -> SceneSpec:
    return random_scene_spec(np.random.default_rng(seed), SMALL_WH, **kwargs)  # type: ignore[arg-type]


def test_random_scene_spec_is_deterministic_for_a_seed() -> None:
    assert _spec(3) == _spec(3)
    assert _spec(3) != _spec(4)


def test_render_scene_is_deterministic_for_spec_and_time() -> None:
    spec = _spec(5, n_flames=2)
    image_a, boxes_a = render_scene(spec, 1.25)
    image_b, boxes_b = render_scene(spec, 1.25)
    assert np.array_equal(image_a, image_b)
    assert boxes_a == boxes_b


def test_flames_flicker_from_frame_to_frame() -> None:
    spec = _spec(5, n_flames=1, smoke_probability=0.0)
    (image_a, boxes_a), (image_b, boxes_b) = render_scene(spec, 1.0), render_scene(spec, 1.1)
    [box_a] = [b for b in boxes_a if b.class_name == "fire"]
    [box_b] = [b for b in boxes_b if b.class_name == "fire"]
    assert not np.array_equal(image_a, image_b)
    assert box_a.xyxy != box_b.xyxy


def test_render_scene_returns_uint8_bgr_of_the_spec_size() -> None:
    image, _ = render_scene(_spec(1), 0.0)
    assert image.shape == (SMALL_WH[1], SMALL_WH[0], 3)
    assert image.dtype == np.uint8


@pytest.mark.parametrize("seed", range(12), ids=lambda s: f"seed{s}")
def test_boxes_lie_inside_the_image(seed: int) -> None:
    spec = _spec(seed, n_flames=2, smoke_probability=1.0)
    _, boxes = render_scene(spec, 2.0 + seed / 7)
    w, h = SMALL_WH
    assert boxes, "two burning flames must yield boxes"
    for box in boxes:
        x1, y1, x2, y2 = box.xyxy
        assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h, box
        assert box.class_name in CLASS_NAMES


def test_flame_at_the_border_is_clipped_to_the_image() -> None:
    flame = FlameSpec(base_xy=(2.0, 95.0), height_px=60.0, width_px=30.0, has_smoke=True)
    spec = SceneSpec(seed=0, size_wh=SMALL_WH, flames=(flame,))
    _, boxes = render_scene(spec, 3.0)
    assert [b.class_name for b in boxes] == ["smoke", "fire"]
    for box in boxes:
        x1, y1, x2, y2 = box.xyxy
        assert x1 == 0 and 0 <= y1 < y2 <= SMALL_WH[1] and x2 <= SMALL_WH[0]


def test_scene_without_flames_has_no_fire_or_smoke_boxes() -> None:
    _, boxes = render_scene(_spec(2, n_flames=0), 4.0)
    assert not {"fire", "smoke"} & {b.class_name for b in boxes}


@pytest.mark.parametrize(
    ("t_s", "has_fire"),
    [(0.0, False), (4.9, False), (5.0, True), (8.0, True), (13.9, True), (14.0, False), (17.9, False)],
    ids=["start", "just-before", "ignition", "burning", "last-frame", "out", "end"],
)
def test_demo_scene_labels_fire_only_while_the_flame_burns(t_s: float, has_fire: bool) -> None:
    spec = demo_scene_spec(SMALL_WH, seconds=19.0)
    _, boxes = render_scene(spec, t_s)
    assert ("fire" in {b.class_name for b in boxes}) is has_fire


def test_flame_is_active_only_inside_its_window() -> None:
    flame = FlameSpec(base_xy=(10, 10), height_px=5, width_px=3, appear_s=2.0, disappear_s=4.0)
    assert [flame.is_active(t) for t in (1.99, 2.0, 3.99, 4.0)] == [False, True, True, False]
    assert FlameSpec(base_xy=(10, 10), height_px=5, width_px=3).is_active(1e9)
    assert math.isinf(FlameSpec(base_xy=(0, 0), height_px=1, width_px=1).disappear_s)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: SceneSpec(seed=0, size_wh=(8, 8)), "size_wh"),
        (lambda: demo_scene_spec(SMALL_WH, seconds=5.0), "seconds"),
        (lambda: _spec(0, n_flames=-1), "n_flames"),
        (lambda: _spec(0, smoke_probability=1.5), "smoke_probability"),
    ],
    ids=["tiny-image", "short-demo", "negative-flames", "bad-probability"],
)
def test_invalid_arguments_raise_value_error(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()  # type: ignore[operator]


def _read_labels(label_dir: Path) -> list[list[str]]:
    return [row for f in sorted(label_dir.glob("*.txt")) for row in _read_labels_of(f)]


def _read_labels_of(label_file: Path) -> list[list[str]]:
    return [line.split() for line in label_file.read_text().splitlines()]


def test_write_training_set_makes_a_valid_yolo_layout(tmp_path: Path) -> None:
    data_yaml = write_training_set(tmp_path / "set", 24, SMALL_WH, seed=1, val_fraction=0.25)

    data = yaml.safe_load(data_yaml.read_text())
    assert data["names"] == dict(enumerate(CLASS_NAMES))
    assert data["nc"] == len(CLASS_NAMES) == 6
    assert Path(data["path"]) == (tmp_path / "set").resolve()
    root = Path(data["path"])
    counts = {}
    for split in ("train", "val"):
        images = sorted(p.stem for p in (root / data[split]).glob("*.jpg"))
        labels = sorted(p.stem for p in (root / "labels" / split).glob("*.txt"))
        assert images == labels
        counts[split] = len(images)
    assert counts == {"train": 18, "val": 6}
    rows = _read_labels(root / "labels" / "train") + _read_labels(root / "labels" / "val")
    assert rows, "some images must hold flames"
    for row in rows:
        assert len(row) == 5
        assert int(row[0]) in range(len(CLASS_NAMES))
        cx, cy, bw, bh = map(float, row[1:])
        assert all(0.0 <= v <= 1.0 for v in (cx, cy, bw, bh))
        assert bw > 0 and bh > 0
    fire_id = CLASS_NAMES.index("fire")
    without_fire = [
        f
        for f in (root / "labels" / "train").glob("*.txt")
        if all(int(r[0]) != fire_id for r in _read_labels_of(f))
    ]
    assert without_fire, "the set must contain fire negatives (images without flames)"
    assert {CLASS_NAMES[int(r[0])] for r in rows} >= {"fire", "person"}, "flames and people are labelled"


def test_write_training_set_is_deterministic(tmp_path: Path) -> None:
    for name in ("a", "b"):
        write_training_set(tmp_path / name, 6, SMALL_WH, seed=9, val_fraction=0.2)
    for split in ("train", "val"):
        assert _read_labels(tmp_path / "a" / "labels" / split) == _read_labels(
            tmp_path / "b" / "labels" / split
        )


def test_write_training_set_rejects_too_few_images(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="n_images"):
        write_training_set(tmp_path, 1, SMALL_WH)


def test_demo_video_decodes_to_the_expected_frames(tmp_path: Path) -> None:
    path = write_demo_video(tmp_path / "clip" / "demo.mp4", seconds=12.0, fps=5, size_wh=SMALL_WH)

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        frames = [f.to_ndarray(format="bgr24") for f in container.decode(stream)]
    assert len(frames) == 60
    assert {f.shape for f in frames} == {(SMALL_WH[1], SMALL_WH[0], 3)}
    assert stream.codec_context.pix_fmt == "yuv420p"


def test_demo_video_rejects_odd_sizes(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="even"):
        write_demo_video(tmp_path / "x.mp4", seconds=12.0, fps=5, size_wh=(161, 96))
