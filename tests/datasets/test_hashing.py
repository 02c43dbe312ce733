"""The content digest of a YOLO set: every image and label of every split counts, however listed."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np

from anjian.datasets.hashing import dataset_digest


def _list_set(root: Path) -> Path:
    """A set whose splits are ``.txt`` lists of images (relative to the list)."""
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for stem, grey in (("a", 40), ("b", 90)):
        cv2.imwrite(str(root / "images" / f"{stem}.jpg"), np.full((16, 16, 3), grey, np.uint8))
        (root / "labels" / f"{stem}.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    (root / "train.txt").write_text("images/a.jpg\n")
    (root / "val.txt").write_text("images/b.jpg\n")
    (root / "data.yaml").write_text("train: train.txt\nval: val.txt\nnames: [fire]\n")
    return root / "data.yaml"


def test_the_digest_of_a_set_split_by_image_lists_follows_the_listed_images(tmp_path: Path) -> None:
    data_yaml = _list_set(tmp_path / "set")
    before = dataset_digest(data_yaml)

    shutil.copytree(tmp_path / "set", tmp_path / "moved")
    assert dataset_digest(tmp_path / "moved" / "data.yaml") == before  # same content elsewhere

    (tmp_path / "set" / "labels" / "b.txt").write_text("0 0.4 0.5 0.2 0.2\n")
    relabelled = dataset_digest(data_yaml)
    assert relabelled != before

    cv2.imwrite(str(tmp_path / "set" / "images" / "b.jpg"), np.full((16, 16, 3), 200, np.uint8))
    assert dataset_digest(data_yaml) != relabelled
