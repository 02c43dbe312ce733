"""A reconnecting control room still shows what changed while it was away after the service's clock was set
back (headless Chromium, Playwright).

The page asks ``GET /events?updated_after=`` from the newest change it heard (less 5 minutes). A service
clock that ran ahead and was then set back (NTP) stamps the changes made next before that mark: the page
asked from a time the service had not reached and got none of them, until the alerts changed again. The
list answers carry the service's clock (``X-Anjian-Now``), and the page asks from that clock as it was when
the feed was lost where the mark is later.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from anjian.pipeline.event import RiskLevel
from anjian.service.api import stream as stream_module
from anjian.service.composition import ServiceParts, build_service_parts
from anjian.service.config import AnjianConfig
from tests.factories import make_event
from tests.service.conftest import FakeClock
from tests.service.server import ServerThread
from tests.service.test_dashboard import TIMEOUT_MS
from tests.service.test_dashboard_consistency import expect_the_changes_made_away

pytestmark = pytest.mark.slow

T0 = 1_700_000_000.0


@pytest.fixture
def clock() -> FakeClock:
    """The service's clock: an hour ahead at first."""
    return FakeClock(T0 + 3600)


@pytest.fixture
def parts(config: AnjianConfig, clock: FakeClock) -> Iterator[ServiceParts]:
    """The parts of a service over ``config`` on ``clock``, owned by the test: they outlive a server restart."""
    parts = build_service_parts(config, camera_health=list, clock=clock)
    parts.start()
    yield parts
    parts.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A browser page, closed before the servers stop."""
    page = browser.new_page()
    yield page
    page.close()


def test_the_list_answer_tells_the_service_clock(
    serve: Callable[..., ServerThread], parts: ServiceParts, clock: FakeClock
) -> None:
    server = serve()
    token = parts.store.tokens.create("viewer", "viewer")[1]
    answer = httpx.get(f"{server.base_url}/events", headers={"Authorization": f"Bearer {token}"})
    answer.raise_for_status()
    assert float(answer.headers["X-Anjian-Now"]) == pytest.approx(clock.now, abs=0.001)


def test_changes_made_while_away_show_after_the_service_clock_was_set_back(
    serve: Callable[..., ServerThread],
    page: Any,
    expect: Any,
    parts: ServiceParts,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The page asked from an hour ahead of the service's clock: the alert acknowledged elsewhere still showed
    raised, and the new red one never appeared."""
    monkeypatch.setattr(stream_module, "_OVERLAP_S", 0.0)  # the feed alone replays nothing from the gap
    store = parts.store
    operator = store.tokens.create("duty officer", "operator")[1]
    handled = make_event(severity=RiskLevel.ORANGE, snapshot_jpeg=None)
    store.upsert_event(handled)  # stamped an hour ahead
    server = serve()
    page.goto(f"{server.base_url}/#token={operator}")
    expect(page.locator("#live-status")).to_have_text("live", timeout=TIMEOUT_MS)
    expect(page.locator(f".event-row[data-id='{handled.id}'] .state")).to_have_text(
        "raised", timeout=TIMEOUT_MS
    )

    server.stop()
    expect(page.locator("#live-status")).not_to_have_text("live", timeout=TIMEOUT_MS)
    clock.now = T0  # NTP sets the clock back an hour while the page is away
    store.transition(handled.id, "acknowledge", actor="other operator")
    clock.now = T0 + 10
    fire = make_event(camera_id="cam-2", snapshot_jpeg=None)
    store.upsert_event(fire)
    clock.now = T0 + 20
    server = serve(port=server.port)  # the page reconnects to the same address

    expect_the_changes_made_away(page, expect, acknowledged=handled, raised=fire)
