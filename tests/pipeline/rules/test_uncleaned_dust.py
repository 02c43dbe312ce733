"""Uncleaned dust: a dust zone scored against its clean image at the end of cleaning windows, or a dust class."""

from __future__ import annotations

import numpy as np

from anjian.models.detections import Detections
from anjian.pipeline.config import ReferenceConfig, ScheduleConfig, ScheduleWindowConfig, UncleanedDustConfig
from anjian.pipeline.event import Behaviour, RiskLevel
from anjian.pipeline.incidents import IncidentUpdate
from anjian.pipeline.rules.uncleaned_dust import UncleanedDustRule
from tests.pipeline.scripted import T0, dets, environment, frame, kinds

DUST_ZONE = {
    "id": "station-3",
    "name": "polishing station 3",
    "kind": "dust",
    "polygon": [(0.5, 0.5), (1.0, 0.5), (1.0, 1.0), (0.5, 1.0)],
}
BACKGROUND = np.random.default_rng(1).integers(120, 220, (100, 200, 3), dtype=np.uint8)
# T0 is 22:13:20 UTC: cleaning windows end at 22:20 (T0 + 400) and 22:40 (T0 + 1600).
CLEANING = ScheduleConfig(
    windows=[
        ScheduleWindowConfig(start="22:00", end="22:20"),
        ScheduleWindowConfig(start="22:30", end="22:40"),
    ]
)


def _image(*, darkening: int = 0) -> np.ndarray:
    """The floor; ``darkening`` grey levels of dust over the zone's left 80 %."""
    image = BACKGROUND.copy()
    if darkening:
        image[50:100, 100:180] = np.clip(image[50:100, 100:180].astype(np.int16) - darkening, 0, 255)
    return image


def _rule(**overrides: object) -> UncleanedDustRule:
    config = UncleanedDustConfig(
        reference=ReferenceConfig(learn_after_s=3, width_px=100, adapt_rate=0), clear_after_s=60, **overrides
    )
    return UncleanedDustRule(config, environment(zones=[DUST_ZONE], schedules={"cleaning": CLEANING}))


def _run(
    rule: UncleanedDustRule, script: list[tuple[float, np.ndarray, Detections]]
) -> list[tuple[float, IncidentUpdate]]:
    return [
        (t, u) for i, (t, image, d) in enumerate(script) for u in rule.process(frame(T0 + t, i, image), d)
    ]


def _every(step_s: float, until_s: float, darkening_at: tuple[float, float] = (1e9, 1e9)) -> list:
    """Frames every ``step_s`` up to ``until_s``, the zone dusty during ``darkening_at``."""
    return [
        (t, _image(darkening=60 if darkening_at[0] <= t < darkening_at[1] else 0), dets())
        for t in np.arange(0, until_s, step_s)
    ]


def test_dirty_at_the_end_of_the_cleaning_window_raises_with_zone_and_score_then_resolves() -> None:
    rule = _rule(cleaning_schedule="cleaning")
    updates = _run(rule, _every(20, 2200, darkening_at=(800, 1800)))
    assert [(t, u.kind.value) for t, u in updates] == [
        (1600, "opened"),
        (1840, "closed"),
    ]  # last dirty at 1780
    event = updates[0][1].event
    assert event.behaviour is Behaviour.UNCLEANED_DUST and event.severity is RiskLevel.YELLOW
    assert event.zone_id == "station-3"
    assert 0.6 < event.confidence < 0.95  # 80 % of the zone darkened
    assert "polishing station 3" in event.message and f"score {event.confidence:.2f}" in event.message


def test_dust_that_appears_and_is_cleaned_between_checks_raises_nothing() -> None:
    rule = _rule(cleaning_schedule="cleaning")
    assert _run(rule, _every(20, 2200, darkening_at=(800, 1400))) == []


def test_without_a_cleaning_schedule_the_zone_is_checked_periodically() -> None:
    rule = _rule(check_interval_s=60)
    updates = _run(rule, _every(10, 400, darkening_at=(100, 1e9)))
    # Learned at 20 s (still for 3 s), checked at 30, 90, 150: the dust from 100 s is found at 150.
    assert kinds([(int(t), u) for t, u in updates]) == [(150, "opened")]


def test_check_is_deferred_while_people_hide_the_zone() -> None:
    rule = _rule(check_interval_s=60)
    standing = dets(("person", (95, 20, 200, 100)))
    script = _every(10, 60) + [(t, _image(darkening=60), standing) for t in range(60, 200, 10)]
    assert _run(rule, script) == []


def test_tick_runs_the_window_end_check_on_the_last_frame() -> None:
    rule = _rule(cleaning_schedule="cleaning")
    _run(rule, _every(20, 420))  # learned at the 22:20 window end
    rule.process(frame(T0 + 800, 99, _image(darkening=60)), dets())
    [update] = rule.tick(T0 + 1601)
    assert update.kind.value == "opened"


def test_dust_class_raises_without_waiting_for_a_check() -> None:
    rule = _rule(is_reference=False, k=2, n=3)
    in_zone, elsewhere = dets(("dust", (120, 60, 140, 80))), dets(("dust", (10, 10, 30, 30)))
    updates = _run(rule, [(t, _image(), in_zone if t < 3 else elsewhere) for t in range(70)])
    assert kinds([(int(t), u) for t, u in updates]) == [(1, "opened"), (62, "closed")]


def _creeping(step_s: float, until_s: float, *, spread_every_s: float, brighten_per_s: float = 0.0) -> list:
    """The floor with dust spreading over one more tenth of the zone every ``spread_every_s``.

    ``brighten_per_s`` adds a slow, even lighting drift to the whole picture as well.
    """
    script = []
    for t in np.arange(0, until_s, step_s):
        image = BACKGROUND.astype(np.float32) + brighten_per_s * t
        tenths = min(10, int(t // spread_every_s))
        if tenths:
            image[50:100, 100 : 100 + 10 * tenths] -= 60
        script.append((t, np.clip(image, 0, 255).astype(np.uint8), dets()))
    return script


def test_without_a_cleaning_schedule_dust_creeping_in_between_checks_is_not_learned_as_clean() -> None:
    # Each check finds a tenth more of the zone dusty than the one before: under half the threshold,
    # so each alone looks clean; the anchor (the floor first learned clean) keeps them adding up.
    rule = _rule(check_interval_s=60)
    updates = _run(rule, _creeping(10, 1000, spread_every_s=60))
    [(t, update)] = [(t, u) for t, u in updates if u.kind.value == "opened"]
    assert update.event.behaviour is Behaviour.UNCLEANED_DUST and t < 600


def test_without_a_cleaning_schedule_slow_lighting_drift_is_followed_not_raised() -> None:
    rule = _rule(check_interval_s=60)
    # 36 grey levels brighter over the hour, far past pixel_threshold: only the refreshes keep it clean.
    assert _run(rule, _creeping(10, 3600, spread_every_s=1e9, brighten_per_s=0.01)) == []
