"""The figures of a shift or daily report, computed from the event store for one time window.

A control room hands over at the end of a shift, and a safety office reads the day:
how many alerts of which behaviour, on which camera, at which hour; how fast they were
acknowledged and settled against the SLA; which behaviours and cameras raise false
alarms and why; how long each camera was down; and what is still open at hand-over.
Everything here is read through the store's public API (events started in the window,
their audit trails), so the report says what the audit trail says. What started before
the window is carried over where it bears on it: a camera fault still going at the
window's start counts as downtime from there, and an alert raised earlier and open at
the window's end is open at hand-over (neither counts among the window's alerts).
Events are read a page at a time, and the audit lines a page needs in one query with
it: a year's report is a few hundred queries, not one per alert.

"Open at hand-over" is the state at the window's end, read from the audit trail of
each alert changed since: a report written the next morning, or a past shift's run
again, lists what the outgoing shift handed over, not what is still open today.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace

from anjian.pipeline.event import Behaviour
from anjian.service.config import AnjianConfig
from anjian.service.lifecycle import AlertState
from anjian.service.records import AuditEntry, StoredEvent
from anjian.service.store import EventPage, EventStore

__all__ = [
    "FALSE_ALARM_REASONS",
    "MAX_WINDOW_DAYS",
    "CameraUptime",
    "Percentiles",
    "ReportFigures",
    "build_figures",
]

FALSE_ALARM_REASONS = ("reflection", "person misread", "camera fault", "test", "other")
"""The reasons the dashboard offers; a free-text reason outside the list counts as ``other``."""

_SETTLING_ACTIONS = frozenset({"resolve", "false_alarm"})
_OPEN_STATES = frozenset({AlertState.RAISED, AlertState.ACKNOWLEDGED, AlertState.DISPATCHED})
_PAGE = 500
MAX_WINDOW_DAYS = 366
"""The longest report window: a year. The page has a bar per hour, so a typo in a year
(``--from 0225-01-01``) would otherwise build gigabytes of HTML."""


@dataclass(frozen=True, slots=True)
class Percentiles:
    """Durations in seconds: how many, median, 90th percentile, and the share within the SLA."""

    count: int
    p50_s: float | None
    p90_s: float | None
    within_sla: float | None = None


@dataclass(frozen=True, slots=True)
class CameraUptime:
    """One camera's share of the window without an open camera fault."""

    camera_id: str
    down_s: float
    uptime: float


@dataclass(frozen=True, slots=True)
class ReportFigures:
    """Everything a shift report shows, for the window ``[since, until)`` (epoch seconds).

    Attributes:
        since: Window start.
        until: Window end.
        total: Alerts started in the window (camera faults included).
        by_behaviour: Alerts per behaviour value.
        by_camera: Alerts per camera id.
        by_colour: Alerts per detected colour.
        by_hour: Alerts per hour of the window, index 0 the first hour.
        acknowledge: Time from the service storing an alert to its acknowledgement (or one-step false alarm).
        settle: Time from storing to its resolution or false alarm.
        false_alarms_by_behaviour: (false alarms, alerts) per behaviour.
        false_alarms_by_camera: (false alarms, alerts) per camera.
        false_alarm_reasons: False alarms per reason (``FALSE_ALARM_REASONS``).
        uptime: Per configured camera (a fault going on since before the window counts from its start).
        open_at_handover: Alerts still raised, acknowledged or dispatched (those raised before the window
            too), most urgent first.
        escalated: Alerts escalated at least once for want of acknowledgement.
    """

    since: float
    until: float
    total: int
    by_behaviour: dict[str, int]
    by_camera: dict[str, int]
    by_colour: dict[str, int]
    by_hour: list[int]
    acknowledge: Percentiles
    settle: Percentiles
    false_alarms_by_behaviour: dict[str, tuple[int, int]]
    false_alarms_by_camera: dict[str, tuple[int, int]]
    false_alarm_reasons: dict[str, int]
    uptime: list[CameraUptime]
    open_at_handover: list[StoredEvent] = field(default_factory=list)
    escalated: int = 0


def _paged(fetch: Callable[[str | None], EventPage]) -> Iterator[list[StoredEvent]]:
    """Every page of a listing (``fetch`` takes the cursor)."""
    cursor: str | None = None
    while True:
        page = fetch(cursor)
        yield page.items
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


def _events_in(store: EventStore, since: float, until: float) -> Iterator[list[StoredEvent]]:
    """Every event started in the window, page by page."""
    return _paged(lambda cursor: store.list_events(since=since, until=until, cursor=cursor, limit=_PAGE))


def _carried_over(store: EventStore, since: float, until: float) -> Iterator[list[StoredEvent]]:
    """Events started before the window that bear on it, page by page: alerts still open or settled only
    after its end, camera faults not ended by its start."""
    seen: set[str] = set()
    open_before = _paged(
        lambda cursor: store.list_events(states=tuple(_OPEN_STATES), until=since, cursor=cursor, limit=_PAGE)
    )
    settled_after = _paged(
        lambda cursor: store.list_events(
            states=tuple(set(AlertState) - _OPEN_STATES),
            until=since,
            updated_after=until,  # a superset, by its index: _as_at reads the state at ``until``
            cursor=cursor,
            limit=_PAGE,
        )
    )
    faults_into = _paged(
        lambda cursor: store.list_events(
            behaviours=(Behaviour.CAMERA_FAULT,), until=since, ended_after=since, cursor=cursor, limit=_PAGE
        )
    )
    for listing in (open_before, settled_after, faults_into):
        for page in listing:
            fresh = [event for event in page if event.id not in seen]
            seen.update(event.id for event in fresh)
            yield fresh


def _down_s(fault: StoredEvent, since: float, until: float) -> float:
    """How much of the window a camera fault covers (to the window's end while it is not over)."""
    end = min(until, fault.ended_at if fault.ended_at is not None else until)
    return max(0.0, end - max(since, fault.started_at))


def _percentile(ordered: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile of sorted values, ``None`` when there are none."""
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def _percentiles(durations: list[float], within: list[bool] | None = None) -> Percentiles:
    ordered = sorted(durations)
    share = (sum(within) / len(within)) if within else None
    return Percentiles(len(ordered), _percentile(ordered, 0.5), _percentile(ordered, 0.9), share)


def _reason_of(note: str) -> str:
    """The listed reason a false-alarm note starts with (``"reflection: sun on the drum"``), else ``other``."""
    head = note.split(":", 1)[0].strip().lower()
    return head if head in FALSE_ALARM_REASONS else "other"


def _is_changed_after(event: StoredEvent, until: float) -> bool:
    """Whether ``_as_at`` needs the alert's audit trail: its state changed after ``until``."""
    return event.state_changed_at > until


def _as_at(event: StoredEvent, trail: Sequence[AuditEntry], until: float) -> StoredEvent | None:
    """``event`` with its state and colour at ``until``, when it was open then; ``None`` when it was not.

    An alert whose state has not changed since ``until`` is as it is now; one changed
    later is read back from its audit trail (its last line at or before ``until``).
    """
    if not _is_changed_after(event, until):
        return event if event.state in _OPEN_STATES else None
    before = [entry for entry in trail if entry.at <= until]
    if not before or before[-1].to_state not in _OPEN_STATES:
        return None  # stored after the window's end, or already settled by then
    return replace(event, state=before[-1].to_state, severity=before[-1].severity)


def _with_trails(
    store: EventStore, pages: Iterable[list[StoredEvent]], until: float, *, is_settled_needed: bool
) -> Iterator[tuple[StoredEvent, list[AuditEntry]]]:
    """Each event of ``pages`` with the audit trail the report needs of it (empty where none is), one query a page.

    The trail is read for alerts changed after ``until`` (``_as_at``) and, when
    ``is_settled_needed``, for settled ones (how and when they were settled).
    """
    for page in pages:
        trails = store.audit_trails(
            event.id
            for event in page
            if _is_changed_after(event, until) or (is_settled_needed and event.state not in _OPEN_STATES)
        )
        for event in page:
            yield event, trails.get(event.id, [])


def _settled_at(trail: Sequence[AuditEntry]) -> tuple[float, str] | None:
    """When and how the alert was settled (resolved or marked a false alarm), from its audit trail."""
    for entry in trail:
        if entry.action in _SETTLING_ACTIONS:
            return entry.at, entry.note
    return None


def build_figures(store: EventStore, config: AnjianConfig, since: float, until: float) -> ReportFigures:
    """Compute a report's figures for alerts started in ``[since, until)``.

    Camera faults that started earlier and were still going at ``since`` count toward
    downtime, and alerts raised earlier and still open are listed open at hand-over.

    Args:
        store: The event store (SQLite or PostgreSQL).
        config: The site: its cameras (for uptime) and SLA deadlines.
        since: Window start, epoch seconds.
        until: Window end, epoch seconds; after ``since``.

    Raises:
        ValueError: The window is empty, reversed, or longer than ``MAX_WINDOW_DAYS``.
    """
    if not until > since:
        raise ValueError(f"the report window must end after it starts, got {since} .. {until}")
    days = (until - since) / 86_400
    if days > MAX_WINDOW_DAYS:
        raise ValueError(
            f"the report window is {days:,.0f} days long; at most {MAX_WINDOW_DAYS} are allowed "
            "(is there a typo in a year of the start or end?)"
        )
    hours = max(1, math.ceil((until - since) / 3600))
    by_behaviour: Counter[str] = Counter()
    by_camera: Counter[str] = Counter()
    by_colour: Counter[str] = Counter()
    by_hour = [0] * hours
    ack_s: list[float] = []
    ack_within: list[bool] = []
    settle_s: list[float] = []
    fa_behaviour: Counter[str] = Counter()
    fa_camera: Counter[str] = Counter()
    reasons: Counter[str] = Counter({reason: 0 for reason in FALSE_ALARM_REASONS})
    down: defaultdict[str, float] = defaultdict(float)
    open_items: list[StoredEvent] = []
    escalated = 0
    total = 0
    for event, trail in _with_trails(store, _events_in(store, since, until), until, is_settled_needed=True):
        total += 1
        behaviour = event.behaviour.value
        by_behaviour[behaviour] += 1
        by_camera[event.camera_id] += 1
        by_colour[event.detected_severity.value] += 1
        by_hour[min(hours - 1, int((event.started_at - since) // 3600))] += 1
        escalated += event.escalations > 0
        if event.behaviour is Behaviour.CAMERA_FAULT:
            down[event.camera_id] += _down_s(event, since, until)
        if event.acknowledged_at is not None:
            waited = max(0.0, event.acknowledged_at - event.created_at)
            ack_s.append(waited)
            ack_within.append(waited <= config.sla.deadline_s(event.detected_severity.value))
        settling = trail if event.state not in _OPEN_STATES else []
        settled = _settled_at(settling)
        if settled is not None:
            settle_s.append(max(0.0, settled[0] - event.created_at))
        if any(entry.action == "false_alarm" for entry in settling):
            fa_behaviour[behaviour] += 1
            fa_camera[event.camera_id] += 1
            reasons[_reason_of(settled[1] if settled else "")] += 1
        handed_over = _as_at(event, trail, until)
        if handed_over is not None:
            open_items.append(handed_over)
    for event, trail in _with_trails(
        store, _carried_over(store, since, until), until, is_settled_needed=False
    ):
        if event.behaviour is Behaviour.CAMERA_FAULT:
            down[event.camera_id] += _down_s(event, since, until)
        handed_over = _as_at(event, trail, until)
        if handed_over is not None:
            open_items.append(handed_over)
    window = until - since
    uptime = [
        CameraUptime(camera.id, down[camera.id], max(0.0, 1.0 - down[camera.id] / window))
        for _, camera in config.cameras()
    ]
    rank = {"red": 0, "orange": 1, "yellow": 2, "blue": 3}
    open_items.sort(key=lambda e: (e.state is not AlertState.RAISED, rank[e.severity.value], e.created_at))
    return ReportFigures(
        since=since,
        until=until,
        total=total,
        by_behaviour=dict(by_behaviour.most_common()),
        by_camera=dict(by_camera.most_common()),
        by_colour={c: by_colour[c] for c in rank},
        by_hour=by_hour,
        acknowledge=_percentiles(ack_s, ack_within),
        settle=_percentiles(settle_s),
        false_alarms_by_behaviour={b: (fa_behaviour[b], n) for b, n in by_behaviour.most_common()},
        false_alarms_by_camera={c: (fa_camera[c], n) for c, n in by_camera.most_common()},
        false_alarm_reasons=dict(reasons),
        uptime=uptime,
        open_at_handover=open_items,
        escalated=escalated,
    )
