"""The wire form of an ``Event``: the JSON the pipeline POSTs to the alert service's ``/ingest/events``.

The pipeline never imports the service, so it owns this format; the service
validates it against the same field list. Times stay epoch seconds (floats survive
JSON exactly); the snapshot travels as base64.

Example:
    >>> data = event_to_json(event)          # a dict ready for json.dumps
    >>> event_from_json(data) == event
    True
"""

from __future__ import annotations

import base64
import binascii
import math
from typing import Any

from anjian.pipeline.event import Behaviour, Event, EventBox, RiskLevel

__all__ = ["EVENT_JSON_VERSION", "event_from_json", "event_to_json"]

EVENT_JSON_VERSION = 1
"""Bumped when the wire form changes incompatibly."""

_FIELDS = (
    "schema_version",
    "id",
    "revision",
    "site_id",
    "workshop_id",
    "camera_id",
    "behaviour",
    "severity",
    "started_at",
    "last_seen_at",
    "ended_at",
    "confidence",
    "boxes",
    "zone_id",
    "model_version",
    "message",
    "snapshot_jpeg_b64",
    "clip_mp4_b64",
    "track_id",
)


def event_to_json(event: Event) -> dict[str, Any]:
    """The JSON-ready dict of an event (keys in ``_FIELDS`` order)."""
    return {
        "schema_version": EVENT_JSON_VERSION,
        "id": event.id,
        "revision": event.revision,
        "site_id": event.site_id,
        "workshop_id": event.workshop_id,
        "camera_id": event.camera_id,
        "behaviour": event.behaviour.value,
        "severity": event.severity.value,
        "started_at": event.started_at,
        "last_seen_at": event.last_seen_at,
        "ended_at": event.ended_at,
        "confidence": event.confidence,
        "boxes": [
            {"class_name": b.class_name, "confidence": b.confidence, "xyxy_norm": list(b.xyxy_norm)}
            for b in event.boxes
        ],
        "zone_id": event.zone_id,
        "model_version": event.model_version,
        "message": event.message,
        "snapshot_jpeg_b64": _b64(event.snapshot_jpeg),
        "clip_mp4_b64": _b64(event.clip_mp4),
        "track_id": event.track_id,
    }


def _b64(data: bytes | None) -> str | None:
    """Base64 text of evidence bytes, or ``None``."""
    return None if data is None else base64.b64encode(data).decode("ascii")


def _evidence(data: dict[str, Any], key: str) -> bytes | None:
    """Decode an optional base64 evidence field; ``ValueError`` naming it when malformed."""
    text = _text(data, key, is_optional=True)
    try:
        return None if text is None else base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        raise _invalid(f"{key}: not base64: {exc}") from exc


def _invalid(message: str) -> ValueError:
    """The error of a malformed wire event (the service answers it with 422)."""
    return ValueError(message)


def _number(data: dict[str, Any], key: str) -> float:
    """A finite float field; ``ValueError`` naming the field otherwise."""
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _invalid(f"{key}: expected a finite number, got {value!r}")
    return float(value)


def _text(data: dict[str, Any], key: str, *, is_optional: bool = False) -> str | None:
    """A string field (or ``None`` when optional)."""
    value = data.get(key)
    if value is None and is_optional:
        return None
    if not isinstance(value, str):
        raise _invalid(f"{key}: expected a string, got {value!r}")
    return value


def _box(raw: Any, index: int) -> EventBox:
    """One box of ``boxes``."""
    if not isinstance(raw, dict):
        raise _invalid(f"boxes[{index}]: expected an object, got {raw!r}")
    xyxy = raw.get("xyxy_norm")
    if not isinstance(xyxy, list | tuple) or len(xyxy) != 4:
        raise _invalid(f"boxes[{index}].xyxy_norm: expected 4 numbers, got {xyxy!r}")
    coords = tuple(_number({"v": v}, "v") for v in xyxy)
    return EventBox(
        class_name=str(_text(raw, "class_name")),
        confidence=_number(raw, "confidence"),
        xyxy_norm=(coords[0], coords[1], coords[2], coords[3]),
    )


def event_from_json(data: dict[str, Any]) -> Event:
    """Rebuild an ``Event`` from its wire form.

    Raises:
        ValueError: A field is missing, unknown or of the wrong type, the schema
            version is not supported, or the event itself is invalid.
    """
    if not isinstance(data, dict):
        raise _invalid(f"expected a JSON object, got {type(data).__name__}")
    unknown = sorted(set(data) - set(_FIELDS))
    if unknown:
        raise _invalid(f"unknown field(s) {unknown}")
    if data.get("schema_version") != EVENT_JSON_VERSION:
        raise _invalid(f"schema_version: expected {EVENT_JSON_VERSION}, got {data.get('schema_version')!r}")
    revision = data.get("revision")
    if isinstance(revision, bool) or not isinstance(revision, int):
        raise _invalid(f"revision: expected an integer, got {revision!r}")
    boxes_raw = data.get("boxes", [])
    if not isinstance(boxes_raw, list):
        raise _invalid(f"boxes: expected a list, got {boxes_raw!r}")
    track_id = data.get("track_id")
    if track_id is not None and (isinstance(track_id, bool) or not isinstance(track_id, int)):
        raise _invalid(f"track_id: expected an integer or null, got {track_id!r}")
    ended_at = None if data.get("ended_at") is None else _number(data, "ended_at")
    return Event(
        id=str(_text(data, "id")),
        revision=revision,
        site_id=str(_text(data, "site_id")),
        workshop_id=str(_text(data, "workshop_id")),
        camera_id=str(_text(data, "camera_id")),
        behaviour=Behaviour(str(_text(data, "behaviour"))),
        severity=RiskLevel(str(_text(data, "severity"))),
        started_at=_number(data, "started_at"),
        last_seen_at=_number(data, "last_seen_at"),
        ended_at=ended_at,
        confidence=_number(data, "confidence"),
        boxes=tuple(_box(b, i) for i, b in enumerate(boxes_raw)),
        zone_id=_text(data, "zone_id", is_optional=True),
        model_version=_text(data, "model_version", is_optional=True) or "",
        message=_text(data, "message", is_optional=True) or "",
        snapshot_jpeg=_evidence(data, "snapshot_jpeg_b64"),
        clip_mp4=_evidence(data, "clip_mp4_b64"),
        track_id=track_id,
    )
