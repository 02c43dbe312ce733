"""Request and response bodies of the API beyond events themselves (see ``anjian.service.schemas``).

An ingested event revision is the pipeline's wire model, ``anjian.pipeline.event_wire.EventWire``,
taken as it is: it is not declared again here.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from anjian.pipeline.event import Behaviour
from anjian.pipeline.event_wire import EventWire
from anjian.service.copying import copy_fields
from anjian.service.delivery_policy import AttemptTimeoutS, MaxAttempts, RetryForS
from anjian.service.records import DeliveryStatus, Subscription
from anjian.service.schemas import UtcTime, WebhookKind
from anjian.service.signing import SigningSecret
from anjian.service.storable_text import StorableText
from anjian.service.tokens import Role
from anjian.service.webhook_url import WebhookUrl

__all__ = [
    "AcknowledgeIn",
    "CloseIn",
    "DeliveryList",
    "DeliveryOut",
    "DispatchIn",
    "FalseAlarmIn",
    "HealthReportResult",
    "IngestResult",
    "LivenessOut",
    "ReadyOut",
    "ResolveIn",
    "SubscriptionIn",
    "SubscriptionOut",
    "TokenCreated",
    "TokenIn",
    "TokenOut",
]

_Id = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
_Note = Annotated[StorableText, StringConstraints(max_length=4000)]


def _not_blank(value: str) -> str:
    """Refuse text that Python's ``str.strip`` empties, as the store does.

    A regex ``\\S`` is not enough: it accepts control separators such as U+001F, which
    ``str.strip`` removes, and the store then refused the text with a 500.
    """
    if not value.strip():
        raise ValueError("must not be blank")
    return value


_RequiredNote = Annotated[
    StorableText, StringConstraints(min_length=1, max_length=4000), AfterValidator(_not_blank)
]
_Name = Annotated[StorableText, StringConstraints(min_length=1, max_length=200), AfterValidator(_not_blank)]


class _Model(BaseModel):
    """Base of the API bodies: unknown fields are errors.

    ``model_validate(record)`` builds a response body from a store record of the same field names.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, from_attributes=True)


# ------------------------------------------------------------------ lifecycle


class AcknowledgeIn(_Model):
    """Acknowledge an alert: the control room has seen it."""

    note: _Note = Field("", description="Optional comment.")


class DispatchIn(_Model):
    """Send someone to deal with an alert."""

    assignee: _Name = Field(..., description="Who is dispatched (name or team).")
    note: _Note = Field("", description="The work-order note.")


class ResolveIn(_Model):
    """Record how an alert was disposed of."""

    note: _RequiredNote = Field(..., description="The disposal note: what was done.")


class FalseAlarmIn(_Model):
    """Record that an alert was a false alarm."""

    reason: _RequiredNote = Field(..., description="Why it was not a real hazard.")


class CloseIn(_Model):
    """Close a resolved or false alarm."""

    note: _Note = Field("", description="Optional comment.")


# --------------------------------------------------------------------- ingest


class IngestResult(_Model):
    """What the service did with an ingested revision."""

    event_id: str
    revision: int = Field(..., description="The revision received.")
    stored_revision: int = Field(..., description="The revision stored after the call.")
    is_applied: bool = Field(..., description="False for a duplicate or stale revision (ignored).")


MAX_INGEST_BATCH = 200
"""Most revisions in one ``POST /ingest/batch``."""


class IngestBatchIn(_Model):
    """Several event revisions from one pipeline, stored together (``anjian.pipeline.http_sink`` sends what is queued).

    Each is an ``anjian.pipeline.event_wire.EventWire``, the body of ``POST /ingest/events``.
    """

    events: list[EventWire] = Field(..., min_length=1, max_length=MAX_INGEST_BATCH)


class HealthReportResult(_Model):
    """What the service took from a pipeline's camera health report."""

    cameras: int = Field(..., ge=0, description="Cameras recorded.")
    stale_after_s: float = Field(
        ..., gt=0, description="Seconds without a report after which these cameras show as stale."
    )


class IngestBatchResult(_Model):
    """What the service did with each revision of a batch, in the order sent."""

    results: list[IngestResult]


# ------------------------------------------------------------------- webhooks


class SubscriptionIn(_Model):
    """A new webhook subscription; empty filter lists match everything."""

    url: WebhookUrl = Field(..., description="http(s) URL the announcements are POSTed to.")
    secret: SigningSecret | None = Field(
        None,
        min_length=16,
        max_length=512,
        description=(
            "Signing secret (write-only): `whsec_<base64>` (Standard Webhooks) or any 16+ characters; "
            "several separated by spaces while rotating."
        ),
    )
    description: Annotated[StorableText, StringConstraints(max_length=200)] = ""
    timeout_s: AttemptTimeoutS = 5.0
    retry_for_s: RetryForS = 86_400.0
    max_attempts: MaxAttempts = None
    kinds: list[WebhookKind] = Field(default_factory=list, max_length=20)
    site_ids: list[_Id] = Field(default_factory=list, max_length=100)
    camera_ids: list[_Id] = Field(default_factory=list, max_length=1000)
    behaviours: list[Behaviour] = Field(default_factory=list, max_length=20)


class SubscriptionOut(_Model):
    """A webhook subscription (its secret is never shown)."""

    id: int
    source: Literal["config", "api"] = Field(..., description="config: from the site YAML (managed there).")
    url: str
    has_secret: bool
    description: str
    timeout_s: float
    retry_for_s: float
    max_attempts: int | None
    kinds: list[str]
    site_ids: list[str]
    camera_ids: list[str]
    behaviours: list[str]
    is_active: bool
    created_at: UtcTime

    @classmethod
    def from_subscription(cls, sub: Subscription) -> SubscriptionOut:
        """Build the response model of a subscription."""
        return copy_fields(
            cls, sub, source="config" if sub.source == "config" else "api", has_secret=sub.secret is not None
        )


class DeliveryOut(_Model):
    """One webhook delivery; ``failed`` ones are the dead letters."""

    id: int
    idempotency_key: str
    subscription_id: int
    event_id: str
    kind: str
    url: str
    status: DeliveryStatus
    attempts: int
    last_error: str | None
    last_status_code: int | None
    next_attempt_at: UtcTime | None
    retry_until: UtcTime
    delivered_at: UtcTime | None
    created_at: UtcTime


class DeliveryList(_Model):
    """A page of deliveries, oldest first."""

    items: list[DeliveryOut]
    count: int
    next_after_id: int | None = Field(
        None, description="Pass as `after_id` for the next page; null on the last."
    )


# --------------------------------------------------------------------- tokens


class TokenIn(_Model):
    """A new API token."""

    name: _Name = Field(..., description="Who holds it; recorded as the actor in the audit trail.")
    role: Role


class TokenOut(_Model):
    """An API token without its secret."""

    id: int
    name: str
    role: Role
    created_at: UtcTime
    last_used_at: UtcTime | None
    revoked_at: UtcTime | None


class TokenCreated(_Model):
    """A new token and its secret, shown this once."""

    token: str = Field(..., description="The secret: send it as `Authorization: Bearer <token>`.")
    info: TokenOut


# ----------------------------------------------------------------------- ops


class LivenessOut(_Model):
    """What ``/healthz`` tells a caller without a token: the process answers."""

    status: Literal["ok"] = "ok"


class ReadyOut(_Model):
    """Whether the service can take traffic."""

    is_ready: bool
    checks: dict[str, bool] = Field(..., description="database, schema (migrations at head), dispatcher.")


class CameraReloadOut(_Model):
    """What a camera reload did, by camera id."""

    added: list[str] = Field(..., description="Cameras now analysed that were not before.")
    removed: list[str] = Field(..., description="Cameras no longer analysed (their incidents closed).")
    updated: list[str] = Field(
        ..., description="Cameras kept; each restarted only where its settings changed."
    )


class ReferenceResetOut(_Model):
    """Result of resetting a zone's learned reference view."""

    camera_id: str
    zone_id: str
    is_reset: bool = Field(
        ..., description="False when no rule of the camera keeps a reference for the zone."
    )
