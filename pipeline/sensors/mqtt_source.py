"""Readings from one MQTT broker: one client, every sensor's topic, reconnecting with the project's backoff.

A message's payload is the number itself (``12.5``) or JSON holding it at the
sensor's ``json_path`` (``{"data": {"nh3": 12.5}}`` with ``data.nh3``; list items by
index: ``values.0``); a numeric string counts as a number. A payload that holds no
number, and a message on a subscribed topic no sensor reads, is counted as bad input
and logged once. The client runs its network loop on its own thread; a lost
connection is retried after ``anjian.cameras.backoff.Backoff``'s delays, the URL's
credentials masked in every log line.
"""

from __future__ import annotations

import json
import logging
import math
import random
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from anjian.cameras.backoff import Backoff
from anjian.cameras.url import mask_credentials, split_url
from anjian.pipeline.sensors.config import MqttBrokerConfig, MqttSensorSource
from anjian.pipeline.sensors.reading import Reading, ReadingConsumer

__all__ = ["MqttSource", "parse_payload"]

logger = logging.getLogger(__name__)

_LOOP_TIMEOUT_S = 0.5


def parse_payload(payload: bytes, json_path: str | None) -> float:
    """The number a payload holds: the payload itself, or the value at ``json_path`` of its JSON.

    Args:
        payload: The MQTT message payload.
        json_path: Dot path into the JSON (``data.nh3``, ``values.0``), or ``None`` for a plain number.

    Returns:
        The finite number.

    Raises:
        ValueError: The payload is not UTF-8, not JSON, lacks the path, or holds no finite number there.

    Example:
        >>> parse_payload(b'{"data": {"nh3": 12.5}}', "data.nh3")
        12.5
    """
    try:
        text = payload.decode("utf-8").strip()
    except UnicodeDecodeError as exc:
        raise ValueError(f"payload is not UTF-8: {payload[:40]!r}") from exc
    value: Any = text
    if json_path is not None:
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"payload is not JSON ({exc.msg}): {text[:60]!r}") from exc
        except RecursionError:
            raise ValueError(f"payload's JSON nests too deep: {text[:60]!r}") from None
        except ValueError:  # Python's cap on int digits (4300), met inside json.loads
            raise ValueError(f"payload's JSON holds a number too long to read: {text[:60]!r}") from None
        for part in json_path.split("."):
            if isinstance(value, dict) and part in value:
                value = value[part]
            elif isinstance(value, list) and part.isascii() and part.isdigit() and int(part) < len(value):
                value = value[int(part)]
            else:
                raise ValueError(f"payload has no {json_path!r} (stopped at {part!r}): {text[:60]!r}")
    return _number(value)


def _number(value: Any) -> float:
    """A finite float from a JSON number or a numeric string; booleans and the rest are refused."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"expected a number, got {type(value).__name__} {str(value)[:40]!r}")  # noqa: TRY004 - a bad payload, not a bad call
    try:
        number = float(value)
    except (ValueError, OverflowError):  # an int of 400 digits overflows a float
        raise ValueError(f"expected a number, got {str(value)[:40]!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"expected a finite number, got {str(value)[:40]!r}")
    return number


class MqttSource:
    """One broker's client, turning messages on the sensors' topics into ``Reading``s.

    Args:
        broker: The broker's connection settings.
        sensors: ``(sensor id, its MQTT source)`` of every sensor reading through this broker.
        consumer: Takes the readings and counts bad input (the ``SensorRunner``).
        clock: Wall clock, epoch seconds (a reading's time is when it arrived).
        rng: Random source of the backoff's jitter.

    Example:
        >>> source = MqttSource(broker, [("nh3-1", nh3_source)], runner)
        >>> source.start(); ...; source.stop()
    """

    def __init__(
        self,
        broker: MqttBrokerConfig,
        sensors: Sequence[tuple[str, MqttSensorSource]],
        consumer: ReadingConsumer,
        *,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.broker = broker
        self._consumer = consumer
        self._clock = clock
        self._backoff = Backoff(broker.reconnect, rng or random.Random())
        self._by_topic: dict[str, list[tuple[str, str | None]]] = {}
        for sensor_id, source in sensors:
            self._by_topic.setdefault(source.topic, []).append((sensor_id, source.json_path))
        self._filters = list(broker.subscribe) or sorted(self._by_topic)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._connected = threading.Event()
        self._subscribe_mid: int | None = None
        self.client = self._new_client()

    @property
    def is_connected(self) -> bool:
        """True while the client holds a session with the broker and the broker has acknowledged its subscriptions."""
        return self._connected.is_set()

    def start(self) -> None:
        """Connect and read on a background thread (reconnecting until ``stop``)."""
        if self._thread is not None:
            raise RuntimeError(f"MQTT source {self.broker.id} was started before")
        self._thread = threading.Thread(target=self._run, name=f"mqtt-{self.broker.id}", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Disconnect and end the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        self._connected.clear()

    def _new_client(self) -> mqtt.Client:
        parts = split_url(self.broker.url.get_secret_value())
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.broker.client_id or f"anjian-{self.broker.id}",
            clean_session=True,
        )
        if parts.user is not None:
            client.username_pw_set(parts.user, parts.password)
        if parts.scheme == "mqtts":
            client.tls_set_context(ssl.create_default_context())
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        return client

    def _endpoint(self) -> tuple[str, int]:
        parts = split_url(self.broker.url.get_secret_value())
        host = parts.host.strip("[]")
        return host, parts.port if parts.port is not None else (8883 if parts.scheme == "mqtts" else 1883)

    def _run(self) -> None:
        host, port = self._endpoint()
        while not self._stop.is_set():
            connected_at = self._clock()
            try:
                self.client.connect(host, port, keepalive=self.broker.keepalive_s)
                while not self._stop.is_set():
                    rc = self.client.loop(timeout=_LOOP_TIMEOUT_S)
                    if rc != mqtt.MQTT_ERR_SUCCESS:
                        raise ConnectionError(mqtt.error_string(rc))
            except Exception as exc:  # noqa: BLE001 - whatever ends a session, the reader reconnects
                self._connected.clear()
                if self._stop.is_set():
                    break
                if self._clock() - connected_at >= self.broker.reconnect.max_delay_s:
                    self._backoff.reset()  # the connection held: start over from the short delay
                delay = self._backoff.next_delay()
                logger.warning(
                    "MQTT %s (%s): %s; reconnect in %.1fs",
                    self.broker.id,
                    self.broker.display_url,
                    mask_credentials(str(exc) or type(exc).__name__, url=self.broker.url.get_secret_value()),
                    delay,
                )
                self._stop.wait(delay)
        try:
            self.client.disconnect()
        except (OSError, ValueError):  # already gone
            pass

    def _on_connect(
        self, client: mqtt.Client, _userdata: object, _flags: object, reason: Any, _props: object
    ) -> None:
        if reason.is_failure:
            logger.warning(
                "MQTT %s (%s): connection refused: %s", self.broker.id, self.broker.display_url, reason
            )
            return
        filters: list[tuple[str, int]] = [(topic, self.broker.qos) for topic in self._filters]
        _rc, self._subscribe_mid = client.subscribe(filters)

    def _on_subscribe(
        self, _client: mqtt.Client, _userdata: object, mid: int, reasons: list[Any], _props: object
    ) -> None:
        if mid != self._subscribe_mid:
            return
        refused = [topic for topic, reason in zip(self._filters, reasons, strict=False) if reason.is_failure]
        if refused:
            logger.warning(
                "MQTT %s (%s): the broker refused %s", self.broker.id, self.broker.display_url, refused
            )
        self._connected.set()  # subscribed: from now on no reading is missed
        logger.info(
            "MQTT %s (%s): connected, %d filter(s)",
            self.broker.id,
            self.broker.display_url,
            len(self._filters),
        )

    def _on_disconnect(
        self, _client: mqtt.Client, _userdata: object, _flags: object, reason: Any, _props: object
    ) -> None:
        self._connected.clear()
        if not self._stop.is_set():
            logger.warning("MQTT %s (%s): disconnected: %s", self.broker.id, self.broker.display_url, reason)

    def _on_message(self, _client: mqtt.Client, _userdata: object, message: mqtt.MQTTMessage) -> None:
        now = self._clock()
        readers = self._by_topic.get(message.topic)
        if readers is None:
            self._consumer.bad_input("unknown_topic", message.topic, f"broker {self.broker.id}")
            return
        if message.retain:
            # Replayed by the broker on (re)subscribing: a value of unknown age, which would make a
            # dead sensor look alive. Live messages reach an existing subscription unflagged.
            for sensor_id, _path in readers:
                self._consumer.bad_input("retained", sensor_id, f"topic {message.topic}: a retained message")
            return
        for sensor_id, json_path in readers:
            try:
                value = parse_payload(bytes(message.payload), json_path)
            except Exception as exc:  # noqa: BLE001 - one message cannot stop the broker's reader
                self._consumer.bad_input("not_numeric", sensor_id, f"topic {message.topic}: {exc}")
                continue
            self._consumer.offer(Reading(sensor_id, value, at=now, received_at=now))
