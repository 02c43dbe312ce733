"""The events the service benchmarks store and send: plausible open-flame alerts with a 30 kB snapshot."""

from __future__ import annotations

import os
import time

from anjian.pipeline.event import Behaviour, Event, EventBox, RiskLevel

__all__ = ["SNAPSHOT_JPEG", "bench_event"]

SNAPSHOT_JPEG = b"\xff\xd8" + os.urandom(30_000) + b"\xff\xd9"
"""30 kB framed as a JPEG: the size of a site's snapshot, incompressible like one."""


def bench_event(index: int, *, snapshot: bytes | None, tag: str = "") -> Event:
    """A plausible open-flame event; ``tag`` keeps the ids of separate runs apart."""
    now = time.time()
    return Event(
        id=f"bench{tag}{index:07d}{os.getpid()}",
        revision=1,
        site_id="bench",
        workshop_id="w1",
        camera_id="cam-1",
        behaviour=Behaviour.OPEN_FLAME,
        severity=RiskLevel.RED,
        started_at=now,
        last_seen_at=now,
        confidence=0.9,
        boxes=(EventBox("fire", 0.9, (0.1, 0.2, 0.3, 0.4)),),
        message="bench",
        snapshot_jpeg=snapshot,
    )
