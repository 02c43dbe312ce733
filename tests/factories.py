"""Builders of test data shared across the test suite."""

from __future__ import annotations

import functools
from dataclasses import replace
from typing import Any

import cv2
import numpy as np

from anjian.pipeline.event import Behaviour, Event, EventBox, RiskLevel, new_event_id

__all__ = ["make_event", "make_jpeg"]


@functools.cache
def _encode_jpeg(width: int, height: int, bgr: tuple[int, int, int]) -> bytes:
    """Encode a solid-colour image (cached: encoding is the slow part)."""
    image = np.full((height, width, 3), bgr, dtype=np.uint8)
    is_ok, buffer = cv2.imencode(".jpg", image)
    if not is_ok:
        raise RuntimeError("cv2.imencode failed to encode a test JPEG")
    return bytes(buffer.tobytes())


def make_jpeg(width: int = 16, height: int = 12, bgr: tuple[int, int, int] = (0, 0, 255)) -> bytes:
    """A tiny valid JPEG of one colour (red by default).

    Args:
        width: Pixels.
        height: Pixels.
        bgr: Colour in OpenCV's channel order.
    """
    return _encode_jpeg(width, height, bgr)


def make_event(**overrides: Any) -> Event:
    """A valid open-flame ``Event`` (revision 1, with a snapshot), with any field overridden.

    Pass ``snapshot_jpeg=None`` for an event without a snapshot. A fresh ``id`` is
    generated unless given.

    Example:
        >>> make_event(camera_id="cam-2", revision=2, ended_at=1_700_000_030.0)
    """
    base = Event(
        id=new_event_id(),
        revision=1,
        site_id="site-1",
        workshop_id="polishing-1",
        camera_id="cam-1",
        behaviour=Behaviour.OPEN_FLAME,
        severity=RiskLevel.RED,
        started_at=1_700_000_000.0,
        last_seen_at=1_700_000_002.5,
        confidence=0.87,
        boxes=(EventBox(class_name="fire", confidence=0.87, xyxy_norm=(0.1, 0.2, 0.3, 0.4)),),
        zone_id="zone-a",
        model_version="anjian-demo-1",
        message="Open flame in zone-a on cam-1",
        snapshot_jpeg=make_jpeg(),
    )
    return replace(base, **overrides)
