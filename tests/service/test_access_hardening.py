"""Smaller gaps closed: failed token attempts limited, dashboard sessions instead of tokens in URLs,
security headers on every response, token names without control characters, offline API docs.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import stat
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from anjian.service.api.limits import FailedAuthLimiter
from anjian.service.api.security import DEFAULT_CSP
from anjian.service.api.session_cookie import SessionSigner, SessionVerdict
from anjian.service.config import AnjianConfig, ApiLimitsConfig, ServerConfig
from anjian.service.tables import ApiTokenRow
from anjian.service.tokens import check_token_name, printable
from tests.factories import make_event
from tests.service.conftest import FakeClock, bearer, make_config

WRONG = "anj_" + "w" * 43


@pytest.fixture
def config(tmp_path: Path) -> AnjianConfig:
    limits = ApiLimitsConfig(failed_auth_burst=5, failed_auth_per_minute=6)
    return make_config(tmp_path / "data", server=ServerConfig(limits=limits))


def _client(app: FastAPI, address: str = "10.0.0.9") -> TestClient:
    return TestClient(app, client=(address, 40000), raise_server_exceptions=False)


# ------------------------------------------------------------------ failed attempts


def test_limiter_refuses_after_the_burst_and_refills_with_time() -> None:
    clock = FakeClock(0.0)
    limiter = FailedAuthLimiter(burst=3, per_minute=6, clock=clock)  # one attempt back every 10 s

    spent = [limiter.record_failure("a") for _ in range(3)]

    assert spent == [False, False, True], "the third failure is the last one allowed"
    assert limiter.retry_after_s("a") == pytest.approx(10.0)
    assert limiter.retry_after_header("a") == "10"
    assert limiter.retry_after_s("b") == 0.0, "other addresses keep their own bucket"
    clock.now = 4.0
    assert limiter.retry_after_s("a") == pytest.approx(6.0)
    clock.now = 10.0
    assert limiter.retry_after_s("a") == 0.0


def test_limiter_forgets_the_least_recent_address_past_its_capacity() -> None:
    limiter = FailedAuthLimiter(burst=1, per_minute=1, clock=FakeClock(0.0), max_clients=2)

    for address in ("a", "b", "c"):
        limiter.record_failure(address)

    assert limiter.retry_after_s("a") == 0.0
    assert limiter.retry_after_s("c") > 0


def test_failed_tokens_are_limited_per_address_and_successful_callers_are_not(app: FastAPI) -> None:
    viewer = bearer(app.state.store, "viewer")
    attacker = _client(app, "10.0.0.66")
    assert attacker.get("/events", headers=viewer).status_code == 200, "a token that worked from here"

    codes = [
        attacker.get("/events", headers={"Authorization": f"Bearer {WRONG}{i}"}).status_code for i in range(8)
    ]

    assert codes == [401] * 5 + [429] * 3
    refused = attacker.get("/events", headers={"Authorization": f"Bearer {WRONG}"})
    assert refused.headers["content-type"] == "application/problem+json"
    assert 1 <= int(refused.headers["retry-after"]) <= 10
    assert "too many failed token attempts" in refused.json()["detail"]
    assert attacker.get("/events", headers=viewer).status_code == 200, "a known good token still works"
    assert (
        _client(app, "10.0.0.67").get("/events", headers={"Authorization": f"Bearer {WRONG}"}).status_code
        == 401
    )


def test_forged_session_cookies_count_as_failed_attempts(app: FastAPI) -> None:
    client = _client(app)
    client.cookies.set("anjian_session", "1.99999999999.forged")

    codes = [client.get("/stream").status_code for _ in range(7)]

    assert codes == [401] * 5 + [429] * 2


def test_a_session_cookie_with_non_ascii_bytes_in_its_mac_is_a_counted_forgery(app: FastAPI) -> None:
    """``hmac.compare_digest`` raises ``TypeError`` on non-ASCII text: such a cookie was a 500, uncounted.
    (Servers pass a header's obs-text bytes through as latin-1.)"""
    client = _client(app)
    forged = {"Cookie": b"anjian_session=1.9999999999.\xe9\xe9"}

    responses = [client.get("/stream", headers=forged) for _ in range(6)]

    assert [r.status_code for r in responses] == [401] * 5 + [429]
    assert "session cookie is not valid" in responses[0].json()["detail"]


@pytest.mark.parametrize(
    "mac",
    ["\xe9" * 64, "٣" * 64, "A" * 64, "a" * 63, "a" * 65, ""],
    ids=["latin-1", "arabic-digits", "uppercase", "short", "long", "empty"],
)
def test_a_session_mac_that_is_not_64_lowercase_hex_is_forged(tmp_path: Path, mac: str) -> None:
    signer = SessionSigner(tmp_path, ttl_s=60, clock=FakeClock(1_000.0))

    assert signer.check(f"7.1060.{mac}").verdict is SessionVerdict.FORGED


def test_running_out_of_attempts_is_logged_once(app: FastAPI, caplog: pytest.LogCaptureFixture) -> None:
    client = _client(app, "10.0.0.70")
    with caplog.at_level(logging.WARNING, logger="anjian.service.api.auth"):
        for _ in range(9):
            client.get("/events", headers={"Authorization": f"Bearer {WRONG}"})

    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["auth: 10.0.0.70 ran out of failed token attempts; refusing its guesses for a while"]


# ------------------------------------------------------------------ sessions


def test_a_session_cookie_serves_media_only_and_carries_no_token(app: FastAPI) -> None:
    store = app.state.store
    event = make_event()
    app.state.sink.publish(event)
    viewer = bearer(store, "viewer")
    client = _client(app)

    opened = client.post("/auth/session", headers=viewer)

    assert opened.status_code == 200
    cookie = opened.headers["set-cookie"]
    assert re.match(r"anjian_session=\d+\.\d+\.[0-9a-f]{64};", cookie)
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie, "plain HTTP: a Secure cookie would never come back"
    assert viewer["Authorization"].removeprefix("Bearer ") not in cookie
    assert opened.json()["ttl_s"] == 12 * 3600
    assert client.get(f"/events/{event.id}/snapshot.jpg").status_code == 200
    assert client.get("/events").status_code == 401, "API routes still need the bearer token"
    assert client.delete("/auth/session").status_code == 204
    assert client.get(f"/events/{event.id}/snapshot.jpg").status_code == 401


def test_a_session_cookie_serves_next_to_a_reverse_proxys_basic_auth(app: FastAPI) -> None:
    """Behind a reverse proxy with HTTP Basic auth, browsers send ``Authorization: Basic`` with every
    ``<img>`` and ``EventSource`` request: every snapshot, clip and live feed was refused 401."""
    store = app.state.store
    event = make_event()
    app.state.sink.publish(event)
    client = _client(app, "10.0.0.71")
    client.post("/auth/session", headers=bearer(store, "viewer")).raise_for_status()  # before the guesses
    proxy_basic = {"Authorization": "Basic dXNlcjpwYXNz"}
    snapshot = f"/events/{event.id}/snapshot.jpg"

    assert client.get(snapshot, headers=proxy_basic).status_code == 200, "the cookie serves"
    assert client.get("/events", headers=proxy_basic).status_code == 401, "bearer-only routes still refuse it"
    wrong = [client.get(snapshot, headers={"Authorization": f"Bearer {WRONG}"}).status_code for _ in range(6)]
    assert wrong == [401] * 5 + [429], "a wrong bearer token is refused and counted, cookie or not"
    client.cookies.clear()
    without_cookie = client.get(snapshot, headers=proxy_basic)
    assert without_cookie.status_code == 401
    assert "an API token is required" in without_cookie.json()["detail"]


def test_revoking_a_token_ends_its_sessions(app: FastAPI) -> None:
    store = app.state.store
    event = make_event()
    app.state.sink.publish(event)
    info, secret = store.tokens.create("wall screen", "viewer")
    client = _client(app)
    client.post("/auth/session", headers={"Authorization": f"Bearer {secret}"}).raise_for_status()

    store.tokens.revoke(info.id)

    response = client.get(f"/events/{event.id}/snapshot.jpg")
    assert response.status_code == 401 and "revoked" in response.json()["detail"]


@pytest.mark.parametrize("role", ["pipeline"], ids=["pipeline"])
def test_a_token_that_may_not_read_gets_no_session(app: FastAPI, role: str) -> None:
    assert _client(app).post("/auth/session", headers=bearer(app.state.store, role)).status_code == 403


def test_session_signer_verdicts_and_a_key_shared_through_the_storage_folder(tmp_path: Path) -> None:
    clock = FakeClock(1_000.0)
    signer = SessionSigner(tmp_path, ttl_s=60, clock=clock)
    value, expires_at = signer.issue(7)
    other_process = SessionSigner(tmp_path, ttl_s=60, clock=clock)
    token_id, expiry, mac = value.split(".")

    assert (signer.check(value).verdict, signer.check(value).token_id, expires_at) == (
        SessionVerdict.VALID,
        7,
        1_060.0,
    )
    assert other_process.check(value).verdict is SessionVerdict.VALID
    assert signer.check(f"8.{expiry}.{mac}").verdict is SessionVerdict.FORGED, "another token id"
    assert signer.check(f"{token_id}.99999999.{mac}").verdict is SessionVerdict.FORGED, "a longer life"
    assert signer.check("٣.1.x").verdict is SessionVerdict.FORGED
    clock.now = 1_060.0
    assert signer.check(value).verdict is SessionVerdict.EXPIRED
    key_file = tmp_path / "session.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(bytes.fromhex(key_file.read_text())) == 32


def test_a_damaged_session_key_is_reported(tmp_path: Path) -> None:
    (tmp_path / "session.key").write_text("not hex\n")

    with pytest.raises(ValueError, match="does not hold a 32-byte hex key; delete it"):
        SessionSigner(tmp_path, ttl_s=60)


# ------------------------------------------------------------------ headers


def test_every_response_carries_the_security_headers(app: FastAPI) -> None:
    def explode() -> None:
        raise RuntimeError("boom")

    app.add_api_route("/explode", explode)
    client = _client(app)
    viewer = bearer(app.state.store, "viewer")
    responses = {
        "dashboard": client.get("/"),
        "static": client.get("/dashboard/app.js"),
        "json": client.get("/events", headers=viewer),
        "401": client.get("/events"),
        "404": client.get("/nowhere"),
        "422": client.get("/events?limit=0", headers=viewer),
        "500": client.get("/explode"),
        "metrics": client.get("/metrics"),
    }

    for name, response in responses.items():
        headers = response.headers
        assert headers["x-frame-options"] == "DENY", name
        assert headers["x-content-type-options"] == "nosniff", name
        assert headers["referrer-policy"] == "no-referrer", name
        assert headers["content-security-policy"] == DEFAULT_CSP, name
    assert "'unsafe-inline'" not in DEFAULT_CSP and "frame-ancestors 'none'" in DEFAULT_CSP


def test_the_dashboard_page_has_no_inline_script() -> None:
    from anjian.service.api.dashboard import DASHBOARD_DIR

    html = (DASHBOARD_DIR / "index.html").read_text()

    assert re.findall(r"<script(?![^>]*\bsrc=)", html) == []
    assert re.findall(r"\son[a-z]+=", html) == [], "no inline event handlers"


def test_the_docs_pages_allow_exactly_their_inline_script(app: FastAPI) -> None:
    client = _client(app)

    for path in ("/docs", "/redoc"):
        page = client.get(path)
        policy = page.headers["content-security-policy"]
        inline = re.findall(r"<script>(.*?)</script>", page.text, re.DOTALL)
        hashes = {
            "'sha256-" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() + "'" for s in inline
        }
        assert set(re.findall(r"'sha256-[^']+'", policy)) == hashes, path
        assert (
            "unsafe-eval" not in policy
            and "'unsafe-inline'" not in policy.split("script-src")[1].split(";")[0]
        )
        assert "cdn" not in page.text, f"{path} loads nothing from a CDN"
    assert client.get("/docs/assets/swagger-ui-bundle.js").status_code == 200
    assert client.get("/docs/assets/redoc.standalone.js").status_code == 200


# ------------------------------------------------------------------ token names


@pytest.mark.parametrize(
    "name",
    ["ops\x1b[2J", "night\nshift", "a\u202eb", "tab\there", "x\u2028y"],
    ids=["escape", "newline", "bidi-override", "tab", "line-separator"],
)
def test_control_characters_in_token_names_are_refused(app: FastAPI, name: str) -> None:
    admin = bearer(app.state.store, "admin")

    response = _client(app).post("/tokens", json={"name": name, "role": "viewer"}, headers=admin)

    assert response.status_code == 422
    assert "control or format characters: U+" in response.json()["detail"]
    with pytest.raises(ValueError, match="control or format characters"):
        app.state.store.tokens.create(name, "viewer")


def test_token_names_are_checked_and_escaped() -> None:
    assert check_token_name("  duty officer 王  ") == "duty officer 王"
    assert printable("ops\x1b[2J\u202e\n") == "ops\\x1b[2J\\u202e\\n"
    assert printable("王 ok") == "王 ok"


def test_cli_refuses_a_control_character_name(tmp_path: Path) -> None:
    from anjian.service.cli import app as cli

    site = tmp_path / "site.yaml"
    site.write_text(
        f"site: {{id: s1, workshops: [{{id: w1}}]}}\nstorage: {{dir: {tmp_path / 'data'}}}\n",
        encoding="utf-8",
    )

    result = CliRunner().invoke(
        cli, ["tokens", "create", "--config", str(site), "--role", "viewer", "--name", "a\x1bb"]
    )

    assert result.exit_code == 2
    assert "U+001B" in result.output and "Traceback" not in result.output


def test_names_stored_before_the_check_are_escaped_in_logs(
    app: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    store = app.state.store
    info, _secret = store.tokens.create("legacy", "viewer")
    with store.database.write() as session:  # a name from before names were checked
        row = session.get(ApiTokenRow, info.id)
        assert row is not None
        row.name = "legacy\x1b[31mRED\r\nFAKE LOG LINE"
    admin = bearer(store, "admin")

    with caplog.at_level(logging.INFO, logger="anjian.service.api.tokens"):
        assert _client(app).delete(f"/tokens/{info.id}", headers=admin).status_code == 200

    (line,) = [r.getMessage() for r in caplog.records if "revoked" in r.getMessage()]
    assert "\x1b" not in line and "\r" not in line and "\n" not in line
    assert "legacy\\x1b[31mRED\\r\\nFAKE LOG LINE" in line
