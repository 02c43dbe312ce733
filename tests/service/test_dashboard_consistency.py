"""The control room shows what the store holds, whatever the network does (headless Chromium, Playwright).

Operators trust every alert on screen, on a page left open for weeks: every alert in hand is
loaded however many newer events there are, what changed while the live feed was down shows
once it reconnects, a slow answer never draws over a newer state (a list under the live feed,
another alert's audit trail under the selected one), a stale ``#event=`` link does not keep the
page offline, and a failed session renewal is tried again.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from anjian.pipeline.event import Behaviour, Event, RiskLevel
from anjian.pipeline.event_json import event_to_json
from anjian.service.api import stream as stream_module
from anjian.service.composition import ServiceParts
from tests.factories import make_event, make_jpeg
from tests.service.server import ServerThread
from tests.service.test_dashboard import TIMEOUT_MS

pytestmark = pytest.mark.slow


T0 = 1_700_000_000.0

OpenDashboard = Callable[..., tuple[ServerThread, Any]]
"""``open_dashboard(**page_options)``: a server over the test's ``parts`` and a browser page, not yet loaded."""

FeedDown = Callable[[ServerThread, Any], AbstractContextManager[None]]
"""``feed_down(server, page)``: the fixture's context manager."""


@pytest.fixture
def open_dashboard(serve: Callable[..., ServerThread], browser: Any) -> Iterator[OpenDashboard]:
    """Starts a server and opens a page (``browser.new_page`` options); pages close before the servers stop."""
    pages: list[Any] = []

    def open_(**page_options: Any) -> tuple[ServerThread, Any]:
        server = serve()
        pages.append(browser.new_page(**page_options))
        return server, pages[-1]

    yield open_
    for page in pages:
        page.close()


@pytest.fixture
def feed_down(serve: Callable[..., ServerThread], expect: Any, monkeypatch: pytest.MonkeyPatch) -> FeedDown:
    """``with feed_down(server, page):`` stops ``server`` and waits until ``page`` has lost the live feed; after
    the block, a server over the same parts serves at the same address, and the page reconnects. The feed
    looks back over nothing, so what changed meanwhile can come only from the list the page asks for."""
    monkeypatch.setattr(stream_module, "_OVERLAP_S", 0.0)

    @contextmanager
    def down(server: ServerThread, page: Any) -> Iterator[None]:
        server.stop()
        expect(page.locator("#live-status")).not_to_have_text("live", timeout=TIMEOUT_MS)
        yield
        serve(port=server.port)

    return down


@pytest.fixture
def operator(parts: ServiceParts) -> str:
    """An operator's token."""
    return parts.store.tokens.create("duty officer", "operator")[1]


def expect_the_changes_made_away(page: Any, expect: Any, *, acknowledged: Event, raised: Event) -> None:
    """The reconnected ``page`` is live and shows what changed while it was away: the orange alert
    ``acknowledged`` elsewhere, and the red alert ``raised``, the only one open."""
    expect(page.locator(f".event-row[data-id='{raised.id}']")).to_have_count(1, timeout=TIMEOUT_MS)
    expect(page.locator(f".event-row[data-id='{acknowledged.id}'] .state")).to_have_text(
        "acknowledged", timeout=TIMEOUT_MS
    )
    expect(page.locator("#count-red")).to_have_text("1")
    expect(page.locator("#count-orange")).to_have_text("0")
    expect(page.locator("#live-status")).to_have_text("live")


def _pump_until(page: Any, predicate: Callable[[], bool]) -> None:
    """Let Playwright dispatch the page's events (route handlers) until ``predicate`` holds."""
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while not predicate():
        assert time.monotonic() < deadline, "the page did not make the request in time"
        page.wait_for_timeout(50)


def test_changes_made_while_the_live_feed_was_down_show_once_it_reconnects(
    open_dashboard: OpenDashboard, feed_down: FeedDown, expect: Any, parts: ServiceParts, operator: str
) -> None:
    """A service restart or a network drop longer than the feed's look-back lost the changes made
    meanwhile: an alert acknowledged elsewhere still showed raised, a new red one never appeared."""
    store = parts.store
    handled = make_event(severity=RiskLevel.ORANGE, snapshot_jpeg=None)
    store.upsert_event(handled)
    server, page = open_dashboard()
    page.goto(f"{server.base_url}/#token={operator}")
    expect(page.locator("#live-status")).to_have_text("live", timeout=TIMEOUT_MS)
    expect(page.locator(f".event-row[data-id='{handled.id}'] .state")).to_have_text("raised")
    expect(page.locator("#count-orange")).to_have_text("1")

    with feed_down(server, page):
        store.transition(handled.id, "acknowledge", actor="other operator")
        fire = make_event(camera_id="cam-2", snapshot_jpeg=None)
        store.upsert_event(fire)

    expect_the_changes_made_away(page, expect, acknowledged=handled, raised=fire)


def test_a_reconnecting_page_asks_the_list_what_changed_not_each_alert_in_turn(
    open_dashboard: OpenDashboard, feed_down: FeedDown, expect: Any, parts: ServiceParts, operator: str
) -> None:
    """Each alert settled while the feed was down was fetched with its own ``GET /events/{id}``, one after
    another (1,000 settled: 1,000 requests and 8 s per screen), after reloading every alert in hand."""
    store = parts.store
    handled = [
        make_event(camera_id=f"line-{i}", started_at=T0 + i, last_seen_at=T0 + i + 1, snapshot_jpeg=None)
        for i in range(40)
    ]
    store.upsert_events([(event, None) for event in handled])
    for event in handled:
        store.transition(event.id, "acknowledge", actor="night shift")
    server, page = open_dashboard()
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(f"{server.base_url}/#token={operator}")
    expect(page.locator("#live-status")).to_have_text("live", timeout=TIMEOUT_MS)
    states = page.locator(".event-row .state")
    expect(states.filter(has_text="acknowledged")).to_have_count(40, timeout=TIMEOUT_MS)

    with feed_down(server, page):
        for event in handled:
            store.transition(event.id, "resolve", actor="other operator", note="dealt with")
        fire = make_event(camera_id="cam-2", snapshot_jpeg=None)
        store.upsert_event(fire)
        requested.clear()

    expect(page.locator(f".event-row[data-id='{fire.id}']")).to_have_count(1, timeout=TIMEOUT_MS)
    expect(states.filter(has_text="resolved")).to_have_count(40, timeout=TIMEOUT_MS)
    expect(states.filter(has_text="acknowledged")).to_have_count(0)
    one_by_one = [url for url in requested if re.search(r"/events/[^/?]+$", urlsplit(url).path)]
    lists = [url for url in requested if urlsplit(url).path == "/events"]
    assert one_by_one == []
    assert 1 <= len(lists) <= 2, lists  # one page per reconnect (the browser may reconnect twice)
    assert all("updated_after=" in url for url in lists), "only what changed, not every alert in hand again"


def test_every_raised_alert_is_loaded_and_counted_however_many_newer_events_there_are(
    open_dashboard: OpenDashboard,
    expect: Any,
    parts: ServiceParts,
    operator: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Only the 200 newest events of any state were loaded: an older raised red alert was neither
    shown nor counted."""
    monkeypatch.setattr(stream_module, "_OVERLAP_S", 0.0)  # the live feed brings none of them
    store = parts.store
    old_red = make_event(camera_id="cam-2", started_at=T0, last_seen_at=T0 + 1, snapshot_jpeg=None)
    store.upsert_event(old_red)
    newer = [
        make_event(
            behaviour=Behaviour.SMOKING,
            severity=RiskLevel.YELLOW,
            started_at=T0 + 100 + i,
            last_seen_at=T0 + 101 + i,
            snapshot_jpeg=None,
        )
        for i in range(600)  # more than a page of the active load
    ]
    store.upsert_events([(event, None) for event in newer])
    settled = make_event(camera_id="cam-2", started_at=T0 + 1000, last_seen_at=T0 + 1001, snapshot_jpeg=None)
    store.upsert_event(settled)
    store.transition(settled.id, "false_alarm", actor="night shift", note="reflection")
    server, page = open_dashboard(viewport={"width": 1440, "height": 900})
    page.goto(f"{server.base_url}/#token={operator}")
    expect(page.locator(f".event-row[data-id='{old_red.id}']")).to_have_count(1, timeout=TIMEOUT_MS)
    expect(page.locator("#count-red")).to_have_text("1")
    expect(page.locator("#count-yellow")).to_have_text("600")
    expect(page.locator(f".event-row[data-id='{settled.id}']")).to_have_count(1)  # the recent page


def test_an_older_list_answer_does_not_overwrite_what_the_live_feed_brought(
    open_dashboard: OpenDashboard, expect: Any, parts: ServiceParts, operator: str
) -> None:
    store = parts.store
    fire = make_event(snapshot_jpeg=None)  # an open flame
    store.upsert_event(fire)
    server, page = open_dashboard()
    held: list[Any] = []
    page.goto(f"{server.base_url}/#token={operator}")
    expect(page.locator("#live-status")).to_have_text("live", timeout=TIMEOUT_MS)
    state = page.locator(f".event-row[data-id='{fire.id}'] .state")
    expect(state).to_have_text("raised", timeout=TIMEOUT_MS)
    page.route(
        lambda url: "/events?" in url and "behaviour=open_flame" in url, lambda route: held.append(route)
    )
    page.select_option("#filter-behaviour", "open_flame")
    _pump_until(page, lambda: bool(held))
    answer = held[0].fetch()  # the list as it is now: raised
    httpx.post(
        f"{server.base_url}/events/{fire.id}/acknowledge",
        json={"note": ""},
        headers={"Authorization": f"Bearer {operator}"},
    ).raise_for_status()
    expect(state).to_have_text("acknowledged", timeout=TIMEOUT_MS)  # from the live feed
    loads = int(page.get_attribute("#feed", "data-loads") or "0")
    held[0].fulfill(response=answer)
    expect(page.locator("#feed")).to_have_attribute("data-loads", str(loads + 1), timeout=TIMEOUT_MS)
    expect(state).to_have_text("acknowledged")
    expect(page.locator("#count-red")).to_have_text("0")


def test_a_late_audit_trail_of_the_previous_alert_is_not_drawn_under_the_selected_one(
    open_dashboard: OpenDashboard, expect: Any, parts: ServiceParts, operator: str
) -> None:
    store = parts.store
    first = make_event(severity=RiskLevel.ORANGE, snapshot_jpeg=None)
    second = make_event(camera_id="cam-2", snapshot_jpeg=None)
    store.upsert_event(first)
    store.upsert_event(second)
    store.transition(first.id, "acknowledge", actor="night shift", note="NOTE-OF-FIRST")
    server, page = open_dashboard(viewport={"width": 1440, "height": 900})
    held: list[Any] = []
    page.goto(f"{server.base_url}/#token={operator}")
    expect(page.locator("#live-status")).to_have_text("live", timeout=TIMEOUT_MS)
    page.route(f"**/events/{first.id}/audit", lambda route: held.append(route))
    page.locator(f".event-row[data-id='{first.id}']").click(timeout=TIMEOUT_MS)
    _pump_until(page, lambda: bool(held))
    page.locator(f".event-row[data-id='{second.id}']").click(timeout=TIMEOUT_MS)
    expect(page.locator("#detail")).to_have_attribute("data-id", second.id, timeout=TIMEOUT_MS)
    expect(page.locator("#audit tr")).to_have_count(1, timeout=TIMEOUT_MS)  # the second's raising
    answers = int(page.get_attribute("#audit", "data-answers") or "0")
    held[0].continue_()
    expect(page.locator("#audit")).to_have_attribute("data-answers", str(answers + 1), timeout=TIMEOUT_MS)
    expect(page.locator("#audit tr")).to_have_count(1)
    expect(page.locator("#audit")).not_to_contain_text("NOTE-OF-FIRST")
    expect(page.locator("#detail")).to_have_attribute("data-id", second.id)


def test_a_link_to_an_unknown_alert_says_so_and_the_page_goes_live(
    open_dashboard: OpenDashboard, expect: Any, parts: ServiceParts, operator: str
) -> None:
    """A stale ``#event=`` link aborted the start: no live feed, and reloading repeated it."""
    store = parts.store
    server, page = open_dashboard()
    page.goto(f"{server.base_url}/#token={operator}")  # the token is kept in the browser
    expect(page.locator("#live-status")).to_have_text("live", timeout=TIMEOUT_MS)
    page.goto("about:blank")
    page.goto(f"{server.base_url}/#event={make_event().id}")  # never stored
    expect(page.locator("#error")).to_have_text("The linked alert was not found.", timeout=TIMEOUT_MS)
    expect(page.locator("#live-status")).to_have_text("live", timeout=TIMEOUT_MS)
    expect(page).to_have_url(f"{server.base_url}/")  # reloading does not repeat it
    fire = make_event(snapshot_jpeg=None)
    store.upsert_event(fire)
    expect(page.locator(f".event-row[data-id='{fire.id}']")).to_have_count(1, timeout=TIMEOUT_MS)


def test_a_failed_session_renewal_is_tried_again(
    open_dashboard: OpenDashboard, expect: Any, parts: ServiceParts, operator: str
) -> None:
    """One failed renewal was never retried: the cookie lapsed and media broke while the page said live."""
    store = parts.store
    server, page = open_dashboard()
    renewals: list[int] = []

    def on_session(route: Any) -> None:
        if route.request.method != "POST":
            route.continue_()
            return
        renewals.append(0)
        if len(renewals) == 2:  # the first renewal fails
            route.fulfill(
                status=503,
                content_type="application/problem+json",
                body='{"title": "Service Unavailable", "status": 503, "detail": "busy"}',
            )
            return
        answer = route.fetch()
        route.fulfill(response=answer, json={**answer.json(), "ttl_s": 2.0})  # renewed every second

    page.route("**/auth/session", on_session)
    page.goto(f"{server.base_url}/#token={operator}")
    expect(page.locator("#live-status")).to_have_text("live", timeout=TIMEOUT_MS)
    _pump_until(page, lambda: len(renewals) >= 4)
    expect(page.locator("#error")).to_be_hidden(timeout=TIMEOUT_MS)  # the renewal error is cleared
    fire = make_event(snapshot_jpeg=make_jpeg(320, 180))
    pipeline = {"Authorization": f"Bearer {store.tokens.create('pipeline', 'pipeline')[1]}"}
    httpx.post(
        f"{server.base_url}/ingest/events", json=event_to_json(fire), headers=pipeline
    ).raise_for_status()
    page.locator(f".event-row[data-id='{fire.id}']").click(timeout=TIMEOUT_MS)
    expect(page.locator("#detail-snapshot")).to_have_js_property("naturalWidth", 320, timeout=TIMEOUT_MS)
