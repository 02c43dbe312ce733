"""How the outbox delivers to a subscriber: per-attempt timeout, retry window, cap on attempts.

Webhooks (``WebhookConfig`` in the site YAML, ``SubscriptionIn`` through the API) and
alert channels (robots, e-mail) are all rows of the one outbox, retried with the same
exponential backoff until a dead letter. These field types carry the bounds and the
meaning of those settings once; a model gives its own default.

Example:
    >>> class WebhookConfig(BaseModel):
    ...     timeout_s: AttemptTimeoutS = 5.0
    ...     retry_for_s: RetryForS = 86_400.0
    ...     max_attempts: MaxAttempts = None
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

__all__ = ["AttemptTimeoutS", "MaxAttempts", "RetryForS"]

AttemptTimeoutS = Annotated[float, Field(gt=0, le=120, description="Per-attempt timeout.")]
RetryForS = Annotated[
    float,
    Field(
        ge=60,
        le=30 * 86_400,
        description="How long a delivery is retried (exponential backoff) before it goes to the dead letters.",
    ),
]
MaxAttempts = Annotated[
    int | None,
    Field(ge=1, le=100_000, description="Optional cap on attempts; default: retry for `retry_for_s`."),
]
