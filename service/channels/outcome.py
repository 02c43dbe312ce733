"""What one attempt to send an outbox delivery came to, for webhooks, robots and e-mail alike."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SendOutcome"]


@dataclass(frozen=True, slots=True)
class SendOutcome:
    """The result of one attempt: a success has a status code and no error.

    Attributes:
        status_code: The HTTP status (the SMTP reply code for e-mail), ``None`` when no answer came.
        error: Why it failed, ``None`` on success; never holds a credential.
        retry_after_s: The receiver asked to wait this long (a rate limit), else ``None``.
        is_attempted: ``False`` when nothing was sent (held back to keep a robot's rate):
            the try is not counted and comes back after ``retry_after_s``.
    """

    status_code: int | None
    error: str | None
    retry_after_s: float | None = None
    is_attempted: bool = True

    @property
    def is_success(self) -> bool:
        """Whether the receiver took the delivery."""
        return self.error is None and self.status_code is not None
