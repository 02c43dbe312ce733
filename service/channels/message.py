"""One alert message, in Chinese and English, built from an outbox delivery for robots and e-mail.

Robots and e-mail render the same ``AlertMessage``: its colour, where (site, workshop,
camera and zone by the names the site YAML gives them, ids where it gives none), when
(in the site's time zone), what (the behaviour in Chinese and English), what happened
to the alert (raised, escalated, acknowledged ...) and links to the alert and its
snapshot under the service's public URL. It is built from the payload stored with the
delivery, so a retry sends the message as it was when the change happened.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from anjian.pipeline.event_wire import SensorFactsWire
from anjian.service.behaviour_names import behaviour_names
from anjian.service.config import SiteConfig
from anjian.service.schemas import WebhookPayload

__all__ = ["SOURCE", "AlertMessage", "MessageBuilder", "bilingual"]

SOURCE = "安监 anjian"
"""Every message carries it: a robot's custom keyword (自定义关键词) of 安监 or anjian always matches."""

_COLOURS: dict[str, tuple[str, str]] = {
    "red": ("红色", "red"),
    "orange": ("橙色", "orange"),
    "yellow": ("黄色", "yellow"),
    "blue": ("蓝色", "blue"),
}
_KINDS: dict[str, tuple[str, str]] = {
    "event.created": ("新告警", "New alert"),
    "event.updated": ("告警更新", "Alert updated"),
    "event.ended": ("现场已恢复", "Incident ended"),
    "event.acknowledged": ("已确认", "Acknowledged"),
    "event.dispatched": ("已派人处理", "Dispatched"),
    "event.resolved": ("已处理", "Resolved"),
    "event.false_alarm": ("误报", "False alarm"),
    "event.closed": ("已关闭", "Closed"),
    "event.escalated": ("超时未确认，已升级", "Escalated: not acknowledged in time"),
}
_STATES: dict[str, tuple[str, str]] = {
    "raised": ("待确认", "raised"),
    "acknowledged": ("已确认", "acknowledged"),
    "dispatched": ("已派人", "dispatched"),
    "resolved": ("已处理", "resolved"),
    "false_alarm": ("误报", "false alarm"),
    "closed": ("已关闭", "closed"),
}


def bilingual(table: Mapping[str, tuple[str, str]], key: str) -> str:
    """``"中文 English"`` for a known key, the key itself otherwise."""
    zh, en = table.get(key, (key, key))
    return zh if zh == en else f"{zh} {en}"


@dataclass(frozen=True, slots=True)
class AlertMessage:
    """What a robot card or an e-mail says about one announcement of an alert.

    Attributes:
        event_id: The alert.
        idempotency_key: The delivery's key (the same on every retry; e-mail's Message-ID).
        kind: ``event.created``, ``event.escalated`` ...
        colour: ``red``, ``orange``, ``yellow`` or ``blue`` (the alert's current colour).
        title: One line: colour, behaviour and camera, in Chinese and English.
        behaviour_zh: The behaviour in Chinese.
        behaviour_en: The behaviour in English.
        place: Site / workshop / camera (/ zone) by their names.
        time_text: When it started, in the site's time zone (``2026-12-01 19:05:03 CST``).
        fields: ``(label, value)`` rows: level, place, time, state, what happened, confidence.
        alert_url: The alert in the control room, or ``None`` without a public URL.
        snapshot_url: The snapshot JPEG, or ``None`` (no snapshot or no public URL).
        camera_id: The camera (to find the snapshot file).
        has_snapshot: Whether the event had a snapshot when the change was announced.
    """

    event_id: str
    idempotency_key: str
    kind: str
    colour: str
    title: str
    behaviour_zh: str
    behaviour_en: str
    place: str
    time_text: str
    fields: tuple[tuple[str, str], ...]
    alert_url: str | None
    snapshot_url: str | None
    camera_id: str
    has_snapshot: bool


class MessageBuilder:
    """Builds ``AlertMessage``s with the site's names and time zone and the service's public URL.

    Args:
        site: The site YAML's ``site`` section (names, time zone).
        public_url: The service's address as readers reach it; ``None``: no links.
    """

    def __init__(self, site: SiteConfig, public_url: str | None) -> None:
        self._site_name = site.name or site.id
        self._zone = ZoneInfo(site.timezone)
        self._workshops = {w.id: w.name or w.id for w in site.workshops}
        self._cameras = {c.id: c.name or c.id for w in site.workshops for c in w.cameras}
        self._cameras.update({s.id: s.display_name for w in site.workshops for s in w.sensors})
        self._zones = {
            (c.id, z.id): z.name or z.id for w in site.workshops for c in w.cameras for z in c.zones
        }
        self._public_url = None if public_url is None else public_url.rstrip("/")

    def build(self, payload: Mapping[str, Any], *, idempotency_key: str) -> AlertMessage:
        """The message announcing a delivery's stored payload.

        Raises:
            pydantic.ValidationError: The payload is not a ``WebhookPayload``.
        """
        announced = WebhookPayload.model_validate(payload)
        event = announced.event
        behaviour_zh, behaviour_en = behaviour_names(str(event.behaviour))
        camera = self._cameras.get(event.camera_id, event.camera_id)
        parts = [self._site_name, self._workshops.get(event.workshop_id, event.workshop_id), camera]
        if event.zone_id:
            parts.append(self._zones.get((event.camera_id, event.zone_id), event.zone_id))
        place = " / ".join(parts)
        time_text = _local_time(event.started_at, self._zone)
        colour = str(event.severity)
        level = bilingual(_COLOURS, colour)
        if event.escalations:
            level += f" (已升级 escalated ×{event.escalations})"
        ongoing = "已结束 ended" if event.ended_at is not None else "持续中 ongoing"
        fields: list[tuple[str, str]] = [
            ("级别 Level", level),
            ("行为 Behaviour", f"{behaviour_zh} {behaviour_en}"),
            ("地点 Place", place),
            ("时间 Time", time_text),
            ("状态 State", f"{bilingual(_STATES, str(event.state))} · {ongoing}"),
            ("事件 Update", bilingual(_KINDS, announced.kind)),
        ]
        if announced.change is not None and announced.change.actor not in ("pipeline", "system"):
            who = announced.change.actor + (
                f" → {announced.change.assignee}" if announced.change.assignee else ""
            )
            fields.append(("处理人 By", who))
        if announced.change is not None and announced.change.note:
            fields.append(("备注 Note", announced.change.note[:500]))
        if event.sensor is not None:
            fields.append(("读数 Reading", _reading_text(event.sensor)))
        else:
            fields.append(("置信度 Confidence", f"{event.confidence:.2f}"))
        fields.append(
            ("来源 Source", SOURCE)
        )  # a robot with the keyword setting: 安监 or anjian always matches
        base = self._public_url
        return AlertMessage(
            event_id=event.id,
            idempotency_key=idempotency_key,
            kind=announced.kind,
            colour=colour,
            title=_title(announced.kind, colour, f"{behaviour_zh} {behaviour_en} · {camera}"),
            behaviour_zh=behaviour_zh,
            behaviour_en=behaviour_en,
            place=place,
            time_text=time_text,
            fields=tuple(fields),
            alert_url=None if base is None else f"{base}/#event={event.id}",
            snapshot_url=None if base is None or event.snapshot_url is None else base + event.snapshot_url,
            camera_id=event.camera_id,
            has_snapshot=event.snapshot_url is not None,
        )


def _title(kind: str, colour: str, what: str) -> str:
    """``【红色】明火 Open flame · 东门``, led by what happened when it is not a new alert."""
    title = f"【{_COLOURS.get(colour, (colour,))[0]}】{what}"
    if kind == "event.created":
        return title
    return f"[{_KINDS.get(kind, (kind,))[0]}] {title}"


def _local_time(moment: datetime, zone: ZoneInfo) -> str:
    """``moment`` in ``zone`` as ``YYYY-MM-DD HH:MM:SS TZ``."""
    local = moment.astimezone(zone)
    return f"{local:%Y-%m-%d %H:%M:%S} {local.tzname() or ''}".strip()


def _reading_text(sensor: SensorFactsWire) -> str:
    """A sensor event's reading on a card: value, peak and limit crossed, in the sensor's unit."""
    unit = f" {sensor.unit}" if sensor.unit else ""
    per = "/min" if sensor.kind == "rate" else ""
    parts = [] if sensor.value is None else [f"{sensor.value:g}{unit}{per}"]
    if sensor.peak is not None:
        parts.append(f"峰值 peak {sensor.peak:g}")
    if sensor.threshold is not None:
        parts.append(f"阈值 limit {sensor.threshold:g}")
    return " · ".join(parts) or "无数据 no data"
