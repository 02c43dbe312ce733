"""Request limits: the body size a route accepts, and failed token attempts per client address.

Body size: a route refuses a body over its limit with 413 before reading it when
``Content-Length`` says so, and as soon as the streamed body passes the limit
when it does not (chunked uploads). Failed attempts: each client address holds
a token bucket of ``burst`` failures that refills at ``per_minute``; while it is
empty, that address's guesses are refused with 429 and ``Retry-After`` without
being checked. Callers that succeed never spend from it.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from starlette.datastructures import Headers
from starlette.types import Message, Receive, Scope

from anjian.service.api.problems import ApiProblem

__all__ = ["BodyTooLargeError", "FailedAuthLimiter", "check_declared_length", "limit_body"]


class BodyTooLargeError(ApiProblem):
    """413: the request body is larger than the route accepts.

    Args:
        max_bytes: The route's limit.
    """

    def __init__(self, max_bytes: int) -> None:
        super().__init__(
            413,
            f"the request body is larger than this route accepts ({max_bytes:,} bytes at most)",
            extensions={"max_bytes": max_bytes},
        )
        self.max_bytes = max_bytes


def check_declared_length(scope: Scope, max_bytes: int) -> None:
    """Refuse a request whose ``Content-Length`` is over ``max_bytes`` before any of it is read.

    Raises:
        BodyTooLargeError: The declared length is over the limit.
    """
    declared = Headers(scope=scope).get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > max_bytes:
        raise BodyTooLargeError(max_bytes)


def limit_body(receive: Receive, max_bytes: int) -> Receive:
    """``receive`` that raises ``BodyTooLargeError`` once the body read so far passes ``max_bytes``.

    Args:
        receive: The ASGI receive channel.
        max_bytes: Most body bytes allowed.

    Returns:
        The wrapped channel.
    """
    received = 0

    async def limited() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > max_bytes:
                raise BodyTooLargeError(max_bytes)
        return message

    return limited


class FailedAuthLimiter:
    """Token buckets of failed authentication attempts, one per client address; thread-safe.

    Args:
        burst: Failures an address may make in a row before it is refused.
        per_minute: Failures an address earns back per minute.
        clock: Monotonic seconds.
        max_clients: Addresses remembered at once; the least recently failed are forgotten first
            (an attacker cycling addresses gains nothing but its own fresh buckets).

    Example:
        >>> limiter = FailedAuthLimiter(burst=2, per_minute=6)
        >>> limiter.record_failure("10.0.0.9"); limiter.record_failure("10.0.0.9")
        >>> limiter.retry_after_s("10.0.0.9") > 0
        True
    """

    def __init__(
        self,
        *,
        burst: int,
        per_minute: float,
        clock: Callable[[], float] = time.monotonic,
        max_clients: int = 10_000,
    ) -> None:
        if burst < 1 or per_minute <= 0 or max_clients < 1:
            raise ValueError(
                f"burst and max_clients must be >= 1 and per_minute > 0, got {burst}, {max_clients}, {per_minute}"
            )
        self._burst = float(burst)
        self._rate_per_s = per_minute / 60.0
        self._clock = clock
        self._max_clients = max_clients
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # client -> (tokens, at)
        self._lock = threading.Lock()

    def _level(self, client: str, now: float) -> float:
        """Tokens ``client`` holds now (refilled since its last failure)."""
        tokens, at = self._buckets.get(client, (self._burst, now))
        return min(self._burst, tokens + (now - at) * self._rate_per_s)

    def retry_after_s(self, client: str) -> float:
        """Seconds until ``client`` may try again; 0 when it may now."""
        with self._lock:
            now = self._clock()
            level = self._level(client, now)
            if client in self._buckets and level >= self._burst:
                del self._buckets[client]  # fully refilled: forget it
        return 0.0 if level >= 1.0 else (1.0 - level) / self._rate_per_s

    def retry_after_header(self, client: str) -> str:
        """``retry_after_s`` as a ``Retry-After`` value: whole seconds, at least 1."""
        return str(max(1, math.ceil(self.retry_after_s(client))))

    def record_failure(self, client: str) -> bool:
        """Spend one token of ``client``'s bucket; whether that was its last (it is refused from now on)."""
        with self._lock:
            now = self._clock()
            before = self._level(client, now)
            self._buckets[client] = (max(0.0, before - 1.0), now)
            self._buckets.move_to_end(client)
            while len(self._buckets) > self._max_clients:
                self._buckets.popitem(last=False)
        return before >= 1.0 > before - 1.0
