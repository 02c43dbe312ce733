"""Mask credentials in camera URLs so that no log line, error or API answer leaks them."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

__all__ = ["mask_credentials", "mask_url", "url_scheme"]

_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^/@\s]+)@")


def mask_url(url: str) -> str:
    """Return ``url`` with any ``user:password@`` replaced by ``***:***@``.

    Args:
        url: A camera URL such as ``rtsp://admin:secret@10.0.0.5/stream1``.

    Returns:
        The same URL with credentials masked: ``rtsp://***:***@10.0.0.5/stream1``.
    """
    return _USERINFO.sub(lambda m: f"{m.group('scheme')}***:***@", url)


def mask_credentials(text: str) -> str:
    """Mask every URL credential found anywhere in free text (error messages from FFmpeg, say).

    Args:
        text: Any text that may quote one or more URLs.

    Returns:
        The text with each ``scheme://user:pass@`` masked.
    """
    return _USERINFO.sub(lambda m: f"{m.group('scheme')}***:***@", text)


def url_scheme(url: str) -> str:
    """Return the lower-case scheme of ``url``, or ``"file"`` for a plain path."""
    scheme = urlsplit(url).scheme.lower()
    if len(scheme) <= 1:  # "" for paths, a drive letter on Windows
        return "file"
    return scheme
