"""Letterboxing keeps aspect ratio, and boxes map back to the original pixels exactly."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from anjian.models.postprocess import decode_yolo_output, nms_per_class
from anjian.models.preprocess import PAD_VALUE, letterbox, letterbox_batch, letterbox_pixel_batch


@pytest.mark.parametrize("size_wh", [(640, 360), (360, 640), (320, 320), (1920, 1080)], ids=str)
def test_letterbox_round_trips_boxes(size_wh: tuple[int, int]) -> None:
    w, h = size_wh
    image = np.zeros((h, w, 3), np.uint8)
    boxed, transform = letterbox(image, (320, 320))
    assert boxed.shape == (320, 320, 3)
    original = np.array([[0.1 * w, 0.2 * h, 0.6 * w, 0.9 * h]], np.float32)
    in_model = original.copy()
    in_model[:, [0, 2]] = in_model[:, [0, 2]] * transform.scale + transform.pad_xy[0]
    in_model[:, [1, 3]] = in_model[:, [1, 3]] * transform.scale + transform.pad_xy[1]
    np.testing.assert_allclose(transform.boxes_to_original(in_model, (w, h)), original, atol=1e-3)


def test_letterbox_pads_grey_and_batch_is_rgb_unit_range() -> None:
    image = np.zeros((100, 200, 3), np.uint8)
    image[..., 0] = 255  # blue in BGR
    boxed, transform = letterbox(image, (64, 64))
    assert transform.pad_xy == (0.0, 16.0)
    assert (boxed[0, 0] == PAD_VALUE).all()
    batch, _ = letterbox_batch([image], (64, 64))
    assert batch.shape == (1, 3, 64, 64) and batch.dtype == np.float32
    assert batch[0, 2, 32, 32] == pytest.approx(1.0)  # blue lands in the last RGB channel
    assert batch[0, 0, 32, 32] == pytest.approx(0.0)


@pytest.mark.parametrize("stride", [None, 32], ids=["static", "dynamic-stride-32"])
def test_a_batch_of_mixed_sizes_is_each_image_letterboxed_as_alone_and_padded_grey(
    stride: int | None,
) -> None:
    """The batch is written straight into the model input: every pixel must be the picture's or the pad's."""
    rng = np.random.default_rng(3)
    images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in [(432, 768), (480, 640), (200, 90)]]

    batch, transforms = letterbox_batch(images, (320, 320), stride=stride)

    height, width = batch.shape[2:]
    for image, plane, transform in zip(images, batch, transforms, strict=True):
        expected = np.full((height, width, 3), PAD_VALUE, np.uint8)
        h, w = image.shape[:2]
        new_w, new_h = min(round(w * transform.scale), width), min(round(h * transform.scale), height)
        left, top = int(transform.pad_xy[0]), int(transform.pad_xy[1])
        expected[top : top + new_h, left : left + new_w] = cv2.resize(image, (new_w, new_h))
        as_input = expected[..., ::-1].transpose(2, 0, 1).astype(np.float32) / 255.0
        np.testing.assert_allclose(plane, as_input, atol=1e-6)


def test_nms_is_class_aware() -> None:
    xyxy = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [0, 0, 10, 10], [50, 50, 60, 60]], np.float32)
    scores = np.array([0.9, 0.8, 0.7, 0.6], np.float32)
    classes = np.array([0, 0, 1, 0])
    assert nms_per_class(xyxy, scores, classes, 0.5, 100).tolist() == [0, 2, 3]
    assert nms_per_class(xyxy, scores, classes, 0.5, 2).tolist() == [0, 2]


def test_decode_yolo_output_thresholds_and_converts_boxes() -> None:
    output = np.zeros((4 + 2, 3), np.float32)
    output[:4, 0] = [50, 50, 20, 10]  # cx, cy, w, h
    output[4:, 0] = [0.1, 0.9]
    output[:4, 1] = [10, 10, 4, 4]
    output[4:, 1] = [0.2, 0.1]  # below threshold
    xyxy, conf, cls = decode_yolo_output(output, 0.25, 0.45, 10)
    np.testing.assert_allclose(xyxy, [[40, 45, 60, 55]])
    assert conf.tolist() == pytest.approx([0.9])
    assert cls.tolist() == [1]


@pytest.mark.parametrize("stride", [None, 32], ids=["static", "dynamic-stride-32"])
def test_the_byte_batch_is_the_float_batch_before_its_conversion(stride: int | None) -> None:
    """What OpenVINO converts in-graph: the same picture and pad, BGR bytes, channels last."""
    rng = np.random.default_rng(5)
    images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in [(432, 768), (200, 90)]]

    floats, float_transforms = letterbox_batch(images, (320, 320), stride=stride)
    pixels, pixel_transforms = letterbox_pixel_batch(images, (320, 320), stride=stride)

    assert pixels.dtype == np.uint8 and pixels.shape == (2, *floats.shape[2:], 3)
    assert pixel_transforms == float_transforms
    np.testing.assert_allclose(pixels[..., ::-1].transpose(0, 3, 1, 2) / np.float32(255), floats, atol=1e-6)
    assert (pixels[1, :, 0] == PAD_VALUE).all()  # the tall image is padded left and right
