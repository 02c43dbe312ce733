"""One NATS connection on its own asyncio loop, usable from the service's threads.

nats-py is asyncio; the service's workers (the webhook dispatcher, the periodic threads)
are threads. ``BusConnection`` runs a private event loop in a daemon thread, connects
(and keeps reconnecting, forever, with the client's own reconnect logic once a first
connection was made), and offers ``call`` to run a coroutine on that loop and wait
for its result from any thread, and ``spawn`` for the long-running consumers that live
on the loop. A server that is down when the service starts is retried in the
background: the service starts anyway and the outbox keeps what it could not publish.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import TimeoutError as FutureTimeoutError
from typing import Any, TypeVar

import nats
from nats.aio.client import Client
from nats.js import JetStreamContext

from anjian.cameras.backoff import backoff_delay_s
from anjian.cameras.url import mask_credentials, mask_url
from anjian.service.bus.errors import BusUnavailableError

__all__ = ["BusConnection"]

logger = logging.getLogger(__name__)

T = TypeVar("T")


class BusConnection:
    """A NATS client on a private event loop thread; thread-safe.

    Args:
        url: The NATS server, ``nats://host:port``.
        name: The client's name (shown by the server's monitoring).
        reconnect_wait_s: Pause between reconnect attempts.
        connect_timeout_s: How long one connection attempt waits.

    Example:
        >>> bus = BusConnection("nats://127.0.0.1:4222", name="anjian-plant")
        >>> bus.start()
        >>> ack = bus.call(lambda js: js.publish("subject", b"data"), timeout_s=5)
        >>> bus.stop()
    """

    def __init__(
        self,
        url: str,
        *,
        name: str,
        reconnect_wait_s: float = 0.5,
        connect_timeout_s: float = 2.0,
    ) -> None:
        self.url = url
        self._shown_url = mask_url(url)  # in logs and errors: never a URL's credentials
        self.name = name
        self._reconnect_wait_s = reconnect_wait_s
        self._connect_timeout_s = connect_timeout_s
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"{name}-loop", daemon=True)
        self._client: Client | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._connected = threading.Event()
        self._is_stopped = False

    @property
    def is_connected(self) -> bool:
        """Whether the client is connected to the server now."""
        client = self._client
        return client is not None and client.is_connected

    def start(self) -> None:
        """Start the loop thread and connect in the background (retrying until it succeeds)."""
        self._thread.start()
        self.spawn(self._connect_forever())  # tracked: stop cancels it even mid-backoff

    def wait_connected(self, timeout_s: float) -> bool:
        """Whether a first connection was made within ``timeout_s``."""
        return self._connected.wait(timeout_s)

    async def _connect_forever(self) -> None:
        """Connect; retry with backoff while the server is unreachable."""
        failures = 0
        while not self._is_stopped:
            try:
                self._client = await nats.connect(
                    self.url,
                    name=self.name,
                    allow_reconnect=True,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=self._reconnect_wait_s,
                    connect_timeout=self._connect_timeout_s,
                    error_cb=self._on_error,
                    disconnected_cb=self._on_disconnected,
                    reconnected_cb=self._on_reconnected,
                )
            except Exception as exc:  # noqa: BLE001 - any failure to connect is retried
                failures += 1
                delay_s = backoff_delay_s(failures, base_s=self._reconnect_wait_s, max_s=10.0)
                if failures == 1 or failures % 20 == 0:
                    logger.warning(
                        "%s: cannot reach NATS at %s (%s); retrying",
                        self.name,
                        self._shown_url,
                        mask_credentials(str(exc), url=self.url),
                    )
                await asyncio.sleep(delay_s)
                continue
            logger.info("%s: connected to NATS at %s", self.name, self._shown_url)
            self._connected.set()
            return

    async def _on_error(self, exc: Exception) -> None:
        logger.debug("%s: NATS client error: %s", self.name, mask_credentials(str(exc), url=self.url))

    async def _on_disconnected(self) -> None:
        if not self._is_stopped:
            logger.warning("%s: disconnected from NATS at %s; reconnecting", self.name, self._shown_url)

    async def _on_reconnected(self) -> None:
        logger.info("%s: reconnected to NATS at %s", self.name, self._shown_url)

    def _require_client(self) -> Client:
        """The connected client, or ``BusUnavailableError``."""
        client = self._client
        if client is None or not client.is_connected:
            raise BusUnavailableError(f"not connected to NATS at {self._shown_url}")
        return client

    def max_payload(self) -> int | None:
        """The largest message (bytes) the connected server takes, as it announced; ``None`` when not connected."""
        client = self._client
        return client.max_payload if client is not None and client.is_connected else None

    def client(self) -> Client:
        """The connected client, for core NATS (request/reply, subscriptions); use it on the loop only.

        Raises:
            BusUnavailableError: Not connected now.
        """
        return self._require_client()

    def jetstream(self, domain: str | None = None) -> JetStreamContext:
        """A JetStream context of the connected client (``domain``: another server's JetStream over a leaf link).

        Raises:
            BusUnavailableError: Not connected now.
        """
        return self._require_client().jetstream(domain=domain)

    def call(self, work: Callable[[JetStreamContext], Awaitable[T]], *, timeout_s: float) -> T:
        """Run ``work(jetstream)`` on the loop and wait for its result (from any thread but the loop's).

        Raises:
            BusUnavailableError: Not connected, or it did not finish within ``timeout_s``.
            Exception: What ``work`` raised.
        """

        async def run() -> T:
            return await work(self.jetstream())

        future = asyncio.run_coroutine_threadsafe(run(), self._loop)
        try:
            return future.result(timeout_s)
        except FutureTimeoutError as exc:
            future.cancel()
            raise BusUnavailableError(
                f"NATS at {self._shown_url} did not answer within {timeout_s:g}s"
            ) from exc

    def call_soon(self, callback: Callable[[], object]) -> None:
        """Run ``callback()`` on the loop soon (from any thread): e.g. set an ``asyncio.Event``."""
        self._loop.call_soon_threadsafe(callback)

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        """Run a long-lived coroutine (a consumer) on the loop; it is cancelled by ``stop``."""

        def create() -> None:
            task = self._loop.create_task(coroutine)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        self._loop.call_soon_threadsafe(create)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Cancel the consumers, drain and close the client, end and close the loop; safe to call twice."""
        if self._is_stopped or not self._thread.is_alive():
            self._is_stopped = True
            self._close_loop(timeout_s)
            return
        self._is_stopped = True

        async def shutdown() -> None:
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            if self._client is not None and not self._client.is_closed:
                try:
                    await asyncio.wait_for(self._client.close(), timeout_s)
                except Exception as exc:  # noqa: BLE001 - closing is best effort
                    logger.debug("%s: closing the NATS client: %s", self.name, exc)

        try:
            asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(timeout_s + 1)
        except Exception as exc:  # noqa: BLE001 - the loop is stopped below either way
            logger.warning("%s: NATS client did not close cleanly: %s", self.name, exc)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout_s)
        self._close_loop(timeout_s)

    def _close_loop(self, timeout_s: float) -> None:
        """Cancel what is left on the stopped loop and close it.

        A task left pending on an abandoned loop is destroyed by the garbage collector at
        any later point of the process, logging from inside whatever code is running then
        (inside ``ast.parse`` that is a ``SystemError``).
        """
        if self._thread.is_alive() or self._loop.is_closed():
            return  # still running (join timed out): closing it now would raise
        pending = [task for task in asyncio.all_tasks(self._loop) if not task.done()]
        for task in pending:
            task.cancel()
        if pending:
            self._loop.run_until_complete(asyncio.wait(pending, timeout=timeout_s))
        self._loop.close()
