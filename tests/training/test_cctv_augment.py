"""The CCTV look given to training images: what each fault does, and that labels and shapes survive."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from pydantic import ValidationError

from anjian.training import cctv_augment
from anjian.training.cctv_augment import CctvDegradation, CctvLook, degrade_like_cctv

ONLY_CODEC = {
    "shrink": (1.0, 1.0),
    "blur_p": 0.0,
    "noise_p": 0.0,
    "exposure_p": 0.0,
    "fade_p": 0.0,
    "grey_p": 0.0,
}


def _photo(seed: int = 0) -> np.ndarray:
    """A sharp 'photo': a one-pixel checkerboard (the finest detail) beside a saturated orange flame patch."""
    image = np.zeros((96, 128, 3), np.uint8)
    board = (np.indices((96, 64)).sum(axis=0) % 2 * 255).astype(np.uint8)
    image[:, :64] = board[..., None]
    image[:, 64:] = (40, 150, 250)  # BGR orange
    return image


def _detail(image: np.ndarray) -> float:
    return float(cv2.Laplacian(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), cv2.CV_64F).var())


def test_the_camera_look_keeps_shape_and_type_and_leaves_the_input_alone() -> None:
    photo = _photo()
    before = photo.copy()
    out = degrade_like_cctv(photo, np.random.default_rng(1))
    assert out.shape == photo.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(photo, before)
    grey = degrade_like_cctv(photo[..., 0].copy(), np.random.default_rng(1))
    assert grey.shape == photo.shape[:2]


def test_the_same_seed_gives_the_same_image_and_another_seed_another() -> None:
    photo = _photo()
    first = degrade_like_cctv(photo, np.random.default_rng(5))
    assert np.array_equal(first, degrade_like_cctv(photo, np.random.default_rng(5)))
    assert not np.array_equal(first, degrade_like_cctv(photo, np.random.default_rng(6)))


def test_the_substream_resolution_and_blur_remove_the_finest_detail() -> None:
    photo = _photo()
    look = CctvLook(**{**ONLY_CODEC, "shrink": (0.5, 0.5), "jpeg_quality": (95, 95)})
    assert _detail(degrade_like_cctv(photo, np.random.default_rng(0), look)) < _detail(photo) / 10


def test_the_codec_alone_changes_pixels_and_a_low_quality_more_than_a_high_one() -> None:
    photo = _photo()
    low = degrade_like_cctv(
        photo, np.random.default_rng(0), CctvLook(**{**ONLY_CODEC, "jpeg_quality": (15, 15)})
    )
    high = degrade_like_cctv(
        photo, np.random.default_rng(0), CctvLook(**{**ONLY_CODEC, "jpeg_quality": (95, 95)})
    )
    error = [float(np.abs(x.astype(int) - photo).mean()) for x in (low, high)]
    assert error[0] > error[1] > 0


def test_over_exposure_clips_a_bright_flame_to_a_white_core() -> None:
    photo = _photo()
    look = CctvLook(
        **{
            **ONLY_CODEC,
            "exposure_p": 1.0,
            "gain": (1.7, 1.7),
            "bias": (30.0, 30.0),
            "jpeg_quality": (95, 95),
        }
    )
    out = degrade_like_cctv(photo, np.random.default_rng(0), look)
    flame = out[20:80, 80:120].reshape(-1, 3).mean(axis=0)
    # green and red clip: a yellow-white core, as on a real CCTV fire
    assert flame[1] > 245 and flame[2] > 245


def test_the_ir_night_mode_leaves_no_colour() -> None:
    look = CctvLook(**{**ONLY_CODEC, "grey_p": 1.0, "jpeg_quality": (95, 95)})
    out = degrade_like_cctv(_photo(), np.random.default_rng(0), look).astype(int)
    assert np.abs(out[..., 0] - out[..., 2]).max() <= 4


def test_the_transform_degrades_the_share_asked_for_and_never_touches_the_boxes() -> None:
    boxes = np.array([[0.5, 0.5, 0.2, 0.3]], np.float32)
    never, always = CctvDegradation(0.0, seed=1), CctvDegradation(1.0, seed=1)
    photo = _photo()
    labels = never({"img": photo, "bboxes": boxes.copy()})
    assert labels["img"] is photo
    labels = always({"img": photo, "bboxes": boxes.copy(), "cls": np.array([[2.0]])})
    assert not np.array_equal(labels["img"], photo)
    np.testing.assert_array_equal(labels["bboxes"], boxes)
    half = CctvDegradation(0.5, seed=3)
    changed = sum(not np.array_equal(half({"img": photo})["img"], photo) for _ in range(200))
    assert 70 < changed < 130


def test_a_forked_worker_draws_its_own_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dataloader workers forked from one transform must not all degrade their images the same way."""
    photo = _photo()
    parent = CctvDegradation(1.0, seed=4)
    worker = CctvDegradation(1.0, seed=4)
    monkeypatch.setattr(cctv_augment.os, "getpid", lambda: 999_999)
    assert not np.array_equal(parent._generator().random(4), np.random.default_rng(4).random(4))
    assert not np.array_equal(
        worker({"img": photo})["img"], degrade_like_cctv(photo, np.random.default_rng(4))
    )


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("shrink", (0.9, 0.4), "shrink"),
        ("shrink", (0.01, 0.5), "shrink"),
        ("jpeg_quality", (10, 101), "jpeg_quality"),
        ("fade", (0.2, 1.5), "fade"),
        ("blur_p", 1.5, "blur_p"),
    ],
)
def test_a_wrong_look_is_refused_naming_what_is_wrong(field: str, value: object, named: str) -> None:
    with pytest.raises(ValidationError, match=named):
        CctvLook(**{field: value})


def test_a_probability_outside_zero_to_one_is_refused() -> None:
    with pytest.raises(ValueError, match="p must be in"):
        CctvDegradation(1.2)
    with pytest.raises(ValueError, match="uint8"):
        degrade_like_cctv(np.zeros((4, 4, 3), np.float32), np.random.default_rng(0))
