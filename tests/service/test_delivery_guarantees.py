"""Webhook delivery guarantees with real parts: a loopback receiver that goes down and comes back,
and a service process killed with SIGKILL between accepting an event and delivering it."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
import yaml
from fastapi.testclient import TestClient
from pydantic import SecretStr
from standardwebhooks import Webhook

from anjian.pipeline.event_json import event_to_json
from anjian.service.app import create_app
from anjian.service.benchmarks.service_process import ServiceProcess, create_token
from anjian.service.composition import build_service_parts
from anjian.service.config import WebhookConfig
from anjian.service.records import DeliveryStatus
from anjian.service.webhooks import SIGNATURE_HEADER, WebhookDispatcher, verify_signature
from tests.factories import make_event
from tests.service.conftest import make_config
from tests.support.receiver import ReceivedRequest, Receiver, unused_port, wait_until

pytestmark = pytest.mark.slow

SECRET = "outage-test-secret"


def _unique(receiver: Receiver) -> dict[str, ReceivedRequest]:
    """Requests deduplicated by Idempotency-Key, as a receiver should."""
    return {request.headers["idempotency-key"]: request for request in list(receiver.requests)}


def test_receiver_down_for_100_events_gets_all_of_them_once_back(tmp_path: Path) -> None:
    receiver = Receiver(unused_port(), is_up=False)
    config = make_config(tmp_path / "data", [WebhookConfig(url=receiver.url, secret=SecretStr(SECRET))])
    parts = build_service_parts(
        config,
        make_dispatcher=lambda store, metrics: WebhookDispatcher(
            store, backoff_base_s=0.05, backoff_max_s=0.5, workers=4, metrics=metrics
        ),
    )
    store, dispatcher = parts.store, parts.dispatcher
    app = create_app(config, parts)
    pipeline = {"Authorization": f"Bearer {store.tokens.create('p', 'pipeline')[1]}"}
    client = TestClient(app)
    dispatcher.start()
    events = [make_event(id=f"ev-{i:03d}", snapshot_jpeg=None) for i in range(100)]
    try:
        for event in events:  # raised through the API while the receiver is down
            assert (
                client.post("/ingest/events", json=event_to_json(event), headers=pipeline).status_code == 200
            )
        wait_until(lambda: store.outbox.count(DeliveryStatus.PENDING) == 100, 10)
        # Each row tried, or held back untried behind a row of its batch that got no answer.
        wait_until(lambda: all(d.last_error is not None for d in store.outbox.list()), 30)

        receiver.up()
        wait_until(lambda: store.outbox.count(DeliveryStatus.DELIVERED) == 100, 60)
    finally:
        dispatcher.stop()
        receiver.down()
        store.close()

    unique = _unique(receiver)
    assert len(unique) == 100
    now = time.time()
    for hit in unique.values():
        assert verify_signature(SECRET, hit.headers[SIGNATURE_HEADER.lower()], hit.body, now=now)
        Webhook(SECRET.encode()).verify(hit.body, hit.headers)  # what a Standard Webhooks receiver runs
        assert hit.headers["webhook-id"] == hit.headers["idempotency-key"]
    delivered_ids = Counter(json.loads(hit.body)["event"]["id"] for hit in unique.values())
    assert delivered_ids == Counter(e.id for e in events), "each event exactly once after dedup"


def test_event_accepted_then_service_killed_is_delivered_after_restart(tmp_path: Path) -> None:
    receiver = Receiver(unused_port(), is_up=False)
    site = tmp_path / "site.yaml"
    site.write_text(
        yaml.safe_dump(
            {
                "site": {
                    "id": "site-1",
                    "workshops": [
                        {"id": "polishing-1", "cameras": [{"id": "cam-1", "url": "rtsp://127.0.0.1:9/x"}]}
                    ],
                },
                "webhooks": [{"url": receiver.url, "secret": SECRET}],
                "storage": {"dir": str(tmp_path / "data")},
            }
        )
    )
    service = ServiceProcess(site, unused_port(), tmp_path / "service.log")
    token = create_token(site, "pipeline")

    event = make_event()
    service.start()
    try:
        response = httpx.post(
            f"http://127.0.0.1:{service.port}/ingest/events",
            json=event_to_json(event),
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert response.status_code == 200 and response.json()["is_applied"] is True  # accepted …
    finally:
        service.kill()  # … and killed (SIGKILL) before the (unreachable) receiver could get it
    assert receiver.requests == []

    receiver.up()
    service.start()
    try:
        wait_until(lambda: len(_unique(receiver)) == 1, 60)
    finally:
        service.stop()
        receiver.down()

    (hit,) = _unique(receiver).values()
    payload = json.loads(hit.body)
    assert (payload["kind"], payload["event"]["id"]) == ("event.created", event.id)
    assert verify_signature(SECRET, hit.headers[SIGNATURE_HEADER.lower()], hit.body, now=time.time())
    Webhook(SECRET.encode()).verify(hit.body, hit.headers)
    log = (tmp_path / "service.log").read_text(errors="replace")  # both runs
    assert token not in log and SECRET not in log, "no secrets in the logs"
