"""A webhook URL that httpx can actually send to, checked when it is configured rather than when it is used.

A regex (``^https?://``) lets through URLs that fail only inside the HTTP client:
``http://a..b/hook`` parses, but resolving its host raises ``UnicodeError`` (an
empty IDNA label), which is no ``httpx.HTTPError``. ``check_webhook_url`` builds the
``httpx.URL`` and IDNA-encodes its host as the resolver will, so the site YAML
(``WebhookConfig.url``) and the API (``SubscriptionIn.url``) refuse such a URL with
a message naming what is wrong.

Example:
    >>> check_webhook_url("https://ops.example.com/anjian")
    'https://ops.example.com/anjian'
    >>> check_webhook_url("http://a..b/hook")
    Traceback (most recent call last):
    ValueError: the host 'a..b' of the URL is not a valid host name (label empty or too long)
"""

from __future__ import annotations

from typing import Annotated

import httpx
from pydantic import AfterValidator, StringConstraints

from anjian.service.storable_text import check_storable_text

__all__ = ["MAX_WEBHOOK_URL_CHARS", "WebhookUrl", "check_webhook_url"]

MAX_WEBHOOK_URL_CHARS = 2048
_MAX_PORT = 65_535


def check_webhook_url(url: str) -> str:
    """``url`` unchanged when it is an http(s) URL whose host the HTTP client can resolve.

    Args:
        url: The URL a webhook's announcements are POSTed to.

    Raises:
        ValueError: Not http(s), not a URL httpx can build, no host, a host that is
            no valid (IDNA) host name, or a port outside 1..65535.
    """
    check_storable_text(url)
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise ValueError(f"not a valid URL: {exc}") from None
    if parsed.scheme not in ("http", "https"):
        raise ValueError(f"expected an http:// or https:// URL, got scheme {parsed.scheme!r}")
    if not parsed.host:
        raise ValueError("the URL has no host")
    try:
        parsed.host.encode("idna")
    except UnicodeError as exc:
        reason = exc.__cause__ or exc.__context__ or exc
        raise ValueError(f"the host {parsed.host!r} of the URL is not a valid host name ({reason})") from None
    if parsed.port is not None and not 1 <= parsed.port <= _MAX_PORT:
        raise ValueError(f"the port {parsed.port} of the URL is outside 1..{_MAX_PORT}")
    return url


WebhookUrl = Annotated[
    str, StringConstraints(max_length=MAX_WEBHOOK_URL_CHARS), AfterValidator(check_webhook_url)
]
"""The ``url`` field of a webhook in the site YAML or the API, checked with ``check_webhook_url``."""
