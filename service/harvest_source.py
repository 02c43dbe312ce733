"""Judged alerts from the site's event store, turned into a dataset harvest (``anjian dataset harvest``).

An alert counts once the control room has judged it: *false alarm* (a hard negative)
or *resolved* (confirmed: an image to label). A *closed* alert counts as the last of
those two verdicts its audit trail shows (closed after a false alarm, or after being
resolved); one closed without either, and one without a snapshot, are left out.
``anjian.datasets.harvest.write_harvest`` then writes the images and labels.

Harvest reads what a site has stored and creates nothing: a ``storage.dir`` that holds
no event database is an error, not a new empty database.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from anjian.datasets.harvest import HarvestBox, HarvestItem, HarvestReport, Verdict, write_harvest
from anjian.datasets.labels import ProgressFn, no_progress
from anjian.models.errors import ModelError
from anjian.service.lifecycle import AlertState
from anjian.service.store import EventStore

if TYPE_CHECKING:
    from anjian.service.config import AnjianConfig
    from anjian.service.records import StoredEvent

__all__ = ["harvest_site", "judged_alerts"]

_JUDGED = (AlertState.FALSE_ALARM, AlertState.RESOLVED, AlertState.CLOSED)
_VERDICTS = {AlertState.FALSE_ALARM: Verdict.FALSE_ALARM, AlertState.RESOLVED: Verdict.CONFIRMED}
_PAGE_SIZE = 500


def _judgement(store: EventStore, event: StoredEvent) -> tuple[Verdict, str] | None:
    """The control room's verdict on a judged alert and, for a false alarm, its reason (from the audit trail).

    A closed alert's verdict is the last one its trail shows; the reason is the note the
    operator gave when marking it a false alarm (``"reflection: sun on the drum"``), which
    the harvest keeps with the hard negative.
    """
    if event.state is AlertState.RESOLVED:
        return Verdict.CONFIRMED, ""
    trail = store.audit_trail(event.id)
    judged = next((e for e in reversed(trail) if e.to_state in _VERDICTS), None)
    if judged is None:
        return None
    return _VERDICTS[judged.to_state], judged.note if judged.to_state is AlertState.FALSE_ALARM else ""


def judged_alerts(
    store: EventStore,
    data_dir: Path,
    *,
    camera_id: str | None = None,
    since: float | None = None,
    limit: int = 10_000,
) -> list[HarvestItem]:
    """The judged alerts with a snapshot, newest first, as harvest items.

    Args:
        store: The site's event store.
        data_dir: The site's ``storage.dir``, which snapshot paths are relative to.
        camera_id: Only this camera's alerts.
        since: Only alerts started at or after this time, epoch seconds.
        limit: At most this many items.

    Returns:
        One item per false alarm (hard negative) and per confirmed alert (to label).

    Raises:
        ValueError: ``limit`` is below 1.
    """
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    items: list[HarvestItem] = []
    cursor: str | None = None
    while len(items) < limit:
        page = store.list_events(
            camera_id=camera_id,
            states=_JUDGED,
            since=since,
            cursor=cursor,
            limit=min(_PAGE_SIZE, limit - len(items)),
        )
        for event in page.items:
            if event.behaviour.is_sensor:  # its snapshot shows the sensor's place, not what raised it
                continue
            judgement = _judgement(store, event) if event.snapshot_path is not None else None
            if judgement is None or event.snapshot_path is None:
                continue
            verdict, reason = judgement
            items.append(
                HarvestItem(
                    event_id=event.id,
                    verdict=verdict,
                    image=data_dir / event.snapshot_path,
                    camera_id=event.camera_id,
                    behaviour=event.behaviour.value,
                    started_at=event.started_at,
                    boxes=tuple(HarvestBox(b.class_name, b.confidence, b.xyxy_norm) for b in event.boxes),
                    reason=reason,
                )
            )
        cursor = page.next_cursor
        if cursor is None:
            break
    return items


def _class_names(config: AnjianConfig, items: list[HarvestItem]) -> list[str]:
    """The site model's classes (label ids follow them); the alerts' own classes when it cannot load."""
    from anjian.models.loader import load_detector  # ONNX Runtime / OpenVINO: only here

    try:
        return list(load_detector(config.model.path, config.model).class_names.values())
    except ModelError:
        return sorted({box.class_name for item in items for box in item.boxes})


def harvest_site(
    config: AnjianConfig,
    out: Path,
    *,
    camera_id: str | None = None,
    since_days: float | None = None,
    limit: int = 10_000,
    progress: ProgressFn = no_progress,
    clock: Callable[[], float] = time.time,
) -> HarvestReport:
    """Write the site's judged alerts to ``out`` as hard negatives and images to label.

    Args:
        config: The site config (its ``storage`` holds the alerts, its ``model`` gives
            the class ids of the pre-labels).
        out: Folder for ``hard_negatives/``, ``to_label/`` and ``manifest.jsonl``.
        camera_id: Only this camera's alerts.
        since_days: Only alerts started in the last this many days.
        limit: At most this many alerts.
        progress: Reports the images written.
        clock: Current time, epoch seconds (for ``since_days``).

    Returns:
        What was written, and the alerts skipped for a missing snapshot file.

    Raises:
        DatabaseError: ``storage.dir`` holds no event database (nothing is created), or
            the database cannot be opened or migrated.
        ValueError: ``limit`` is below 1.
    """
    store = EventStore.open_existing(config.storage, purpose="harvest reads the alerts a site has stored")
    try:
        since = None if since_days is None else clock() - since_days * 86_400
        items = judged_alerts(store, config.storage.dir, camera_id=camera_id, since=since, limit=limit)
    finally:
        store.close()
    return write_harvest(items, out, _class_names(config, items), progress=progress)
