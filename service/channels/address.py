"""Channel addresses: how a robot or e-mail channel is named in the webhook subscriptions table.

A channel's subscription row holds ``channel:<name>`` where a webhook holds its URL
(``channel:<name>?colours=red,orange`` when it takes only some colours), so the outbox
enqueues, claims, retries and lists channel deliveries exactly as webhook ones. The
address carries no credential: the robot's URL and secret and the SMTP password stay in
the site YAML (``ChannelsConfig``) and in memory. The subscription's own columns hold
the other filters (kinds, behaviours, cameras); the colour filter lives in the address
because the table has no column for it, and ``admits`` reads it when the outbox enqueues.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from urllib.parse import parse_qs, urlencode

__all__ = ["CHANNEL_SCHEME", "admits", "channel_address", "channel_name", "is_channel_address"]

CHANNEL_SCHEME = "channel:"


def channel_address(name: str, colours: Iterable[str] = ()) -> str:
    """The subscription address of channel ``name``, taking only ``colours`` (all when empty).

    Example:
        >>> channel_address("shift-leaders", ["red", "orange"])
        'channel:shift-leaders?colours=red%2Corange'
    """
    wanted = sorted(set(colours))
    query = f"?{urlencode({'colours': ','.join(wanted)})}" if wanted else ""
    return f"{CHANNEL_SCHEME}{name}{query}"


def is_channel_address(url: str) -> bool:
    """Whether a subscription's target is a channel (not an http(s) webhook)."""
    return url.startswith(CHANNEL_SCHEME)


def channel_name(url: str) -> str | None:
    """The channel name of a channel address, or ``None`` for a webhook URL."""
    if not is_channel_address(url):
        return None
    return url[len(CHANNEL_SCHEME) :].split("?", 1)[0]


@lru_cache(maxsize=1024)
def _colours(url: str) -> frozenset[str] | None:
    """The colours a channel address takes, ``None`` for all (and for webhook URLs)."""
    if not is_channel_address(url) or "?" not in url:
        return None
    values = parse_qs(url.split("?", 1)[1]).get("colours", [])
    colours = frozenset(c for value in values for c in value.split(",") if c)
    return colours or None


def admits(url: str, severity: str) -> bool:
    """Whether the subscription at ``url`` takes an event of colour ``severity`` (webhooks take all)."""
    colours = _colours(url)
    return colours is None or severity in colours
