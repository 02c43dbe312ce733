"""The recipe's re-drawn val splits: each video on one side, and a clear error for a bad ``--resplit``."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from anjian.datasets.labels import no_progress, video_key
from anjian.training.anjian_n import _load_source, main
from tests.support.real_data import copy_yolo_sample


def test_a_resplit_source_keeps_each_real_video_on_one_side(tmp_path: Path) -> None:
    data_yaml = copy_yolo_sample("fire_smoke_cctv", tmp_path / "fire", per_split=40)
    shipped = _load_source("fire_smoke_cctv", data_yaml, 1, no_progress)
    redrawn = _load_source("fire_smoke_cctv", data_yaml, 1, no_progress, val_share=0.3)

    def sides(images: list) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for item in images:
            out.setdefault(video_key(item.image), set()).add(item.split)
        return out

    # the shipped val holds frames of videos whose neighbouring frames are in train
    assert any(len(s) == 2 for s in sides(shipped.images).values())
    assert all(len(s) == 1 for s in sides(redrawn.images).values())
    assert sorted(im.image.name for im in redrawn.images) == sorted(im.image.name for im in shipped.images)
    assert {im.split for im in redrawn.images} == {"train", "val"}


def test_fire_continuous_is_redrawn_by_its_numbered_video_names(tmp_path: Path) -> None:
    data_yaml = copy_yolo_sample("fire_continuous", tmp_path / "fc", per_split=60)
    redrawn = _load_source("fire_continuous", data_yaml, 1, no_progress, val_share=0.3)
    sides: dict[str, set[str]] = {}
    for item in redrawn.images:
        sides.setdefault(video_key(item.image, is_frame_numbered=True), set()).add(item.split)
    assert all(len(s) == 1 for s in sides.values())
    assert len(sides) < len(redrawn.images)  # frames really were joined into videos


@pytest.mark.parametrize(
    ("words", "message"),
    [
        (
            ["fire_smoke_cctv"],
            "--resplit takes SOURCE=SHARE (e.g. fire_smoke_cctv=0.2), got 'fire_smoke_cctv'",
        ),
        (["fire_smoke_cctv=lots"], "got 'fire_smoke_cctv=lots'"),
        (["fire_smoke_cctv=0.8"], "less than or equal to 0.5"),
        (["no_such_set=0.2"], "resplit names ['no_such_set'], not among the sources"),
    ],
)
def test_a_bad_resplit_is_named_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], words: list[str], message: str
) -> None:
    code = main(["prepare", "--work", str(tmp_path / "w"), "--data-root", str(tmp_path), "--resplit", *words])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: prepare: ") and message in err


def test_the_card_says_which_val_splits_were_drawn_again() -> None:
    from anjian.training.anjian_n_release import _split_lines

    assert _split_lines({}) == ""  # a recipe from before the setting
    assert _split_lines({"resplit": {}}) == ""
    line = _split_lines({"resplit": {"fire_smoke_cctv": 0.2}})
    assert "`fire_smoke_cctv` 20%" in line and "one side" in line


def test_ur_fall_is_redrawn_by_recording_both_cameras_on_one_side(tmp_path: Path) -> None:
    root = tmp_path / "ur_fall"
    names = [
        f"{kind}-{n:02d}-cam{cam}-rgb-{frame:03d}_png.rf.{n}{cam}{frame}"
        for kind in ("adl", "fall")
        for n in range(1, 11)
        for cam in (0, 1)
        for frame in (1, 2)
    ]
    for i, name in enumerate(names):
        split = "val" if i % 4 == 0 else "train"  # the shipped split cuts through recordings
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / "images" / split / f"{name}.jpg"), np.full((8, 8, 3), i, np.uint8))
        (root / "labels" / split / f"{name}.txt").write_text("1 0.5 0.5 0.2 0.4\n")
    (root / "data.yaml").write_text(
        "path: .\ntrain: images/train\nval: images/val\nnames: ['fall', 'person']\n"
    )
    redrawn = _load_source("ur_fall", root / "data.yaml", 1, no_progress, val_share=0.2)
    sides: dict[str, set[str]] = {}
    for item in redrawn.images:
        sides.setdefault(item.image.name.split("-cam")[0], set()).add(item.split)
    assert len(sides) == 20 and all(len(s) == 1 for s in sides.values())
    assert sum(s == {"val"} for s in sides.values()) == 4  # 20% of the recordings


def test_the_default_resplit_without_extra_root_says_to_pass_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The default --resplit names ur_fall, an --extra-root set: the error says so and how to go on."""
    code = main(["prepare", "--work", str(tmp_path / "w"), "--data-root", str(tmp_path)])
    assert code == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "resplit names ['ur_fall']" in err
    assert "ur_fall is read from --extra-root: pass --extra-root DIR" in err
    assert "or a --resplit without it" in err
