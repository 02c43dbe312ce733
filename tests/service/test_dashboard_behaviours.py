"""The dashboards name each behaviour from the service's one table, ``service/behaviour_names.py``.

The service makes ``/dashboard/behaviours.js`` from ``BEHAVIOUR_NAMES``; the control room's
dictionary and behaviour filter read it, so a behaviour named in Python only (``overcrowding``,
a new one) shows by its name in either language, and the filter offers every behaviour in the
table's order. No name can break out of the script (``</script>``, quotes). The hub's page
reads the same script (``tests/service/hub/test_hub_view.py``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from anjian.pipeline.event import Behaviour, RiskLevel
from anjian.service.api.dashboard import behaviours_script
from anjian.service.app import create_app
from anjian.service.behaviour_names import BEHAVIOUR_NAMES
from tests.factories import make_event
from tests.service.conftest import make_config
from tests.service.server import ServerThread
from tests.service.test_dashboard import TIMEOUT_MS

HOSTILE_CODE = "forklift_speeding"
HOSTILE_NAMES = (
    '叉车"超速"</script><script>window.broken = 1</script>',
    "Forklift 'speeding' \\\" </SCRIPT><!-- & \u2028 -->",
)
"""A name that would end a string, a statement or an inline ``<script>`` element if copied in raw."""


def _names(script: str) -> list[dict[str, str]]:
    """The array ``behaviours.js`` sets, read as JSON (it is written as such)."""
    prefix, _, rest = script.partition("window.anjianBehaviours = Object.freeze(")
    assert prefix and rest.endswith(");\n"), script
    value: list[dict[str, str]] = json.loads(rest.removesuffix(");\n"))
    return value


def _table() -> list[dict[str, str]]:
    """``BEHAVIOUR_NAMES`` as the script should carry it, in its order."""
    return [{"code": c, "en": en, "zh-CN": zh} for c, (zh, en) in BEHAVIOUR_NAMES.items()]


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(make_config(tmp_path / "data"))
    with TestClient(app) as client:
        yield client
    app.state.store.close()


def test_the_behaviours_script_carries_the_whole_table_in_order_without_a_token(client: TestClient) -> None:
    response = client.get("/dashboard/behaviours.js")

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/javascript; charset=utf-8"
    assert _names(response.text) == _table()
    assert [n["code"] for n in _table()][6] == "overcrowding"  # which the dashboards' own copies lacked


def test_a_name_cannot_break_out_of_the_script(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(BEHAVIOUR_NAMES, HOSTILE_CODE, HOSTILE_NAMES)

    script = client.get("/dashboard/behaviours.js").text

    assert _names(script)[-1] == {"code": HOSTILE_CODE, "en": HOSTILE_NAMES[1], "zh-CN": HOSTILE_NAMES[0]}
    assert "<" not in script and ">" not in script and "&" not in script and "\u2028" not in script
    assert script.count("\n") == len(BEHAVIOUR_NAMES) + 4  # comment, "use strict", "[", one line each, "]);"


def test_the_behaviours_script_is_revalidated_by_etag_and_changes_with_the_table(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = client.get("/dashboard/behaviours.js")
    etag = first.headers["etag"]

    again = client.get("/dashboard/behaviours.js", headers={"If-None-Match": f'W/{etag}, "other"'})
    monkeypatch.setitem(BEHAVIOUR_NAMES, HOSTILE_CODE, HOSTILE_NAMES)
    changed = client.get("/dashboard/behaviours.js", headers={"If-None-Match": etag})

    assert first.headers["cache-control"] == "no-cache"
    assert again.status_code == 304 and again.content == b""
    assert changed.status_code == 200 and changed.headers["etag"] != etag
    assert changed.text == behaviours_script()


@pytest.mark.slow
def test_the_control_room_names_behaviours_from_the_services_table_in_either_language(
    tmp_path: Path, browser: Any, expect: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``overcrowding`` showed as its code and was missing from the filter, as were the sensors' alerts."""
    monkeypatch.setitem(BEHAVIOUR_NAMES, HOSTILE_CODE, HOSTILE_NAMES)  # a behaviour only Python names
    app = create_app(make_config(tmp_path / "data"))
    store = app.state.store
    viewer = store.tokens.create("wall", "viewer")[1]
    crowd = make_event(behaviour=Behaviour.OVERCROWDING, severity=RiskLevel.YELLOW, snapshot_jpeg=None)
    gas = make_event(camera_id="cam-2", behaviour=Behaviour.SENSOR_THRESHOLD, snapshot_jpeg=None)
    for event in (crowd, gas):
        store.upsert_event(event)
    server = ServerThread(app).start()
    context = browser.new_context(locale="en-US")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))  # a script that does not parse or throws
    options = page.locator("#filter-behaviour option")
    crowd_row = page.locator(f".event-row[data-id='{crowd.id}'] .what")
    try:
        page.goto(f"{server.base_url}/#token={viewer}")
        expect(crowd_row).to_have_text("Overcrowding", timeout=TIMEOUT_MS)
        expect(page.locator(f".event-row[data-id='{gas.id}'] .what")).to_have_text("Sensor threshold")
        values = options.evaluate_all("os => os.map((o) => [o.value, o.textContent, o.dataset.i18n])")
        assert values == [
            ["", "All behaviours", "all_behaviours"],
            *([code, en, f"b_{code}"] for code, (_zh, en) in BEHAVIOUR_NAMES.items()),
        ]

        page.select_option("#language", "zh-CN")
        expect(crowd_row).to_have_text("人员聚集")
        expect(options.nth(7)).to_have_text("人员聚集")
        expect(options.last).to_have_text(HOSTILE_NAMES[0])  # quotes and </script> are only text

        page.select_option("#filter-behaviour", "overcrowding")
        expect(page.locator(".event-row")).to_have_count(1)
        expect(page.locator(".event-row")).to_have_attribute("data-id", crowd.id)
        assert page.evaluate("window.broken") is None
    finally:
        context.close()
        server.stop()
        store.close()

    assert errors == [], "every script parsed and ran"
