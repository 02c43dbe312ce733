"""Open incidents kept across a restart of the pipeline, so that stopping the service does not end them.

A fire that still burns, or a camera that is still broken, is still an incident
after the service restarts: the control room must see the same alert go on, not
one alert ended by the restart and a new one raised a minute later.

``IncidentJournal`` keeps the latest published revision of every open incident
(every ``IncidentBook`` whose ``EventContext`` carries the journal reports to it)
in a small JSON file, rewritten (atomically, without fsync) on each published
revision and each close: a kill -9 loses nothing published. When the runner
stops it calls ``suspend()``: from then on books keep their incidents open
instead of closing them (no ``ended_at`` goes out), and the file holds them.

At the next start each book ``claim``s the incidents of its camera and
behaviour and carries on with them: same event id, next revision, the incident
still open while the rule sees the condition, closed (``ended_at``) once it has
been absent for the rule's ``clear_after_s`` counted from the restart. An
incident about one object (a smoker, a fallen person, tracked or followed by box
overlap) is taken over by the first new incident of the same behaviour and zone, as
track ids and object keys do not survive a restart. Incidents no book claims (the camera or the rule was removed while the
service was down) are closed by ``close_unclaimed``.

A plant with several pipeline nodes moves a camera from one node to another: the node
giving it up calls ``hand_over(camera_id)`` before removing the camera (its books then
keep their incidents open), ``export``s them and ``drop``s them; the node taking the
camera over ``adopt``s them before adding it, and its books carry on with them as after a
restart: one incident, whichever node watches it.

Example:
    >>> journal = IncidentJournal(Path("data/open_incidents.json"))
    >>> runner = PipelineRunner(site_id, assignments, detector, sink, incident_journal=journal)
    >>> for event in journal.close_unclaimed(time.time()):
    ...     sink.publish(event)
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Collection
from dataclasses import replace
from pathlib import Path
from typing import Any

from anjian.models.atomic import write_atomic
from anjian.pipeline.event import Behaviour, Event
from anjian.pipeline.event_json import event_from_json, event_to_json

__all__ = ["IncidentJournal", "JournalEntry"]

logger = logging.getLogger(__name__)

_VERSION = 1
_Key = tuple[str, str, str]  # camera id, behaviour, incident key
JournalEntry = dict[str, Any]
"""One open incident as JSON: ``camera_id``, ``behaviour``, ``key`` and ``event`` (``event_to_json``)."""


def _entry(key: _Key, event: Event) -> JournalEntry:
    return {"camera_id": key[0], "behaviour": key[1], "key": key[2], "event": event_to_json(event)}


def _parse(entry: JournalEntry) -> tuple[_Key, Event]:
    """An entry back as its key and event; ``ValueError``/``KeyError``/``TypeError`` when malformed."""
    key = (str(entry["camera_id"]), Behaviour(entry["behaviour"]).value, str(entry["key"]))
    return key, event_from_json(entry["event"])


def _parse_entries(entries: list[Any]) -> tuple[dict[_Key, Event], list[str]]:
    """The readable entries by key, and what is wrong with each of the others (``entry 3: ...``)."""
    loaded: dict[_Key, Event] = {}
    problems: list[str] = []
    for index, entry in enumerate(entries):
        try:
            key, event = _parse(entry)
        except (KeyError, TypeError, ValueError) as exc:
            problems.append(f"entry {index}: {type(exc).__name__}: {exc}")
            continue
        loaded[key] = event
    return loaded, problems


class IncidentJournal:
    """The open incidents of one pipeline, on disk; thread-safe.

    Args:
        path: The JSON file (created when the first incident opens). An unreadable
            one is set aside (``.corrupt``) and the pipeline starts without it.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._open: dict[_Key, Event] = {}
        self._pending: dict[_Key, Event] = {}  # loaded at start, not yet claimed by a book
        self._is_suspended = False
        self._handed_over: set[str] = set()
        self._load()

    @property
    def is_suspended(self) -> bool:
        """Whether the pipeline is stopping: books keep their open incidents instead of closing them."""
        return self._is_suspended

    def keeps_open(self, camera_id: str) -> bool:
        """Whether the books of ``camera_id`` keep their incidents open when closed (stopping, or handed over)."""
        return self._is_suspended or camera_id in self._handed_over

    def hand_over(self, camera_id: str) -> None:
        """The camera goes to another node: from now on its books keep their incidents open for it."""
        with self._lock:
            self._handed_over.add(camera_id)

    def export(self, camera_id: str) -> list[JournalEntry]:
        """The camera's open incidents (latest revisions, no evidence bytes), for the node that takes it over."""
        with self._lock:
            return [_entry(key, event) for key, event in self._open.items() if key[0] == camera_id]

    def drop(self, camera_id: str) -> None:
        """Forget the camera's incidents: another node carries on with them."""
        with self._lock:
            self._handed_over.discard(camera_id)
            self._pending = {k: e for k, e in self._pending.items() if k[0] != camera_id}
            self._open = {k: e for k, e in self._open.items() if k[0] != camera_id}
            self._save_locked()

    def adopt(self, camera_id: str, entries: list[JournalEntry], *, skip_revisions: int = 0) -> None:
        """Take over the camera's open incidents from the node that ran it; its books claim them when added.

        Args:
            camera_id: The camera.
            entries: Its open incidents, as the other node's ``export`` gave them.
            skip_revisions: Added to each incident's revision, so that the next one published
                here is above any the other node published after it exported these (a
                receiver ignores a revision not above the one it holds).

        Raises:
            ValueError: An entry is malformed or of another camera (nothing is adopted).
        """
        if skip_revisions < 0:
            raise ValueError(f"skip_revisions must be >= 0, got {skip_revisions}")
        try:
            parsed = {
                key: replace(event, revision=event.revision + skip_revisions)
                for key, event in (_parse(entry) for entry in entries)
            }
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{camera_id}: cannot adopt the open incidents handed over: {exc}") from exc
        others = sorted({key[0] for key in parsed} - {camera_id})
        if others:
            raise ValueError(f"{camera_id}: the incidents handed over are of camera(s) {others}")
        with self._lock:
            self._handed_over.discard(camera_id)
            self._pending.update(parsed)
            self._open.update(parsed)
            self._save_locked()

    def pending(self) -> list[Event]:
        """Incidents loaded at start that no book has claimed yet."""
        with self._lock:
            return list(self._pending.values())

    def claim(self, camera_id: str, behaviour: Behaviour) -> dict[str, Event]:
        """Hand a new book the open incidents of its camera and behaviour, by incident key (once)."""
        with self._lock:
            keys = [k for k in self._pending if k[0] == camera_id and k[1] == Behaviour(behaviour).value]
            claimed = {k[2]: self._pending.pop(k) for k in keys}
        if claimed:
            logger.info(
                "%s: resuming %d open %s incident(s) left by a previous run or node",
                camera_id,
                len(claimed),
                behaviour,
            )
        return claimed

    def record(self, camera_id: str, behaviour: Behaviour, key: str, event: Event) -> None:
        """Keep the latest published revision of an open incident (evidence bytes left out)."""
        stored = replace(event, snapshot_jpeg=None, clip_mp4=None)
        with self._lock:
            self._open[(camera_id, Behaviour(behaviour).value, key)] = stored
            self._save_locked()

    def forget(self, camera_id: str, behaviour: Behaviour, key: str) -> None:
        """An incident closed (or moved to another key): drop it."""
        with self._lock:
            if self._open.pop((camera_id, Behaviour(behaviour).value, key), None) is not None:
                self._save_locked()

    def suspend(self) -> None:
        """The pipeline is stopping: from now on books keep their open incidents for the next start."""
        with self._lock:
            self._is_suspended = True
            self._save_locked()

    def close_unclaimed(
        self, now: float, *, camera_id: str | None = None, carried_on: Collection[str] = ()
    ) -> list[Event]:
        """End the loaded incidents no book claimed: their camera or rule is gone. Returns the revisions to publish.

        Args:
            now: Wall clock, epoch seconds: their end.
            camera_id: Only this camera's (``None``: every camera's).
            carried_on: Ids of incidents another pipeline node carries on: forgotten here, not ended.
        """
        with self._lock:
            chosen = {k: e for k, e in self._pending.items() if camera_id is None or k[0] == camera_id}
            self._pending = {k: e for k, e in self._pending.items() if k not in chosen}
            for key in chosen:
                self._open.pop(key, None)
            if chosen:
                self._save_locked()
        left = {k: e for k, e in chosen.items() if e.id not in carried_on}
        closed = [
            replace(event, revision=event.revision + 1, ended_at=max(now, event.last_seen_at))
            for event in left.values()
        ]
        for event in closed:
            logger.info(
                "%s: ending %s incident %s: the camera or its rule is no longer configured",
                event.camera_id,
                event.behaviour,
                event.id,
            )
        return closed

    # ------------------------------------------------------------------ file

    def _load(self) -> None:
        """Read the file left by the previous run, if any."""
        try:
            document = json.loads(self.path.read_text(encoding="utf-8"))
            if not isinstance(document, dict):
                raise ValueError(f"expected a JSON object, got {type(document).__name__}")  # noqa: TRY004 - a bad file
            if document.get("version") != _VERSION:  # written by another anjian: not read as this one's
                raise ValueError(f"format version {document.get('version')!r}, this anjian reads {_VERSION}")
            entries = document["incidents"]
            if not isinstance(entries, list):
                raise TypeError(f"'incidents' must be a list, got {type(entries).__name__}")
        except FileNotFoundError:
            return
        except (OSError, ValueError, KeyError, TypeError) as exc:
            aside = self.path.with_suffix(".corrupt")
            logger.warning("cannot read %s (%s); set aside as %s, starting without it", self.path, exc, aside)
            try:
                os.replace(self.path, aside)
            except OSError:
                logger.exception("cannot set %s aside", self.path)
            return
        loaded, problems = _parse_entries(entries)
        if problems:  # the others are open incidents this plant accepted: carried on, not dropped with them
            aside = self.path.with_suffix(".corrupt")
            logger.warning(
                "%s: %d of %d open incident(s) unreadable (%s); carrying on with the rest, the file kept as %s",
                self.path,
                len(problems),
                len(entries),
                "; ".join(problems[:3]),
                aside,
            )
            try:
                aside.write_bytes(self.path.read_bytes())
            except OSError:
                logger.exception("cannot keep a copy of %s", self.path)
        self._pending = dict(loaded)
        self._open = dict(loaded)

    def _save_locked(self) -> None:
        """Rewrite the file atomically (the caller holds the lock); a failure is logged, never raised."""
        document: dict[str, Any] = {
            "version": _VERSION,
            "incidents": [_entry(key, event) for key, event in self._open.items()],
        }
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(self.path, json.dumps(document, separators=(",", ":")), is_fsync=False)
        except OSError:
            logger.exception("cannot write the open incidents to %s", self.path)
