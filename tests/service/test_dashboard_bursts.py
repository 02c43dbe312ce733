"""The control room through a burst of changes (headless Chromium, Playwright).

Bursts are ordinary in a plant: the escalator raises every overdue alert in one round, an operator
bulk-closes, the live feed replays an hour after a reconnect. The page redrew the whole queue for
every live message, rebuilding every row: a burst of 1,000 changes froze the wall screen for
seconds (minutes where rows do not fold), with no clicks, keys or tones meanwhile. Live messages
are now taken in as they come (a tone for each new or escalated alert, as before) and drawn
together, and a drawing writes only the rows that changed.

Nothing here times the page (the suite runs on a loaded machine): the drawings are counted by a
``MutationObserver`` on the queue, and the rows built by the elements it sees added.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

from anjian.pipeline.event import Behaviour, Event, RiskLevel
from anjian.service.composition import ServiceParts
from anjian.service.config import SlaConfig
from tests.factories import make_event
from tests.service.server import ServerThread
from tests.service.test_dashboard import TIMEOUT_MS

pytestmark = pytest.mark.slow

T0 = 1_700_000_000.0
BURST = 200

# Counts, from now on, the tasks that changed the queue (a MutationObserver is called once per task, or
# per listener call, that changed what it watches: each drawing, however many rows it touches) and the
# rows built (an <li> seen for the first time; a row moved or written again is not built).
_COUNT_DRAWINGS = """() => {
  const feed = document.getElementById("feed");
  const seen = new WeakSet(feed.children);
  window.feedChanges = 0;
  window.rowsBuilt = 0;
  new MutationObserver((records) => {
    window.feedChanges += 1;
    for (const record of records) {
      for (const node of record.addedNodes) {
        if (node.nodeName === "LI" && !seen.has(node)) { seen.add(node); window.rowsBuilt += 1; }
      }
    }
  }).observe(feed, { childList: true, subtree: true, attributes: true, characterData: true });
}"""


@pytest.fixture
def page(parts: ServiceParts, serve: Callable[..., ServerThread], browser: Any) -> Iterator[Any]:
    """The dashboard of a server over ``parts``, loaded with an operator's token and live."""
    server = serve()
    operator = parts.store.tokens.create("duty officer", "operator")[1]
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    page.goto(f"{server.base_url}/#token={operator}")
    pytest.importorskip("playwright.sync_api").expect(page.locator("#live-status")).to_have_text(
        "live", timeout=TIMEOUT_MS
    )
    yield page
    page.close()


def _alerts(
    count: int, started_at: float, severities: Sequence[RiskLevel], *, camera: str = "line", **fields: Any
) -> list[Event]:
    """``count`` alerts without snapshots on cameras ``{camera}-{i}``, each seen for a second, started a second
    apart from ``started_at``, their severities taken from ``severities`` in turn."""
    return [
        make_event(
            camera_id=f"{camera}-{i}",
            severity=severities[i % len(severities)],
            started_at=started_at + i,
            last_seen_at=started_at + i + 1,
            snapshot_jpeg=None,
            **fields,
        )
        for i in range(count)
    ]


def _counted(page: Any) -> tuple[int, int, int]:
    """(tasks that changed the queue, rows built, tones played) so far."""
    changes, built = page.evaluate("() => [window.feedChanges, window.rowsBuilt]")
    return changes, built, int(page.get_attribute("body", "data-announced") or "0")


def _rows(page: Any) -> list[list[str]]:
    """Each row of the queue as [alert id, fold count, state shown, colour class]."""
    rows: list[list[str]] = page.locator(".event-row").evaluate_all(
        "rs => rs.map(r => [r.dataset.id, r.dataset.count, r.querySelector('.state').textContent,"
        " [...r.classList].find(c => c.startsWith('sev-'))])"
    )
    return rows


def test_a_burst_of_new_and_escalated_alerts_is_drawn_together_with_a_tone_for_each(
    parts: ServiceParts, page: Any, expect: Any
) -> None:
    store = parts.store
    waiting = _alerts(20, T0, [RiskLevel.YELLOW], camera="yard", behaviour=Behaviour.SMOKING)
    store.upsert_events([(event, None) for event in waiting])
    expect(page.locator(".event-row")).to_have_count(20, timeout=TIMEOUT_MS)
    page.evaluate(_COUNT_DRAWINGS)

    # One transaction: the feed sends BURST messages at once, as after an escalation round or a replay.
    burst = _alerts(BURST, T0 + 100, [RiskLevel.ORANGE])
    store.upsert_events([(event, None) for event in burst])
    expect(page.locator("#count-orange")).to_have_text(str(BURST), timeout=TIMEOUT_MS)
    changes, built, tones = _counted(page)
    assert tones == BURST, "one tone for each new orange alert, as before"
    assert built == BURST, "each new row is built once"
    assert changes <= BURST // 10, f"{BURST} messages drawn in {changes} drawings"

    time.sleep(0.01)  # past the (tiny) deadline below
    escalated = store.escalate_overdue(SlaConfig(orange_s=0.001))
    assert len(escalated) == BURST
    expect(page.locator("#count-red")).to_have_text(str(BURST), timeout=TIMEOUT_MS)
    expect(page.locator(".event-row.sev-red")).to_have_count(BURST)
    changes_after, built_after, tones_after = _counted(page)
    assert tones_after - tones == BURST, "one tone for each alert escalated to red, as before"
    assert built_after == built, "escalated rows are written again in place, not built anew"
    assert changes_after - changes <= BURST // 10


def test_rows_patched_through_mixed_changes_match_a_fresh_drawing(
    parts: ServiceParts, page: Any, expect: Any
) -> None:
    """Rows moved down (acknowledged), further down (resolved), folded, new: the queue drawn by patching
    the rows of the previous drawing is the one a reload draws."""
    store = parts.store
    raised = _alerts(60, T0, [RiskLevel.RED, RiskLevel.ORANGE, RiskLevel.YELLOW])
    store.upsert_events([(event, None) for event in raised])
    expect(page.locator(".event-row")).to_have_count(60, timeout=TIMEOUT_MS)
    page.evaluate(_COUNT_DRAWINGS)

    for event in raised[::4]:
        store.transition(event.id, "acknowledge", actor="other screen")
    for event in raised[::8]:
        store.transition(event.id, "resolve", actor="other screen", note="dealt with")
    repeat = make_event(  # folds under raised[7] (orange too, started later: it stays the row's head)
        camera_id="line-7",
        severity=RiskLevel.ORANGE,
        started_at=T0 + 500,
        last_seen_at=T0 + 501,
        snapshot_jpeg=None,
    )
    newcomer = make_event(camera_id="line-99", started_at=T0 + 600, last_seen_at=T0 + 601, snapshot_jpeg=None)
    store.upsert_events([(repeat, None), (newcomer, None)])
    expect(page.locator(f".event-row[data-id='{newcomer.id}']")).to_have_count(1, timeout=TIMEOUT_MS)
    expect(page.locator(f".event-row[data-id='{raised[7].id}']")).to_have_attribute("data-count", "2")
    patched = _rows(page)
    _, built, _ = _counted(page)

    page.reload()
    expect(page.locator("#live-status")).to_have_text("live", timeout=TIMEOUT_MS)
    expect(page.locator(".event-row")).to_have_count(len(patched), timeout=TIMEOUT_MS)
    assert _rows(page) == patched
    assert built == 1, "only the new alert's row was built; the others were moved or written again"
