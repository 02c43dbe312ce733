"""Source-balanced QAT: a small source's train images repeat so that it weighs like the others."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from anjian.training.qat import QatRecipe, balanced_train_list


def _images(folder: Path, count: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{i}.jpg" for i in range(count)]
    for path in paths:
        cv2.imwrite(str(path), np.zeros((8, 8, 3), np.uint8))
    return paths


def test_a_source_below_the_mean_repeats_whole_and_the_others_once(tmp_path: Path) -> None:
    train = tmp_path / "images" / "train"
    big = _images(train / "forklift_person", 9)
    small = _images(train / "pallet", 3)
    loose = _images(train, 1)
    out = tmp_path / "train.txt"

    repeats = balanced_train_list(train, out)

    assert repeats == {"": 1, "forklift_person": 1, "pallet": 2}  # mean 6: 6 / 3 = 2 copies
    listed = [Path(line) for line in out.read_text().splitlines()]
    assert sorted(listed) == sorted(big + loose + small + small)


def test_a_train_split_that_is_not_a_folder_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="needs the train split as a folder"):
        balanced_train_list(tmp_path / "train.txt", tmp_path / "out.txt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no images under"):
        balanced_train_list(tmp_path / "empty", tmp_path / "out.txt")


def test_the_recipe_records_whether_it_balanced_its_sources() -> None:
    assert QatRecipe(Path("data.yaml"), is_source_balanced=True).describe()["is_source_balanced"] is True
    assert QatRecipe(Path("data.yaml")).describe()["is_source_balanced"] is False
