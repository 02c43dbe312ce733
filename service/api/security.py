"""Security headers on every response: a Content-Security-Policy, no framing, no sniffing, no referrer.

The default policy fits the dashboard: its script and style load from the
service itself, media and the live feed too; no inline script, no ``eval``, no
other origin. A route that serves a page with inline script (the API docs)
sets its own ``Content-Security-Policy`` with the scripts' hashes
(``csp_with_inline_scripts``); the middleware only adds headers a response
lacks.
"""

from __future__ import annotations

import base64
import hashlib
import re

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["DEFAULT_CSP", "SECURITY_HEADERS", "SecurityHeadersMiddleware", "csp_with_inline_scripts"]

DEFAULT_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; media-src 'self'; "
    "connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
"""The policy of every response that does not set its own (the dashboard's)."""

SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": DEFAULT_CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}
"""Headers every response carries (a response's own ``Content-Security-Policy`` wins)."""

_INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", re.DOTALL | re.IGNORECASE)


def csp_with_inline_scripts(html: str, *, style_src: str = "'self'", extra: str = "") -> str:
    """A policy allowing exactly the inline ``<script>`` blocks of ``html`` (by SHA-256), and same-origin files.

    Args:
        html: The page.
        style_src: The ``style-src`` sources (a page whose library injects styles needs ``'unsafe-inline'``).
        extra: More directives, ``; ``-separated (e.g. ``worker-src blob:``).

    Returns:
        The ``Content-Security-Policy`` value.

    Example:
        >>> csp_with_inline_scripts("<script>go()</script>")[:40]
        "default-src 'none'; script-src 'self' '"
    """
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(body.encode()).digest()).decode() + "'"
        for body in _INLINE_SCRIPT.findall(html)
    )
    policy = (
        f"default-src 'none'; script-src 'self' {hashes}".rstrip()
        + f"; style-src {style_src}; img-src 'self' data:; connect-src 'self'; font-src 'self' data:; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
    return f"{policy}; {extra}" if extra else policy


class SecurityHeadersMiddleware:
    """ASGI middleware adding ``SECURITY_HEADERS`` to every HTTP response that lacks them."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on; add the headers when the response starts."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    if name not in headers:
                        headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)
