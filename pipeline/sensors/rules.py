"""The alert rules of one sensor: limits in four colours, rate of rise, and the sensor's own faults.

``SensorRules`` takes a sensor's readings in time order and returns the event
revisions to publish, through three ``IncidentBook``s keyed by sensor (one incident
per sensor and kind, updated while it lasts, ended on recovery):

* ``sensor_threshold``: a colour *holds* once the reading has been at or beyond
  its limit (``direction: high``: ``>=``, ``low``: ``<=``) for ``min_duration_s`` and
  still is, and lets go only once the reading is ``hysteresis`` units back inside; a
  reading that dips into that band keeps the clock running, so a value wavering at a
  limit raises one incident, while one spike followed by readings in the band raises
  none. A sensor that reports only on change holds ``min_duration_s`` after the
  crossing, at a tick, not at its next message. The incident takes the highest colour
  held (published at once when it rises, never lowered while it lasts) and ends
  ``clear_after_s`` after no colour holds or times (a colour timing again keeps an
  open incident, one resumed after a restart included). It carries the latest value,
  the peak and the limit of its colour (``SensorFacts``).
* ``sensor_rate_of_rise``: the rise per minute over the last ``window_s`` at or above
  ``per_minute``, measured from the value the sensor held when the window began (its
  last reading before it, for a sensor that reports rarely or on change; at least half
  a window of history); value and peak in units per minute.
* ``sensor_fault``, one incident per fault kind: ``stale`` (no reading for
  ``stale_after_s`` of this machine's clock since one arrived, found by ``tick``: a
  sender's clock running behind is no silence; one resumed after a restart lasts until
  a reading comes), ``flatline`` (not moved more than
  ``flatline_tolerance`` for ``flatline_after_s``), ``out_of_range`` (outside the
  physical ``min``/``max``; such a reading is not used for limits or rate: a broken
  transmitter reading 65535 is a fault, not a red gas alarm).

Limits, rate and the other faults run on the readings' own times (``at``); ``tick`` maps
this machine's clock onto them (the last reading's time plus what has passed since it
arrived), so a sender's clock a few minutes off neither ends nor confirms anything early.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from anjian.pipeline.event import Behaviour, Event, RiskLevel, SensorFacts
from anjian.pipeline.incidents import EventContext, IncidentBook, IncidentUpdate
from anjian.pipeline.messages import text
from anjian.pipeline.sensors.config import SensorConfig, ThresholdsConfig

__all__ = ["SensorRules"]

_KEY = "reading"

_RATE_WINDOW_POINTS = 1000
"""Most points kept per rate-of-rise window: a sensor publishing 1,000 times a second would otherwise
keep 3.6 million in an hour's window."""


@dataclass(slots=True)
class _Hold:
    """One colour's limit: beyond it since when, and whether it holds."""

    colour: RiskLevel
    limit: float
    since: float | None = None
    is_held: bool = False


class _Thresholds:
    """The four-colour limits with hysteresis and minimum duration (see the module docstring)."""

    def __init__(self, config: ThresholdsConfig) -> None:
        self.config = config
        self.is_high = config.direction == "high"
        self.holds = [_Hold(colour, limit) for colour, limit in config.limits()]

    def observe(self, value: float, at: float) -> _Hold | None:
        """Update every colour with ``value``; return the highest colour holding, if any."""
        band = self.config.hysteresis
        for hold in self.holds:
            is_beyond = value >= hold.limit if self.is_high else value <= hold.limit
            is_back = value < hold.limit - band if self.is_high else value > hold.limit + band
            if is_beyond and hold.since is None:
                hold.since = at
            elif is_back:
                hold.since, hold.is_held = None, False
            if is_beyond and hold.since is not None and at - hold.since >= self.config.min_duration_s:
                hold.is_held = True  # still beyond once the time is up: a lone spike never holds
        held = [hold for hold in self.holds if hold.is_held]
        return held[-1] if held else None

    def is_timing(self) -> bool:
        """True while a colour is beyond its limit and not yet held (its ``min_duration_s`` is running)."""
        return any(hold.since is not None and not hold.is_held for hold in self.holds)

    def first_beyond_at(self) -> float | None:
        """When the reading first went beyond the lowest limit still timing or held."""
        times = [hold.since for hold in self.holds if hold.since is not None]
        return min(times) if times else None


class SensorRules:
    """Limits, rate of rise and faults of one sensor, as incidents (see the module docstring).

    Call ``observe`` with each reading in time order and ``tick`` about once a second
    (stale is found without readings); publish what they return; ``close`` when the
    sensor is removed or the runner stops.

    Example:
        >>> rules = SensorRules(sensor_config, EventContext("site", "freezing-1", "nh3-1", ""))
        >>> for update in rules.observe(62.0, at=time.time()):
        ...     sink.publish(update.event)
    """

    def __init__(self, config: SensorConfig, context: EventContext, *, started_at: float) -> None:
        """Build the books of ``config``'s sensor.

        Args:
            config: The sensor.
            context: Site, workshop and (as ``camera_id``) the sensor id of its events.
            started_at: When watching began: ``stale`` counts from here until a first reading.
        """
        self.config = config
        self._language = context.language
        self._thresholds = _Thresholds(config.thresholds) if config.thresholds is not None else None

        def book(behaviour: Behaviour, severity: str, clear_after_s: float) -> IncidentBook:
            return IncidentBook(
                behaviour=behaviour,
                severity=RiskLevel(severity),
                clear_after_s=clear_after_s,
                update_interval_s=config.update_interval_s,
                context=context,
            )

        thresholds, rate, faults = config.thresholds, config.rate_of_rise, config.faults
        self._threshold_book = (
            None
            if thresholds is None
            else book(Behaviour.SENSOR_THRESHOLD, thresholds.limits()[0][0], thresholds.clear_after_s)
        )
        self._rate_book = (
            None if rate is None else book(Behaviour.SENSOR_RATE_OF_RISE, rate.severity, rate.clear_after_s)
        )
        self._fault_book = book(Behaviour.SENSOR_FAULT, faults.severity, faults.clear_after_s)
        self._window: deque[tuple[float, float]] = deque()
        self._last_at = started_at
        self._last_received_at = started_at
        self._last_value: float | None = None  # the latest reading within the physical range
        self._has_reading = False
        self._peak: dict[str, float] = {}
        self._peak_hold: _Hold | None = None
        self._flat_value: float | None = None
        self._flat_since: float | None = None
        # Whether the latest reading said "back to normal": none has yet, so a tick never ends an
        # incident resumed after a restart before a reading says so.
        self._is_threshold_clear = False
        self._is_rate_clear = False

    @property
    def last_reading_at(self) -> float | None:
        """When the latest reading was measured, or ``None`` before the first."""
        return self._last_at if self._has_reading else None

    def is_out_of_order(self, at: float) -> bool:
        """True when a reading at ``at`` would come before the latest one."""
        return self._has_reading and at < self._last_at

    def is_repeat(self, at: float) -> bool:
        """True when a reading at ``at`` has the latest one's time (a sender retrying what it sent)."""
        return self._has_reading and at == self._last_at

    def observe(self, value: float, at: float, *, received_at: float | None = None) -> list[IncidentUpdate]:
        """Feed one reading (in time order); return the revisions to publish.

        Args:
            value: The reading, in the sensor's unit.
            at: When it was measured, epoch seconds (the sender's clock).
            received_at: When it arrived, by this machine's clock (default ``at``): ``stale``
                and ``tick`` measure from here.
        """
        received = at if received_at is None else received_at
        self._last_at, self._last_received_at, self._has_reading = at, received, True
        updates = [self._observe_stale(received)]
        faults = self.config.faults
        low, high = faults.min, faults.max
        is_out = (low is not None and value < low) or (high is not None and value > high)
        self._last_value = None if is_out else value
        if faults.enabled:
            updates.append(self._observe_out_of_range(value, at, is_out=is_out))
        if not is_out:
            updates.append(self._observe_threshold(value, at))
            updates.append(self._observe_rate(value, at))
            updates.append(self._observe_flatline(value, at))
        return [update for update in updates if update is not None]

    def tick(self, now: float) -> list[IncidentUpdate]:
        """Look for a stale sensor, and end incidents whose last reading was back to normal, at ``now``.

        Call about once a second: a sensor that reports only on change (or rarely)
        recovers ``clear_after_s`` after its normal reading, not at its next one.
        Silence is not recovery: an incident whose last reading was still beyond its
        limit stays open (and the sensor goes stale).
        """
        updates = [self._observe_stale(now)]
        at = self._reading_time(now)
        books = [(self._rate_book, self._is_rate_clear)]
        is_timing = self._thresholds is not None and self._thresholds.is_timing()
        if is_timing and self._last_value is not None and not self._is_silent(now):
            # The latest reading still stands: a colour times on from it (senders that report on change).
            updates.append(self._observe_threshold(self._last_value, at))
        else:
            books.append((self._threshold_book, self._is_threshold_clear))
        for book, is_clear in books:
            if book is not None and is_clear and book.is_open(_KEY):
                updates.append(book.observe(_KEY, now=at, is_confirmed=False, is_present=False))
        return [update for update in updates if update is not None]

    def _reading_time(self, now: float) -> float:
        """This machine's ``now`` on the readings' clock: the latest reading's time plus what has passed since it arrived."""
        if not self._has_reading:
            return now
        return self._last_at + max(0.0, now - self._last_received_at)

    def _is_silent(self, now: float) -> bool:
        """True once no reading has arrived for ``stale_after_s`` (whether or not faults are reported)."""
        return now - self._last_received_at >= self.config.faults.stale_after_s

    def close(self, now: float) -> list[IncidentUpdate]:
        """End every open incident of the sensor (the sensor is removed or the runner stops)."""
        books = [self._threshold_book, self._rate_book, self._fault_book]
        return [update for book in books if book is not None for update in book.close_all(now)]

    def amend(self, event_id: str, **changes: object) -> Event | None:
        """One more revision of the sensor's incident ``event_id`` carrying ``changes`` (its clip), or ``None``."""
        for book in (self._threshold_book, self._rate_book, self._fault_book):
            event = None if book is None else book.amend(event_id, **changes)
            if event is not None:
                return event
        return None

    def open_kinds(self) -> list[str]:
        """What is open now: ``threshold``, ``rate``, and the fault kinds (for tests and the API)."""
        kinds = []
        if self._threshold_book is not None and self._threshold_book.open_keys():
            kinds.append("threshold")
        if self._rate_book is not None and self._rate_book.open_keys():
            kinds.append("rate")
        return kinds + self._fault_book.open_keys()

    # ------------------------------------------------------------------- the rules

    def _report(
        self,
        book: IncidentBook,
        kind: str,
        reading: tuple[float | None, float | None, float | None],
        *,
        now: float,
        is_on: bool,
        is_present: bool | None = None,
        key: str | None = None,
        started_at: float | None = None,
        severity: RiskLevel | None = None,
        **message_values: object,
    ) -> IncidentUpdate | None:
        """Feed ``book``'s incident one decision of the ``kind`` rule: on (confirmed and present) or not.

        ``is_present`` (default ``is_on``) keeps an open incident alive without confirming it.

        ``reading`` is the value, peak and limit the event carries (``SensorFacts``);
        the sentence is the text ``sensor.{kind}``, filled with them, the sensor's
        names and unit, and ``message_values``. ``key`` defaults to ``kind``.
        """
        config = self.config
        value, peak, limit = reading
        facts = SensorFacts(
            sensor_id=config.id,
            quantity=config.quantity,
            unit=config.unit,
            kind=kind,
            value=value,
            peak=peak,
            threshold=limit,
            camera_ids=tuple(config.camera_ids),
        )
        names = {"sensor": config.display_name, "quantity": config.quantity, "unit": config.unit}
        return book.observe(
            kind if key is None else key,
            now=now,
            is_confirmed=is_on,
            is_present=is_on if is_present is None else is_present,
            confidence=1.0,
            started_at=started_at,
            severity=severity,
            message=text(
                f"sensor.{kind}",
                self._language,
                **names,
                value=value,
                peak=peak,
                limit=limit,
                **message_values,
            ),
            sensor=facts,
        )

    def _worst(
        self,
        kind: str,
        value: float,
        *,
        is_open: bool,
        is_higher_worse: bool = True,
        book: IncidentBook | None = None,
        key: str = _KEY,
    ) -> float:
        """The worst value of the ``kind`` incident so far, ``value`` included (a new incident starts afresh).

        An incident resumed after a restart starts from the peak its last revision carried.
        """
        previous = self._peak.get(kind) if is_open else None
        if previous is None and is_open and book is not None:
            resumed = book.event_of(key)
            previous = None if resumed is None or resumed.sensor is None else resumed.sensor.peak
        worst = (
            value if previous is None else (max(previous, value) if is_higher_worse else min(previous, value))
        )
        self._peak[kind] = worst
        return worst

    def _observe_threshold(self, value: float, at: float) -> IncidentUpdate | None:
        if self._thresholds is None or self._threshold_book is None:
            return None
        book = self._threshold_book
        held = self._thresholds.observe(value, at)
        is_open = book.is_open(_KEY)
        if not is_open:
            self._peak_hold = None
        if held is not None and (self._peak_hold is None or held.colour.rank > self._peak_hold.colour.rank):
            self._peak_hold = held
        direction = self._thresholds.config.direction
        peak = self._worst(direction, value, is_open=is_open, is_higher_worse=direction == "high", book=book)
        hold = self._peak_hold
        # An open incident whose reading is beyond a limit again (timing, not yet held: a re-crossing,
        # or the first readings after a restart) is not over.
        is_timing = is_open and self._thresholds.first_beyond_at() is not None
        self._is_threshold_clear = held is None and not is_timing
        if hold is None:
            return book.observe(_KEY, now=at, is_confirmed=False, is_present=is_timing)
        return self._report(
            book,
            direction,
            (value, peak, hold.limit),
            key=_KEY,
            now=at,
            is_on=held is not None,
            is_present=held is not None or is_timing,
            started_at=self._thresholds.first_beyond_at(),
            severity=held.colour if held is not None else None,
            colour=text(f"colour.{hold.colour.value}", self._language),
        )

    def _observe_rate(self, value: float, at: float) -> IncidentUpdate | None:
        rate_config = self.config.rate_of_rise
        if rate_config is None or self._rate_book is None:
            return None
        window = self._window
        if not window or at - window[-1][0] >= rate_config.window_s / _RATE_WINDOW_POINTS:
            window.append((at, value))  # the rise is measured from the window's first point to this one
        while len(window) > 1 and at - window[1][0] >= rate_config.window_s:
            window.popleft()  # keeps the latest point at or before the window's start: the value held then
        first_at, first_value = window[0]
        if at - first_at < rate_config.window_s / 2:
            return None  # not enough history yet
        first_at = max(first_at, at - rate_config.window_s)
        per_minute = (value - first_value) / (at - first_at) * 60.0
        is_rising = per_minute >= rate_config.per_minute
        self._is_rate_clear = not is_rising
        is_open = self._rate_book.is_open(_KEY)
        if not is_rising and not is_open:
            return None
        peak = self._worst("rate", per_minute, is_open=is_open, book=self._rate_book)
        return self._report(
            self._rate_book,
            "rate",
            (per_minute, peak, rate_config.per_minute),
            key=_KEY,
            now=at,
            is_on=is_rising,
            started_at=first_at,
        )

    def _observe_flatline(self, value: float, at: float) -> IncidentUpdate | None:
        faults = self.config.faults
        if not faults.enabled or faults.flatline_after_s is None:
            return None
        if self._flat_value is None or abs(value - self._flat_value) > faults.flatline_tolerance:
            self._flat_value, self._flat_since = value, at
        since = self._flat_since if self._flat_since is not None else at
        flat_for_s = at - since
        is_flat = flat_for_s >= faults.flatline_after_s
        return self._report(
            self._fault_book,
            "flatline",
            (value, value, None),
            now=at,
            is_on=is_flat,
            started_at=since,
            seconds=flat_for_s,
        )

    def _observe_out_of_range(self, value: float, at: float, *, is_out: bool) -> IncidentUpdate | None:
        faults = self.config.faults
        if faults.min is None and faults.max is None:
            return None
        is_open = self._fault_book.is_open("out_of_range")
        if not is_out and not is_open:
            return None
        low = faults.min if faults.min is not None else "-inf"
        high = faults.max if faults.max is not None else "+inf"
        is_below = faults.min is not None and value < faults.min
        limit = faults.min if is_below else faults.max
        peak = self._worst(
            "out_of_range",
            value,
            is_open=is_open,
            is_higher_worse=not is_below,
            book=self._fault_book,
            key="out_of_range",
        )
        return self._report(
            self._fault_book, "out_of_range", (value, peak, limit), now=at, is_on=is_out, low=low, high=high
        )

    def _observe_stale(self, now: float) -> IncidentUpdate | None:
        faults = self.config.faults
        if not faults.enabled:
            return None
        silent_s = now - self._last_received_at
        is_open = self._fault_book.is_open("stale")
        # Resumed after a restart: stale until a reading comes, not ``clear_after_s`` after the start.
        is_stale = silent_s >= faults.stale_after_s or (is_open and not self._has_reading)
        if not is_stale and not is_open:
            return None
        return self._report(
            self._fault_book,
            "stale",
            (None, None, None),
            now=now,
            is_on=is_stale,
            started_at=self._last_received_at,
            seconds=silent_s,
        )
