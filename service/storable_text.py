"""Text the database can store: encodable as UTF-8 (no unpaired surrogate) and free of NUL (U+0000).

PostgreSQL refuses U+0000 in a text column (SQLite takes it), and no database takes a
string that UTF-8 cannot encode. Anything a client sends is held to this one
definition before it can reach the database, so it is refused with a 422 naming
the field instead of failing the transaction (a 500, or a 503 for ingest):

- every JSON body (``anjian.service.api.routing.loads_strict_json``);
- the free-text fields of the API bodies (``StorableText``);
- the event id inside a list cursor (``anjian.service.store``).

Example:
    >>> unstorable_reason("fire\\x00")
    'holds a NUL character (U+0000)'
    >>> check_storable_text("fire")
    'fire'
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator

__all__ = ["StorableText", "check_storable_text", "unstorable_reason"]


def unstorable_reason(text: str) -> str | None:
    """Why the database cannot store ``text``, or ``None`` when it can.

    Args:
        text: Any string a client sent.

    Returns:
        ``"holds a NUL character (U+0000)"``, ``"holds an unpaired UTF-16 surrogate"`` or ``None``.
    """
    if "\x00" in text:
        return "holds a NUL character (U+0000)"
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return "holds an unpaired UTF-16 surrogate"
    return None


def check_storable_text(text: str) -> str:
    """``text`` unchanged when the database can store it.

    Raises:
        ValueError: It holds a NUL character or an unpaired surrogate (the message says which).
    """
    reason = unstorable_reason(text)
    if reason is not None:
        raise ValueError(f"the text {reason}, which the database cannot store")
    return text


StorableText = Annotated[str, AfterValidator(check_storable_text)]
"""A string field of an API body or the site YAML that must reach the database as it is."""
