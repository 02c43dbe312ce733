"""The composition root: the service's parts are built once, shared by the app and the runtime, closed in order."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from anjian.service.app import create_app
from anjian.service.composition import build_service_parts
from anjian.service.config import WebhookConfig
from anjian.service.runtime import build_runtime
from anjian.service.store import EventStore
from tests.factories import make_event
from tests.service.conftest import bearer, make_config


def test_the_app_serves_the_parts_it_is_given(tmp_path: Path) -> None:
    config = make_config(tmp_path / "data")
    parts = build_service_parts(config)
    try:
        state = create_app(config, parts).state

        served = (state.store, state.evidence, state.metrics, state.dispatcher, state.escalator, state.sink)
        assert served == (
            parts.store,
            parts.evidence,
            parts.metrics,
            parts.dispatcher,
            parts.escalator,
            parts.sink,
        )
        assert state.camera_health is parts.camera_health
        assert state.camera_health() == []  # no cameras of its own, none reported by a node yet
    finally:
        parts.close()


def test_building_the_parts_synchronises_the_site_webhooks(tmp_path: Path) -> None:
    config = make_config(tmp_path / "data", [WebhookConfig(url="http://127.0.0.1:9/hook")])
    parts = build_service_parts(config)
    try:
        assert [s.url for s in parts.store.subscriptions.list()] == ["http://127.0.0.1:9/hook"]
    finally:
        parts.close()


def test_close_stores_what_the_writer_holds_before_the_store_closes(tmp_path: Path) -> None:
    config = make_config(tmp_path / "data")
    parts = build_service_parts(config)
    parts.start()
    assert parts.dispatcher.is_running
    events = [make_event(id=f"ev-{i}", snapshot_jpeg=None) for i in range(50)]
    for event in events:
        parts.sink.publish(event)

    parts.close()
    parts.close()  # safe twice

    assert not parts.dispatcher.is_running
    reopened = EventStore.from_config(config.storage)
    try:
        assert all(reopened.get_event(event.id) is not None for event in events)
    finally:
        reopened.close()


def test_parts_never_started_close_cleanly(tmp_path: Path) -> None:
    parts = build_service_parts(make_config(tmp_path / "data"))

    parts.close()

    assert not parts.dispatcher.is_running


def test_an_app_without_parts_builds_its_own_and_closes_them_on_shutdown(tmp_path: Path) -> None:
    app = create_app(make_config(tmp_path / "data"))
    store = app.state.store
    with TestClient(app, headers=bearer(store, "viewer")) as client:
        assert client.get("/healthz").json()["is_dispatcher_running"] is True
        app.state.sink.publish(make_event(id="queued", snapshot_jpeg=None))

    assert not app.state.dispatcher.is_running
    reopened = EventStore.from_config(make_config(tmp_path / "data").storage)
    try:
        assert reopened.get_event("queued") is not None
    finally:
        reopened.close()


def test_the_runtime_and_its_app_share_one_set_of_parts(tmp_path: Path) -> None:
    runtime = build_runtime(make_config(tmp_path / "data"), with_pipeline=False)
    assert runtime.parts is not None and runtime.app is not None
    parts = runtime.parts
    assert (runtime.app.state.store, runtime.app.state.sink) == (parts.store, parts.sink)

    runtime.start()
    try:
        headers = bearer(parts.store, "viewer")
        health = TestClient(runtime.app).get("/healthz", headers=headers).json()
        assert health["is_dispatcher_running"] is True
    finally:
        runtime.stop()

    assert not parts.dispatcher.is_running
