"""Group robots (DingTalk, WeCom, Feishu) and e-mail through the webhook outbox, against real local receivers.

Each robot's receiver checks the signature exactly as its vendor documents it
(``tests/service/robot_receivers.py``); e-mail goes to a real SMTP server (aiosmtpd)
with STARTTLS and AUTH. The dispatcher runs on a fake clock (``deliver_due``) so
retries and rate limits are stepped through without sleeping.
"""

from __future__ import annotations

import email
import email.policy
import json
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, replace
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from pydantic import SecretStr, ValidationError

from anjian.pipeline.config import CameraPipelineConfig
from anjian.pipeline.event import Behaviour, RiskLevel, SensorFacts
from anjian.pipeline.sensors.config import SensorConfig
from anjian.service.channels import (
    AlertChannels,
    AlertMessage,
    ChannelsConfig,
    MessageBuilder,
    MessageSpacing,
    RobotChannel,
    RobotConfig,
)
from anjian.service.channels.robots import dingtalk_body, feishu_body, wecom_body
from anjian.service.composition import build_service_parts
from anjian.service.config import (
    AnjianConfig,
    SiteConfig,
    SlaConfig,
    StorageConfig,
    WorkshopConfig,
    load_config,
)
from anjian.service.errors import ConfigError
from anjian.service.evidence import EvidenceStore
from anjian.service.lifecycle import Action
from anjian.service.metrics import ServiceMetrics
from anjian.service.records import DeliveryStatus, WebhookDelivery
from anjian.service.schemas import WebhookPayload
from anjian.service.store import EventStore
from anjian.service.webhooks import WebhookDispatcher
from tests.factories import make_event, make_jpeg
from tests.service.conftest import FakeClock
from tests.service.robot_receivers import RobotReceiver
from tests.support.receiver import unused_port
from tests.support.threads import in_background
from tests.support.waiting import wait_for

PUBLIC_URL = "https://anjian.plant.example.cn"
SECRET = "SEC0123456789abcdef-robot-secret"
# 2023-11-14 22:13:20 UTC, when make_event's incidents start: 06:13:20 the next morning in Suzhou.
LOCAL_START = "2023-11-15 06:13:20 CST"
_BUSY: dict[str, dict[str, Any]] = {
    "dingtalk": {"errcode": -1, "errmsg": "系统繁忙"},
    "wecom": {"errcode": -1, "errmsg": "system busy"},
    "feishu": {"code": 9499, "msg": "Bad Request"},
}


def _site() -> SiteConfig:
    cameras = [
        CameraPipelineConfig(id="cam-1", name="东门 East gate", url="rtsp://127.0.0.1:9/cam-1"),
        CameraPipelineConfig(id="cam-2", url="rtsp://127.0.0.1:9/cam-2"),
    ]
    return SiteConfig(
        id="site-1",
        name="苏州抛光厂",
        timezone="Asia/Shanghai",
        workshops=[
            WorkshopConfig(id="polishing-1", name="抛光车间一", cameras=cameras),
            WorkshopConfig(
                id="freezer", cameras=[CameraPipelineConfig(id="cam-9", url="rtsp://127.0.0.1:9/cam-9")]
            ),
        ],
    )


def _config(tmp_path: Path, channels: dict[str, Any]) -> AnjianConfig:
    return AnjianConfig(
        site=_site(),
        storage=StorageConfig(dir=tmp_path / "data"),
        channels=ChannelsConfig.model_validate({"public_url": PUBLIC_URL, **channels}),
    )


@dataclass
class Rig:
    """A store, its channels and a dispatcher on the fake clock (the composition root's wiring)."""

    store: EventStore
    channels: AlertChannels
    dispatcher: WebhookDispatcher
    evidence: EvidenceStore
    metrics: ServiceMetrics

    def deliveries(self) -> list[WebhookDelivery]:
        return self.store.outbox.list()

    def raise_event(self, **overrides: Any) -> str:
        event = make_event(**overrides)
        path = None
        if event.snapshot_jpeg is not None:
            path = self.evidence.save_snapshot(event.camera_id, event.id, event.snapshot_jpeg)
        self.store.upsert_event(event, snapshot_path=path)
        return event.id


@pytest.fixture
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """No HTTP proxy in the environment: connections are made (and checked) here."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_800_000_000.0)


@pytest.fixture
def rigs(tmp_path: Path, clock: FakeClock) -> Iterator[list[Rig]]:
    """Rigs made by ``_rig`` (closed at the end): a second one plays a restarted process."""
    made: list[Rig] = []
    yield made
    for rig in made:
        rig.dispatcher.stop()
    if made:
        made[0].store.close()


def _rig(rigs: list[Rig], config: AnjianConfig, clock: FakeClock) -> Rig:
    store = rigs[0].store if rigs else EventStore.from_config(config.storage, clock=clock)
    channels = AlertChannels.from_config(config, clock=clock, spacing_clock=clock)
    store.subscriptions.sync_config(config.webhooks, channels=channels.subscription_specs())
    metrics = ServiceMetrics(store)
    dispatcher = WebhookDispatcher(
        store, clock=clock, backoff_base_s=2.0, backoff_max_s=600.0, channels=channels, metrics=metrics
    )
    rig = Rig(store, channels, dispatcher, EvidenceStore(config.storage.dir), metrics)
    rigs.append(rig)
    return rig


@pytest.fixture
def robot(request: pytest.FixtureRequest, clock: FakeClock) -> Iterator[RobotReceiver]:
    kind = request.param
    credential = "9f1c2e44-7a51-4c3b-8d2e-0b6f5a9c1d77" if kind == "wecom" else SECRET
    receiver = RobotReceiver(kind=kind, credential=credential, clock=clock)
    yield receiver
    receiver.close()


def _robot_channel(robot: RobotReceiver, **overrides: Any) -> dict[str, Any]:
    channel: dict[str, Any] = {"name": f"{robot.kind}-leaders", "kind": robot.kind, "url": robot.url}
    if robot.kind != "wecom":
        channel["secret"] = SECRET
    return {"robots": [{**channel, **overrides}]}


def _message_text(kind: str, body: dict[str, Any]) -> str:
    """Everything a reader of the card sees, as one string."""
    if kind == "dingtalk":
        return json.dumps(body["actionCard"], ensure_ascii=False)
    if kind == "wecom":
        return str(body["markdown"]["content"])
    return json.dumps(body["card"], ensure_ascii=False)


ROBOTS = pytest.mark.parametrize("robot", ["dingtalk", "wecom", "feishu"], indirect=True)


@ROBOTS
def test_a_robot_refusing_in_a_200_is_retried_and_the_message_lands_once(
    robot: RobotReceiver, rigs: list[Rig], tmp_path: Path, clock: FakeClock
) -> None:
    rig = _rig(rigs, _config(tmp_path, _robot_channel(robot)), clock)
    robot.scripted.append(_BUSY[robot.kind])
    event_id = rig.raise_event()

    assert rig.dispatcher.deliver_due() == 1
    (delivery,) = rig.deliveries()
    assert delivery.status is DeliveryStatus.PENDING and delivery.attempts == 1
    assert delivery.last_status_code == 200 and "refused the message" in (delivery.last_error or "")
    assert robot.accepted == []
    assert rig.dispatcher.deliver_due() == 0, "not again before its backoff"

    clock.now = delivery.next_attempt_at or clock.now
    assert rig.dispatcher.deliver_due() == 1
    clock.now += 86_400
    assert rig.dispatcher.deliver_due() == 0
    (landed,) = robot.accepted
    (delivery,) = rig.deliveries()
    assert delivery.status is DeliveryStatus.DELIVERED and delivery.attempts == 2
    assert delivery.url == f"channel:{robot.kind}-leaders", "the outbox row holds no robot credential"

    text = _message_text(robot.kind, landed.body)
    for expected in (
        "明火 Open flame",
        "红色",
        "苏州抛光厂 / 抛光车间一 / 东门 East gate",
        LOCAL_START,
        "新告警 New alert",
    ):
        assert expected in text, expected
    assert f"{PUBLIC_URL}/#event={event_id}" in text
    assert f"{PUBLIC_URL}/events/{event_id}/snapshot.jpg" in text
    colour = {"dingtalk": "#D32F2F", "wecom": 'color=\\"warning\\"', "feishu": '"template": "red"'}[
        robot.kind
    ]
    assert colour in (text if robot.kind != "wecom" else json.dumps(text)), colour


@ROBOTS
def test_a_wrong_credential_is_refused_and_retried_until_the_fixed_config_delivers_once(
    robot: RobotReceiver, rigs: list[Rig], tmp_path: Path, clock: FakeClock
) -> None:
    if robot.kind == "wecom":
        wrong = _robot_channel(robot, url=robot.url.replace(robot.credential, "00000000-dead-beef"))
    else:
        wrong = _robot_channel(robot, secret="SECwrong-secret")
    first = _rig(rigs, _config(tmp_path, wrong), clock)
    first.raise_event()
    for _ in range(3):
        assert first.dispatcher.deliver_due() == 1
        clock.now = first.deliveries()[0].next_attempt_at or clock.now
    assert robot.accepted == [] and len(robot.refused) == 3
    (delivery,) = first.deliveries()
    assert delivery.status is DeliveryStatus.PENDING and delivery.attempts == 3
    expected_code = {"dingtalk": "310000", "wecom": "93000", "feishu": "19021"}[robot.kind]
    assert f"code {expected_code}" in (delivery.last_error or "")
    assert "dead-beef" not in (delivery.last_error or "") and "wrong-secret" not in (
        delivery.last_error or ""
    )
    first.dispatcher.stop()

    fixed = _rig(
        rigs, _config(tmp_path, _robot_channel(robot)), clock
    )  # the operator fixed the YAML, restarted
    assert fixed.dispatcher.deliver_due() == 1
    clock.now += 86_400
    assert fixed.dispatcher.deliver_due() == 0
    assert len(robot.accepted) == 1
    assert fixed.deliveries()[0].status is DeliveryStatus.DELIVERED


@pytest.mark.parametrize("robot", ["dingtalk"], indirect=True)
def test_a_robots_own_spacing_holds_messages_back_without_spending_attempts(
    robot: RobotReceiver, rigs: list[Rig], tmp_path: Path, clock: FakeClock
) -> None:
    rig = _rig(rigs, _config(tmp_path, _robot_channel(robot, max_per_minute=2)), clock)
    ids = [rig.raise_event() for _ in range(3)]

    assert rig.dispatcher.deliver_due() == 3
    by_event = {d.event_id: d for d in rig.deliveries()}
    first, second, held = (by_event[i] for i in ids)
    assert first.status is DeliveryStatus.DELIVERED and second.status is DeliveryStatus.DELIVERED
    assert held.attempts == 0 and held.status is DeliveryStatus.PENDING, "held back: no attempt spent"
    assert held.last_error == "held back: dingtalk robot at 2 messages a minute"
    assert rig.metrics.deliveries.labels(result="deferred")._value.get() == 1

    clock.now += 61
    assert rig.dispatcher.deliver_due() == 1
    assert {d.status for d in rig.deliveries()} == {DeliveryStatus.DELIVERED}
    assert len(robot.accepted) == 3


_VENDOR_WAIT_S = {"dingtalk": 600.0, "wecom": 60.0, "feishu": 60.0}


@ROBOTS
def test_a_rate_limit_answer_holds_the_whole_robot_and_spends_no_attempt(
    robot: RobotReceiver, rigs: list[Rig], tmp_path: Path, clock: FakeClock
) -> None:
    """DingTalk mutes a robot for ten minutes after 130101. Its queued cards posted into the mute, one
    counted attempt each, every minute: with ``max_attempts`` every one became a dead letter."""
    wait_s = _VENDOR_WAIT_S[robot.kind]
    rig = _rig(rigs, _config(tmp_path, _robot_channel(robot, max_attempts=1)), clock)
    start = clock.now
    robot.muted_until = start + wait_s  # another sender on the robot went over its rate
    for _ in range(5):
        rig.raise_event(snapshot_jpeg=None)

    while clock.now < start + wait_s:  # the dispatcher looks every ten seconds through the mute
        rig.dispatcher.deliver_due()
        clock.now += 10
    assert len(robot.muted) == 1, "one card met the mute; the others waited it out"
    for delivery in rig.deliveries():
        assert (delivery.status, delivery.attempts) == (DeliveryStatus.PENDING, 0)
        assert delivery.next_attempt_at == start + wait_s
    muted = rig.deliveries()[0]
    assert muted.last_status_code == 200 and "refused the message" in (muted.last_error or "")
    assert "rate limit" in (rig.deliveries()[1].last_error or "")

    clock.now = start + wait_s
    assert rig.dispatcher.deliver_due() == 5
    assert {(d.status, d.attempts) for d in rig.deliveries()} == {(DeliveryStatus.DELIVERED, 1)}
    assert len(robot.accepted) == 5


@pytest.mark.parametrize("robot", ["feishu"], indirect=True)
def test_a_feishu_robot_gets_at_most_five_messages_a_second(
    robot: RobotReceiver, rigs: list[Rig], tmp_path: Path, clock: FakeClock
) -> None:
    rig = _rig(rigs, _config(tmp_path, _robot_channel(robot)), clock)
    for _ in range(7):
        rig.raise_event(snapshot_jpeg=None)

    assert rig.dispatcher.deliver_due() == 7
    assert len(robot.accepted) == 5, "Feishu refuses a sixth message within the second"
    held = [d for d in rig.deliveries() if d.status is DeliveryStatus.PENDING]
    assert [(d.attempts, d.last_error) for d in held] == [
        (0, "held back: feishu robot at 100 messages a minute and 5 a second")
    ] * 2
    clock.now += 1
    assert rig.dispatcher.deliver_due() == 2
    assert len(robot.accepted) == 7


def test_message_spacing_holds_every_message_while_the_vendor_asks_to_wait() -> None:
    clock = FakeClock(100.0)
    spacing = MessageSpacing(20, clock=clock)
    assert spacing.reserve() == 0.0
    spacing.hold(600.0)
    spacing.hold(60.0)  # a shorter wait never cuts the longer one short
    assert spacing.reserve() == 600.0 and spacing.held_s() == 600.0
    clock.now += 599.5
    assert spacing.reserve() == 0.5
    clock.now += 0.5
    assert spacing.held_s() == 0.0 and spacing.reserve() == 0.0


@pytest.mark.parametrize("robot", ["feishu"], indirect=True)
def test_colour_workshop_and_kind_filters_choose_what_a_robot_hears(
    robot: RobotReceiver, rigs: list[Rig], tmp_path: Path, clock: FakeClock
) -> None:
    channel = _robot_channel(robot, colours=["red", "orange"], workshop_ids=["polishing-1"])
    rig = _rig(rigs, _config(tmp_path, channel), clock)
    rig.raise_event(severity=RiskLevel.BLUE)
    rig.raise_event(camera_id="cam-9", workshop_id="freezer")
    red = rig.raise_event(camera_id="cam-2", behaviour=Behaviour.SMOKING, snapshot_jpeg=None)
    rig.store.transition(red, Action.ACKNOWLEDGE, actor="op", note="seen")  # not a default kind
    assert [d.event_id for d in rig.deliveries()] == [red]

    rig.dispatcher.deliver_due()
    text = _message_text("feishu", robot.accepted[0].body)
    assert "吸烟 Smoking" in text and "抛光车间一 / cam-2" in text, "a camera without a name shows its id"
    assert "snapshot.jpg" not in text, "no snapshot, no snapshot link"


@pytest.mark.parametrize("robot", ["wecom"], indirect=True)
def test_an_incident_the_pipeline_raises_into_a_channels_colours_is_a_new_alert_there(
    robot: RobotReceiver, rigs: list[Rig], tmp_path: Path, clock: FakeClock
) -> None:
    """A yellow incident was no news for a red-only channel; made red by a later revision it was an update
    (not a default kind): the red group never heard of it."""
    rig = _rig(rigs, _config(tmp_path, _robot_channel(robot, colours=["red"])), clock)
    yellow = make_event(severity=RiskLevel.YELLOW, snapshot_jpeg=None)
    rig.store.upsert_event(yellow)
    rig.store.transition(yellow.id, Action.ACKNOWLEDGE, actor="op", note="watching it")
    assert rig.deliveries() == []

    rig.store.upsert_event(replace(yellow, revision=2, severity=RiskLevel.RED))
    rig.store.upsert_event(replace(yellow, revision=3, severity=RiskLevel.RED))  # an update: no news

    (delivery,) = rig.deliveries()
    assert (delivery.kind, delivery.revision) == ("event.created", 2)
    assert rig.dispatcher.deliver_due() == 1
    assert "明火 Open flame" in _message_text("wecom", robot.accepted[0].body)


@pytest.mark.parametrize("robot", ["wecom"], indirect=True)
def test_a_channel_that_heard_the_yellow_alert_hears_the_pipeline_raise_it_to_red(
    robot: RobotReceiver, rigs: list[Rig], tmp_path: Path, clock: FakeClock
) -> None:
    """A robot on the default filters (every colour; created and escalated) got the yellow card; made red by
    a later revision it was an update, not a default kind, and the group still thought it was yellow."""
    rig = _rig(rigs, _config(tmp_path, _robot_channel(robot)), clock)
    yellow = make_event(severity=RiskLevel.YELLOW, snapshot_jpeg=None)
    rig.store.upsert_event(yellow)
    rig.store.transition(
        yellow.id, Action.ACKNOWLEDGE, actor="op", note="watching it"
    )  # no escalation follows

    rig.store.upsert_event(replace(yellow, revision=2, severity=RiskLevel.RED))
    rig.store.upsert_event(replace(yellow, revision=3, severity=RiskLevel.RED))  # an update: no news

    assert [(d.kind, d.revision) for d in rig.deliveries()] == [("event.created", 1), ("event.updated", 2)]
    assert rig.dispatcher.deliver_due() == 2
    assert "红色" in _message_text("wecom", robot.accepted[-1].body)


@pytest.mark.parametrize("robot", ["dingtalk"], indirect=True)
def test_changing_a_channels_colours_keeps_its_subscription_and_pending_messages(
    robot: RobotReceiver, rigs: list[Rig], tmp_path: Path, clock: FakeClock
) -> None:
    first = _rig(rigs, _config(tmp_path, _robot_channel(robot, colours=["red"])), clock)
    robot.scripted.append(_BUSY["dingtalk"])
    first.raise_event()
    first.dispatcher.deliver_due()
    first.dispatcher.stop()
    second = _rig(rigs, _config(tmp_path, _robot_channel(robot, colours=["red", "orange"])), clock)
    (subscription,) = second.store.subscriptions.list()
    assert subscription.url == "channel:dingtalk-leaders?colours=orange%2Cred"
    clock.now += 600
    assert second.dispatcher.deliver_due() == 1
    assert len(robot.accepted) == 1


@pytest.mark.parametrize("robot", ["wecom"], indirect=True)
def test_the_running_dispatcher_sends_a_new_alert_to_a_robot_at_once(
    robot: RobotReceiver, tmp_path: Path, clock: FakeClock
) -> None:
    config = _config(tmp_path, _robot_channel(robot))
    parts = build_service_parts(config, clock=clock)  # the composition root wires the site's channels
    parts.start()
    try:
        parts.store.upsert_event(make_event(snapshot_jpeg=None))
        assert wait_for(lambda: len(robot.accepted) == 1)
    finally:
        parts.close()


# ------------------------------------------------------------------------------------------- e-mail


@dataclass
class Smtp:
    """A real SMTP server on loopback (aiosmtpd) with STARTTLS and AUTH; ``fail_next`` scripts refusals."""

    port: int
    cert: Path
    received: list[EmailMessage]
    fail_next: list[str]
    quit_reply: str | None = None
    login: bytes = b"anjian"
    password: bytes = b"s3cret-pw"


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[Smtp]:
    aiosmtpd = pytest.importorskip("aiosmtpd.controller")
    import ssl

    from aiosmtpd.smtp import MISSING, AuthResult, LoginPassword

    cert, key = tmp_path / "smtp.pem", tmp_path / "smtp.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    state = Smtp(port=0, cert=cert, received=[], fail_next=[])

    class Handler:
        async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:
            if state.fail_next:
                return state.fail_next.pop(0)
            message = email.message_from_bytes(envelope.content, policy=email.policy.default)
            assert isinstance(message, EmailMessage)
            message["X-Test-Rcpt"] = ", ".join(envelope.rcpt_tos)
            state.received.append(message)
            return "250 OK"

        async def handle_QUIT(self, server: object, session: object, envelope: object) -> object:
            return state.quit_reply or MISSING  # MISSING: aiosmtpd's own "221 Bye"

    def authenticate(
        server: object, session: object, envelope: object, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (state.login, state.password)
        return AuthResult(success=ok, handled=False)  # not handled: the server answers 535 itself

    controller = aiosmtpd.Controller(
        Handler(), hostname="127.0.0.1", port=unused_port(), tls_context=context, require_starttls=True,
        authenticator=authenticate, auth_require_tls=True, auth_exclude_mechanism=["LOGIN"],
    )  # fmt: skip
    controller.start()
    state.port = controller.port
    yield state
    controller.stop()


def _email_channel(smtp: Smtp, **overrides: Any) -> dict[str, Any]:
    channel = {
        "name": "safety-office",
        "host": "localhost",
        "port": smtp.port,
        "security": "starttls",
        "ca_file": str(smtp.cert),
        "username": "anjian",
        "password": "s3cret-pw",
        "sender": "anjian@plant.example.cn",
        "to": ["duty@plant.example.cn", "safety@plant.example.cn"],
    }
    return {"email": [{**channel, **overrides}]}


def test_an_email_refused_by_the_server_is_retried_and_lands_once_with_text_html_and_snapshot(
    smtp: Smtp, rigs: list[Rig], tmp_path: Path, clock: FakeClock
) -> None:
    rig = _rig(rigs, _config(tmp_path, _email_channel(smtp)), clock)
    smtp.fail_next.append("451 4.3.0 mailbox busy, try again")
    event_id = rig.raise_event()

    assert rig.dispatcher.deliver_due() == 1
    (delivery,) = rig.deliveries()
    assert delivery.status is DeliveryStatus.PENDING and delivery.last_status_code == 451
    assert "mailbox busy" in (delivery.last_error or "") and smtp.received == []
    clock.now = delivery.next_attempt_at or clock.now
    assert rig.dispatcher.deliver_due() == 1
    clock.now += 86_400
    assert rig.dispatcher.deliver_due() == 0

    (mail,) = smtp.received
    assert mail["X-Test-Rcpt"] == "duty@plant.example.cn, safety@plant.example.cn"
    assert "明火 Open flame" in str(mail["Subject"]) and str(mail["Subject"]).startswith("[安监 anjian]")
    key = rig.deliveries()[0].idempotency_key
    assert mail["Message-ID"] == f"<{key.replace(':', '.')}@plant.example.cn>"
    text = mail.get_body(preferencelist=("plain",))
    html = mail.get_body(preferencelist=("html",))
    assert text is not None and html is not None
    for part in (text.get_content(), html.get_content()):
        assert "苏州抛光厂 / 抛光车间一 / 东门 East gate" in part and LOCAL_START in part
        assert f"{PUBLIC_URL}/#event={event_id}" in part
    attachments = [p for p in mail.iter_attachments() if p.get_filename() == f"{event_id}.jpg"]
    assert [a.get_content() for a in attachments] == [make_jpeg()]
    assert rig.deliveries()[0].status is DeliveryStatus.DELIVERED


def test_the_same_email_sent_twice_carries_one_message_id(
    smtp: Smtp, rigs: list[Rig], tmp_path: Path, clock: FakeClock
) -> None:
    rig = _rig(rigs, _config(tmp_path, _email_channel(smtp, is_snapshot_attached=False)), clock)
    event_id = rig.raise_event()
    rig.dispatcher.deliver_due()
    (delivery,) = rig.deliveries()
    rig.store.outbox.redeliver(delivery.id, retry_for_s=3600)  # what a crash after sending amounts to
    rig.dispatcher.deliver_due()
    first, second = smtp.received
    assert first["Message-ID"] == second["Message-ID"]
    assert not list(first.iter_attachments()), "not attached: linked"
    assert f"{PUBLIC_URL}/events/{event_id}/snapshot.jpg" in first.get_body(("plain",)).get_content()  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "password",
    [
        pytest.param("wrong-pw-123", id="ascii"),
        # Beyond ASCII: refused by the server (535), not by an encoding error before it is sent.
        pytest.param("错误pw-1", id="beyond-ascii-refused-by-the-server-not-by-an-encoding-error"),
    ],
)
def test_a_wrong_smtp_password_fails_the_attempt_without_showing_it(
    smtp: Smtp, rigs: list[Rig], tmp_path: Path, clock: FakeClock, password: str
) -> None:
    rig = _rig(rigs, _config(tmp_path, _email_channel(smtp, password=password)), clock)
    rig.raise_event()
    rig.dispatcher.deliver_due()
    (delivery,) = rig.deliveries()
    assert delivery.status is DeliveryStatus.PENDING and delivery.last_status_code == 535
    assert password not in (delivery.last_error or "") and smtp.received == []


def _config_with_camera_name(tmp_path: Path, channels: dict[str, Any], name: str) -> AnjianConfig:
    """``_config`` whose cam-1 is called ``name``, built past the site checks (as a config they miss would be)."""
    site = _site()
    workshop = site.workshops[0]
    cameras = [workshop.cameras[0].model_copy(update={"name": name}), *workshop.cameras[1:]]
    poisoned = WorkshopConfig.model_construct(**{**dict(workshop), "cameras": cameras})
    return _config(tmp_path, channels).model_copy(
        update={"site": site.model_copy(update={"workshops": [poisoned, *site.workshops[1:]]})}
    )


def test_an_email_that_cannot_be_composed_fails_alone_and_the_rest_of_its_batch_is_sent(
    smtp: Smtp, rigs: list[Rig], tmp_path: Path, clock: FakeClock
) -> None:
    channels = _email_channel(smtp, is_snapshot_attached=False, max_attempts=2)
    rig = _rig(rigs, _config_with_camera_name(tmp_path, channels, "东门\n1号"), clock)
    poisoned = rig.raise_event(camera_id="cam-1", snapshot_jpeg=None)  # its Subject would hold a line break
    fine = rig.raise_event(camera_id="cam-2", snapshot_jpeg=None)

    assert rig.dispatcher.deliver_due() == 2
    by_event = {d.event_id: d for d in rig.deliveries()}
    assert by_event[fine].status is DeliveryStatus.DELIVERED
    assert [m["X-Anjian-Event-Id"] for m in smtp.received] == [fine]
    failed = by_event[poisoned]
    assert failed.status is DeliveryStatus.PENDING and failed.attempts == 1
    assert "cannot be composed" in (failed.last_error or "") and "linefeed" in (failed.last_error or "")

    clock.now = failed.next_attempt_at or clock.now
    assert rig.dispatcher.deliver_due() == 1
    (dead,) = [d for d in rig.deliveries() if d.event_id == poisoned]
    assert dead.status is DeliveryStatus.FAILED and dead.attempts == 2, "dead-lettered by its policy"
    assert rig.dispatcher.deliver_due() == 0


def test_any_error_while_sending_one_channel_message_is_its_failed_attempt(
    smtp: Smtp, rigs: list[Rig], tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from anjian.service.channels import mailer

    compose = mailer.compose_email

    def compose_or_crash(config: Any, message: AlertMessage, snapshot: bytes | None) -> EmailMessage:
        if message.camera_id == "cam-1":
            raise RuntimeError("an unexpected bug")
        return compose(config, message, snapshot)

    monkeypatch.setattr(mailer, "compose_email", compose_or_crash)
    rig = _rig(rigs, _config(tmp_path, _email_channel(smtp, is_snapshot_attached=False)), clock)
    crashed = rig.raise_event(camera_id="cam-1", snapshot_jpeg=None)
    fine = rig.raise_event(camera_id="cam-2", snapshot_jpeg=None)

    assert rig.dispatcher.deliver_due() == 2
    by_event = {d.event_id: d for d in rig.deliveries()}
    assert by_event[fine].status is DeliveryStatus.DELIVERED and len(smtp.received) == 1
    failed = by_event[crashed]
    assert failed.status is DeliveryStatus.PENDING and failed.attempts == 1
    assert failed.last_error == "sending the message failed: RuntimeError: an unexpected bug"


def test_an_email_the_server_accepted_counts_delivered_whatever_it_answers_to_quit(
    smtp: Smtp, rigs: list[Rig], tmp_path: Path, clock: FakeClock
) -> None:
    smtp.quit_reply = "500 5.5.1 unrecognised command"
    rig = _rig(rigs, _config(tmp_path, _email_channel(smtp, is_snapshot_attached=False)), clock)
    rig.raise_event()

    assert rig.dispatcher.deliver_due() == 1
    (delivery,) = rig.deliveries()
    assert delivery.status is DeliveryStatus.DELIVERED and delivery.attempts == 1
    clock.now += 3600
    assert rig.dispatcher.deliver_due() == 0
    assert len(smtp.received) == 1, "sent once: not again on a retry"


@pytest.mark.parametrize(
    ("username", "password"),
    [("anjian", "安全pw2026"), ("安监值班", "s3cret-pw")],
    ids=["password", "username"],
)
def test_an_smtp_login_beyond_ascii_is_sent_as_utf8_and_the_email_lands(
    smtp: Smtp, rigs: list[Rig], tmp_path: Path, clock: FakeClock, username: str, password: str
) -> None:
    """smtplib encodes AUTH as ASCII: a Chinese password failed every e-mail for 24 h (UnicodeEncodeError)."""
    smtp.login, smtp.password = username.encode(), password.encode()
    channel = _email_channel(smtp, username=username, password=password, is_snapshot_attached=False)
    rig = _rig(rigs, _config(tmp_path, channel), clock)
    rig.raise_event()

    assert rig.dispatcher.deliver_due() == 1
    (delivery,) = rig.deliveries()
    assert (delivery.status, delivery.last_error) == (DeliveryStatus.DELIVERED, None)
    assert len(smtp.received) == 1


@dataclass
class SilentServer:
    """A port on loopback that takes connections and never says a word (a black-holed or stuck relay)."""

    port: int
    taken: list[socket.socket]


@pytest.fixture
def silent_server() -> Iterator[SilentServer]:
    server = socket.create_server(("127.0.0.1", 0))
    silent = SilentServer(port=server.getsockname()[1], taken=[])

    def take() -> None:
        while True:
            try:
                silent.taken.append(server.accept()[0])
            except OSError:  # closed: the test is over
                return

    with in_background(take, stop=server.close):
        yield silent
    for connection in silent.taken:
        connection.close()


def test_an_smtp_server_that_never_answers_costs_one_timeout_not_one_per_email(
    silent_server: SilentServer, rigs: list[Rig], tmp_path: Path, clock: FakeClock
) -> None:
    """A hung relay made each e-mail of a burst wait its timeout (10 s) in turn, and every robot card behind them."""
    office = {"name": "office", "host": "127.0.0.1", "port": silent_server.port, "security": "none",
              "sender": "anjian@plant.example.cn", "to": ["duty@plant.example.cn"], "timeout_s": 0.5}  # fmt: skip
    rig = _rig(rigs, _config(tmp_path, {"email": [office]}), clock)
    for _ in range(3):
        rig.raise_event(snapshot_jpeg=None)

    assert rig.dispatcher.deliver_due() == 3
    tried, *held = rig.deliveries()
    assert (tried.status, tried.attempts) == (DeliveryStatus.PENDING, 1)
    assert "timed out" in (tried.last_error or "")
    for delivery in held:
        assert (delivery.status, delivery.attempts) == (DeliveryStatus.PENDING, 0), "not tried, not counted"
        assert delivery.next_attempt_at == tried.next_attempt_at
        assert (delivery.last_error or "").startswith(f"held back: no answer to delivery {tried.id} (")
    assert wait_for(lambda: len(silent_server.taken) == 1)
    assert len(silent_server.taken) == 1


_HOSTILE = "<at id=all></at> [点我](https://evil.example.cn) *急* _斜_ ~~删~~ `码` &#60;\n### 假标题\r\n**级别 Level**: 蓝色"
_SHOWN = (
    "＜at id=all＞＜/at＞ ［点我］(https://evil.example.cn) ＊急＊ ＿斜＿ ～～删～～ ｀码｀ ＆#60; ### 假标题"
    " ＊＊级别 Level＊＊: 蓝色"
)


@pytest.mark.parametrize("kind", ["dingtalk", "wecom", "feishu"])
def test_notes_and_names_cannot_ping_link_or_forge_a_line_of_a_robot_card(tmp_path: Path, kind: str) -> None:
    """A resolve note with <at id=all></at> pinged the whole Feishu group; [x](url) put a link in the chat."""
    sample = _sample_message(tmp_path)
    message = replace(
        sample,
        title=f"【红色】明火 Open flame · {_HOSTILE}",
        fields=(("备注 Note", _HOSTILE), ("地点 Place", "苏州 / <font color=red>东门</font>")),
    )
    body = {"dingtalk": dingtalk_body, "wecom": wecom_body, "feishu": feishu_body}[kind](message)
    markdown = {
        "dingtalk": lambda: body["actionCard"]["text"],
        "wecom": lambda: body["markdown"]["content"],
        "feishu": lambda: body["card"]["elements"][0]["text"]["content"],
    }[kind]()

    assert f"**备注 Note**: {_SHOWN}" in markdown
    assert "**地点 Place**: 苏州 / ＜font color=red＞东门＜/font＞" in markdown
    for markup in (
        "<at",
        "](https://evil",
        "*急*",
        "_斜_",
        "~~删~~",
        "`码`",
        "&#60;",
        "\n### 假标题",
        "\n**级别",
    ):
        assert markup not in markdown, markup
    assert markdown.count("\n") == {"dingtalk": 2 * 2, "wecom": 3, "feishu": 1}[kind], "one line per field"
    if kind == "feishu":  # a plain_text header shows the title as written
        assert body["card"]["header"]["title"] == {"tag": "plain_text", "content": message.title}


@pytest.mark.usefixtures("no_proxy")
def test_a_robot_is_not_connected_to_at_a_link_local_address(
    rigs: list[Rig], tmp_path: Path, clock: FakeClock
) -> None:
    """The robots' client skipped the connect-time check that webhooks have (a name resolving to 169.254.x)."""
    url = "http://169.254.169.254/robot/send?access_token=abcdef123456"
    robot = RobotConfig.model_construct(name="leaders", kind="dingtalk", url=SecretStr(url), timeout_s=1.0)
    config = _config(tmp_path, {})
    config = config.model_copy(
        update={"channels": ChannelsConfig.model_construct(public_url=PUBLIC_URL, robots=[robot], email=[])}
    )  # as a host name resolving there would be: the URL checks at load time see only the name
    rig = _rig(rigs, config, clock)
    rig.raise_event(snapshot_jpeg=None)

    assert rig.dispatcher.deliver_due() == 1
    (delivery,) = rig.deliveries()
    assert (delivery.last_error or "").startswith(
        "ConnectError: refused to connect to 169.254.169.254: it is a link-local address"
    )


# ------------------------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    ("yaml_text", "field", "fault"),
    [
        ("site: {id: s, name: \"苏州\\n抛光厂\", workshops: [{id: w}]}", "site.name", "line feed (U+000A)"),
        ("site: {id: s, workshops: [{id: w, name: \"车间\\r一\"}]}", "site.workshops.0.name", "carriage return"),
        (
            "site: {id: s, workshops: [{id: w, cameras: [{id: c1, url: \"rtsp://h/1\", name: \"东门\\n1号\"}]}]}",
            "workshop 'w': cameras[0].name (camera 'c1') holds a line feed",
            "line feed",
        ),
        (
            ("site: {id: s, workshops: [{id: w, cameras: [{id: c1, url: \"rtsp://h/1\", zones: [{id: z, "
            "name: \"出口\\u2028A\", polygon: [[0, 0], [1, 0], [1, 1]]}]}]}]}"),
            "cameras[0].zones[0].name (zone 'z')",
            "line separator (U+2028)",
        ),
        (
            ("site: {id: s, workshops: [{id: w, sensors: [{id: nh3, name: \"氨气\\e[2J\", quantity: ammonia, "
            "unit: ppm, source: {kind: http}}]}]}"),
            "sensors[0].name (sensor 'nh3')",
            "U+001B",
        ),
        (
            ("site: {id: s, workshops: [{id: w}]}\nchannels: {email: [{name: m, host: h, sender: a@b.cn, "
            "to: [c@d.cn], subject_prefix: \"[安监]\\nBcc: x@evil.cn\"}]}"),
            "channels.email.0.subject_prefix",
            "line feed",
        ),
    ],
    ids=["site", "workshop", "camera", "zone", "sensor", "subject-prefix"],
)  # fmt: skip
def test_a_name_that_goes_into_an_email_subject_must_be_one_line(
    tmp_path: Path, yaml_text: str, field: str, fault: str
) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(yaml_text + "\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert field in message and fault in message and "one line" in message
    assert "Traceback" not in message


def test_channel_secrets_never_show_in_the_config_repr_or_its_errors() -> None:
    config = ChannelsConfig.model_validate(
        {
            "robots": [
                {"name": "a", "kind": "dingtalk", "url": "https://oapi.dingtalk.com/robot/send?access_token=TOKEN1",
                 "secret": "SECsecret1"},
                {"name": "b", "kind": "feishu", "url": "https://open.feishu.cn/open-apis/bot/v2/hook/HOOK1"},
            ],
            "email": [{"name": "c", "host": "smtp.example.cn", "username": "u", "password": "PASSWORD1",
                       "sender": "a@example.cn", "to": ["b@example.cn"]}],
        }
    )  # fmt: skip
    shown = repr(config) + str(config)
    for secret in ("TOKEN1", "SECsecret1", "HOOK1", "PASSWORD1"):
        assert secret not in shown
    with pytest.raises(ValidationError) as caught:
        ChannelsConfig.model_validate({"robots": [{"name": "a", "kind": "dingtalk", "url": "ftp://TOKEN2"}]})
    assert "TOKEN2" not in "".join(e["msg"] for e in caught.value.errors())
    # A URL the HTTP client cannot send to (an empty host label) is refused here, not at the first alert.
    with pytest.raises(ValidationError, match="not a valid host name") as caught:
        ChannelsConfig.model_validate(
            {
                "robots": [
                    {"name": "a", "kind": "dingtalk", "url": "https://a..b/robot/send?access_token=TOKEN3"}
                ]
            }
        )
    assert "TOKEN3" not in "".join(e["msg"] for e in caught.value.errors())


@pytest.mark.parametrize(
    ("channels", "message"),
    [
        ({"robots": [{"name": "w", "kind": "wecom", "url": "https://q/x?key=k", "secret": "s"}]}, "do not sign"),
        ({"robots": [{"name": "x", "kind": "slack", "url": "https://q/x"}]}, "dingtalk"),
        ({"robots": [{"name": "x", "kind": "wecom", "url": "https://q/x", "colours": ["pink"]}]}, "red"),
        ({"robots": [{"name": "x", "kind": "wecom", "url": "https://q/x", "kinds": ["event.nope"]}]}, "event.nope"),
        ({"robots": [{"name": "x", "kind": "wecom", "url": "https://q/x", "colour": ["red"]}]}, "Extra inputs"),
        ({"robots": [{"name": "x", "kind": "wecom", "url": "https://q/x", "max_per_minute": 0}]}, "greater than"),
        (
            {"robots": [{"name": "x", "kind": "wecom", "url": "https://q/x"}],
             "email": [{"name": "x", "host": "h", "sender": "a@b.cn", "to": ["c@d.cn"]}]},
            "appears twice",
        ),
        ({"email": [{"name": "m", "host": "h", "sender": "a@b.cn", "to": ["not-an-address"]}]}, "not e-mail"),
        ({"email": [{"name": "m", "host": "h", "sender": "a@b.cn", "to": ["c@d.cn"], "username": "u"}]}, "both"),
        (
            {"email": [{"name": "m", "host": "h", "sender": "a@b.cn", "to": ["c@d.cn"], "security": "none",
                        "username": "u", "password": "p"}]},
            "in clear",
        ),
        ({"public_url": "https://anjian.plant.cn:84430"}, ":84430': the port is out of range"),  # a dead link in each message
    ],
    ids=["wecom-secret", "unknown-vendor", "colour", "kind", "typo", "rate", "duplicate", "address", "login",
         "clear-password", "public-url-port"],
)  # fmt: skip
def test_bad_channel_config_is_refused_with_what_is_wrong(channels: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ChannelsConfig.model_validate(channels)


@pytest.mark.parametrize(
    ("workshop", "message"),
    [
        ("paint-shop", "workshop 'paint-shop' is not in the site"),
        ("empty", "workshop 'empty' has no cameras"),
    ],
)
def test_a_channel_on_an_unknown_or_empty_workshop_is_refused(
    tmp_path: Path, workshop: str, message: str
) -> None:
    robot = {"name": "x", "kind": "wecom", "url": "https://q/x?key=k", "workshop_ids": [workshop]}
    site = _site().model_copy(update={"workshops": [*_site().workshops, WorkshopConfig(id="empty")]})
    with pytest.raises(ValidationError, match=message):
        AnjianConfig.model_validate(
            {"site": site.model_dump(), "storage": {"dir": str(tmp_path)}, "channels": {"robots": [robot]}}
        )


def test_the_readme_example_is_a_valid_channels_section() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Group robots and e-mail", 1)[1]
    block = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    config = ChannelsConfig.model_validate(yaml.safe_load(block)["channels"])
    assert [r.kind for r in config.robots] == ["dingtalk", "wecom", "feishu"]
    assert config.email[0].security == "starttls"


def test_a_broken_yaml_line_with_a_robot_url_is_echoed_without_its_token(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(
        "site: {id: s, workshops: [{id: w}]}\nchannels:\n  robots:\n"
        "    - url: https://open.feishu.cn/open-apis/bot/v2/hook/HOOKTOKEN1 kind: feishu\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert "open-apis/bot/v2/hook/***" in str(caught.value)
    assert "HOOKTOKEN1" not in str(caught.value)


@pytest.mark.parametrize("robot", ["dingtalk"], indirect=True)
def test_an_escalation_is_a_second_card_that_says_so(
    robot: RobotReceiver, rigs: list[Rig], tmp_path: Path, clock: FakeClock
) -> None:
    rig = _rig(rigs, _config(tmp_path, _robot_channel(robot)), clock)
    rig.raise_event(severity=RiskLevel.ORANGE)
    clock.now += 901
    rig.store.escalate_overdue(SlaConfig(orange_s=900))
    assert rig.dispatcher.deliver_due() == 2
    titles = [landed.body["actionCard"]["title"] for landed in robot.accepted]
    assert sorted(titles) == sorted(
        [
            "【橙色】明火 Open flame · 东门 East gate",
            "[超时未确认，已升级] 【红色】明火 Open flame · 东门 East gate",
        ]
    )
    escalated = next(a for a in robot.accepted if "升级" in a.body["actionCard"]["title"])
    assert "红色 red (已升级 escalated ×1)" in escalated.body["actionCard"]["text"]


def test_a_robot_answer_quoting_its_url_is_recorded_without_the_token(tmp_path: Path) -> None:
    token = "3f9a1c2e-hook-token-77"
    url = f"https://open.feishu.cn/open-apis/bot/v2/hook/{token}"
    config = RobotConfig(name="f", kind="feishu", url=SecretStr(url), secret=SecretStr("feishu-secret-1"))
    transport = httpx.MockTransport(
        lambda request: httpx.Response(502, text=f"bad gateway for {request.url}")
    )
    with httpx.Client(transport=transport) as client:
        channel = RobotChannel(config, client, clock=lambda: 1_800_000_000.0)
        outcome = channel.send(_sample_message(tmp_path), None)
    assert outcome.status_code == 502 and outcome.error is not None
    assert token not in outcome.error and "<feishu robot f>" in outcome.error


@pytest.mark.parametrize("answer", [{"errcode": False}, {"errcode": 0.0}, {"errcode": "0"}, {}])
def test_only_an_integer_zero_error_code_is_a_robots_success(
    tmp_path: Path, answer: dict[str, object]
) -> None:
    config = RobotConfig(
        name="w", kind="wecom", url=SecretStr("https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k")
    )
    transport = httpx.MockTransport(lambda _request: httpx.Response(200, json=answer))
    with httpx.Client(transport=transport) as client:
        outcome = RobotChannel(config, client, clock=lambda: 1_800_000_000.0).send(
            _sample_message(tmp_path), None
        )
    assert outcome.error is not None and "refused the message" in outcome.error


def test_a_sensor_alert_card_names_the_sensor_and_gives_its_reading_not_a_confidence(tmp_path: Path) -> None:
    site = _site()
    sensor = SensorConfig.model_validate(
        {"id": "nh3-1", "name": "氨气 机房", "quantity": "ammonia", "unit": "ppm", "source": {"kind": "http"}}
    )
    workshops = [site.workshops[0].model_copy(update={"sensors": [sensor]}), *site.workshops[1:]]
    facts = SensorFacts("nh3-1", "ammonia", "ppm", "high", 62.5, 80.0, 50.0, ("cam-1",))
    event = make_event(behaviour=Behaviour.SENSOR_THRESHOLD, camera_id="nh3-1", boxes=(), sensor=facts)
    store = EventStore(f"sqlite:///{tmp_path / 'sensor.db'}")
    try:
        payload = WebhookPayload.for_event(store.upsert_event(event).event).model_dump(mode="json")
    finally:
        store.close()

    message = MessageBuilder(site.model_copy(update={"workshops": workshops}), PUBLIC_URL).build(
        payload, idempotency_key="k"
    )

    fields = dict(message.fields)
    assert fields["读数 Reading"] == "62.5 ppm · 峰值 peak 80 · 阈值 limit 50"
    assert "置信度 Confidence" not in fields
    assert fields["行为 Behaviour"] == "传感器超限 Sensor threshold"
    assert "氨气 机房" in fields["地点 Place"]


def _sample_message(tmp_path: Path) -> AlertMessage:
    """The message of a new red open-flame alert on cam-1, stored for real."""
    store = EventStore(f"sqlite:///{tmp_path / 'sample.db'}")
    try:
        event = make_event()
        stored = store.upsert_event(event).event
        payload = WebhookPayload.for_event(stored).model_dump(mode="json")
    finally:
        store.close()
    return MessageBuilder(_site(), PUBLIC_URL).build(payload, idempotency_key="k")
