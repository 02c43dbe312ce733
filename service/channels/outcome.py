"""What one attempt to send an outbox delivery came to, for webhooks, robots and e-mail alike."""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["SendOutcome", "retry_after_header_s"]

_MAX_RETRY_AFTER_S = 3600.0  # a receiver asking for longer is asked again after an hour


@dataclass(frozen=True, slots=True)
class SendOutcome:
    """The result of one attempt: a success has a status code and no error.

    Attributes:
        status_code: The HTTP status (the SMTP reply code for e-mail), ``None`` when no answer came.
        error: Why it failed, ``None`` on success; never holds a credential.
        retry_after_s: The receiver asked to wait this long (a rate limit), else ``None``.
        is_attempted: ``False`` when nothing was sent (held back to keep a robot's rate):
            the try is not counted and comes back after ``retry_after_s``.
        is_rate_limited: The receiver refused it for its rate (a robot's rate-limit code, HTTP 429):
            not counted toward ``max_attempts``, it comes back after ``retry_after_s``.
        is_unreachable: No answer came: the receiver could not be reached or did not answer in
            time (connect failure, timeout). Its other messages would wait their timeout each for
            the same: the dispatcher holds them back until this one's retry.
    """

    status_code: int | None
    error: str | None
    retry_after_s: float | None = None
    is_attempted: bool = True
    is_rate_limited: bool = False
    is_unreachable: bool = False

    @property
    def is_success(self) -> bool:
        """Whether the receiver took the delivery."""
        return self.error is None and self.status_code is not None


def retry_after_header_s(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """The seconds a ``Retry-After`` header asks to wait (delay-seconds or an HTTP date), 1 s to 1 h.

    ``None`` without the header or when it is neither form (RFC 9110 section 10.2.3).
    """
    value = headers.get("Retry-After") or headers.get("retry-after")
    if value is None:
        return None
    try:
        wait_s = float(value)
    except ValueError:
        try:
            wait_s = email.utils.parsedate_to_datetime(value).timestamp() - (
                time.time() if now is None else now
            )
        except (TypeError, ValueError, IndexError):
            return None
    if not math.isfinite(wait_s):
        return None
    return min(_MAX_RETRY_AFTER_S, max(1.0, wait_s))
