"""Group-aware splitting and per-class statistics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from anjian.datasets.labels import DetectionSet, LabelledImage, video_key
from anjian.datasets.split import split_by_group
from anjian.datasets.stats import class_stats
from anjian.datasets.yolo import load_yolo_set
from tests.support.real_data import copy_yolo_sample


def _augmented_set(groups: int, copies: int) -> DetectionSet:
    images = [
        LabelledImage(
            Path(f"/d/g{g}_jpg.rf.{c:04x}.jpg"), "train", np.array([[0, 0.5, 0.5, 0.1, 0.1]], np.float32), "d"
        )
        for g in range(groups)
        for c in range(copies)
    ]
    return DetectionSet(name="d", class_names=("x",), images=images)


def test_augmented_copies_never_straddle_splits() -> None:
    resplit = split_by_group(_augmented_set(60, 3), {"train": 0.8, "val": 0.2}, seed=1)

    splits_of = {}
    for item in resplit:
        splits_of.setdefault(item.group, set()).add(item.split)
    assert all(len(s) == 1 for s in splits_of.values())
    val_groups = sum(1 for s in splits_of.values() if s == {"val"})
    assert 4 <= val_groups <= 24  # 20 % of 60 groups, give or take chance


def test_split_is_stable_under_seed_and_when_images_are_added() -> None:
    small = split_by_group(_augmented_set(30, 1), {"train": 0.7, "val": 0.3}, seed=3)
    large = split_by_group(_augmented_set(60, 1), {"train": 0.7, "val": 0.3}, seed=3)
    other_seed = split_by_group(_augmented_set(30, 1), {"train": 0.7, "val": 0.3}, seed=4)

    assert [im.split for im in small] == [im.split for im in large][:30]
    assert [im.split for im in small] != [im.split for im in other_seed]


@pytest.mark.parametrize(
    "fractions",
    [{"train": 0.7, "val": 0.2}, {"train": 1.2, "val": -0.2}, {}],
    ids=["short", "negative", "empty"],
)
def test_split_rejects_fractions_that_do_not_sum_to_one(fractions: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="sum to 1"):
        split_by_group(_augmented_set(3, 1), fractions)


def test_real_fall_hospital_train_resplit_keeps_groups_together(tmp_path: Path) -> None:
    dataset = load_yolo_set(copy_yolo_sample("fall_hospital", tmp_path / "fh", per_split=30))
    train_only = DetectionSet("fh", dataset.class_names, dataset.in_split("train"))
    resplit = split_by_group(train_only, {"train": 0.5, "val": 0.5})
    groups: dict[str, set[str]] = {}
    for item in resplit:
        groups.setdefault(item.group, set()).add(item.split)
    assert max(len(s) for s in groups.values()) == 1
    assert len(groups) < len(resplit)  # the sample really holds augmented copies


def test_class_stats_count_boxes_images_and_backgrounds() -> None:
    rows = np.array([[0, 0.5, 0.5, 0.5, 0.5], [0, 0.2, 0.2, 0.01, 0.01], [1, 0.5, 0.5, 0.2, 0.2]], np.float32)
    images = [
        LabelledImage(Path("/a.jpg"), "train", rows),
        LabelledImage(Path("/b.jpg"), "train", np.zeros((0, 5), np.float32)),
        LabelledImage(Path("/c.jpg"), "val", rows[2:]),
    ]
    stats, totals = class_stats(DetectionSet("s", ("person", "fire"), images))

    by_key = {(s.split, s.class_name): s for s in stats}
    assert totals == {"train": (2, 1), "val": (1, 0)}
    assert (by_key["train", "person"].boxes, by_key["train", "person"].images) == (2, 1)
    assert by_key["train", "person"].small_share == pytest.approx(0.5)
    assert by_key["val", "person"].boxes == 0 and by_key["val", "fire"].median_side == pytest.approx(0.2)


@pytest.mark.parametrize(
    ("name", "video"),
    [
        ("fire2_mp4-79_jpg.rf.82c481ab0e5aff3e.jpg", "fire2_mp4"),
        ("pexels-alan-w-8365993_mp4-12_jpg.rf.1f.jpg", "pexels-alan-w-8365993_mp4"),
        ("yard_AVI-3_png.rf.aa.jpg", "yard_AVI"),
        ("img_727_jpg.rf.72947ba6.jpg", "img_727_jpg"),  # a still: its augmented-copy group
        ("mp4-1_jpg.jpg", "mp4-1_jpg"),  # no video name before the extension
    ],
)
def test_video_key_names_the_video_a_frame_was_sampled_from(name: str, video: str) -> None:
    assert video_key(Path(name)) == video


def test_a_set_naming_frames_by_number_is_grouped_only_when_said() -> None:
    assert video_key(Path("CarOne123_png.rf.5e1d.jpg"), is_frame_numbered=True) == "CarOne"
    assert video_key(Path("Img_25883_jpg.rf.aa.jpg"), is_frame_numbered=True) == "Img_"
    assert video_key(Path("2ndAlarmFire117N1874_png.rf.1.jpg"), is_frame_numbered=True) == "2ndAlarmFire117N"
    assert (
        video_key(Path("Living_Room_Camp_Fire_jpg.rf.2.jpg"), is_frame_numbered=True)
        == "Living_Room_Camp_Fire_jpg"
    )
    assert video_key(Path("img_727_jpg.rf.3.jpg")) == "img_727_jpg"  # stills of another set stay apart


def test_frames_of_one_video_stay_on_one_side_when_split_by_video() -> None:
    boxes = np.array([[0, 0.5, 0.5, 0.1, 0.1]], np.float32)
    frames = [
        LabelledImage(Path(f"/d/clip{v}_mp4-{f}_jpg.rf.{f:04x}.jpg"), "train", boxes, "d")
        for v in range(12)
        for f in range(20)
    ]
    stills = [LabelledImage(Path(f"/d/img_{i}_jpg.rf.{i:04x}.jpg"), "val", boxes, "d") for i in range(40)]
    dataset = DetectionSet(name="d", class_names=("x",), images=frames + stills)

    by_frame = split_by_group(dataset, {"train": 0.7, "val": 0.3}, seed=2)
    by_video = split_by_group(dataset, {"train": 0.7, "val": 0.3}, seed=2, key=lambda im: video_key(im.image))

    def sides(split: DetectionSet) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for item in split:
            out.setdefault(video_key(item.image), set()).add(item.split)
        return out

    assert max(len(s) for s in sides(by_frame).values()) == 2  # frame by frame, videos straddle
    assert max(len(s) for s in sides(by_video).values()) == 1
    assert {"train", "val"} == {im.split for im in by_video if "img_" in im.image.name}  # stills still split


@pytest.mark.parametrize(
    ("name", "recording"),
    [
        ("fall-01-cam0-rgb-003_png.rf.a3.jpg", "fall-01"),
        ("fall-01-cam1-rgb-076_png.rf.9e.jpg", "fall-01"),  # the ceiling camera's view of the same fall
        ("adl-12-cam0-rgb-241_png.rf.0c.jpg", "adl-12"),
        ("CarOne123_png.rf.5e1d.jpg", "CarOne"),  # no camera named: the video
    ],
)
def test_a_multi_camera_set_is_grouped_by_recording_when_said(name: str, recording: str) -> None:
    assert video_key(Path(name), is_frame_numbered=True, is_multi_camera=True) == recording
    assert (
        video_key(Path("fall-01-cam1-rgb-076_png.rf.9e.jpg"), is_frame_numbered=True) == "fall-01-cam1-rgb-"
    )
