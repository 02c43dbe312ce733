"""Names and prefixes that go into e-mail subjects and robot card titles: one line, no control characters.

A site, workshop, camera, sensor or zone name, and an e-mail channel's ``subject_prefix``,
end up in the Subject header of every alert e-mail and in the title of every robot card.
A header may not hold a line break (``email`` refuses it, or it would inject a header),
and control or bidi-override characters garble or spoof what the reader sees. They are
refused when the site YAML is loaded, naming the field, rather than failing each alert
about that camera at send time. This is the one definition of that check:

- the ``name`` of the site and of each workshop (``OneLineText``);
- the names of each workshop's cameras, sensors and zones (``check_one_line_names``);
- ``channels.email[].subject_prefix`` (``OneLineText``).

Example:
    >>> check_one_line("东门 1号")
    '东门 1号'
    >>> one_line_fault("东门\\n1号")
    'holds a line feed (U+000A) at position 2'
"""

from __future__ import annotations

import unicodedata
from typing import Annotated

from pydantic import AfterValidator

__all__ = ["REFUSED_CATEGORIES", "OneLineText", "check_one_line", "check_one_line_names", "one_line_fault"]

REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
"""Unicode categories no one-line name may hold: controls, format (bidi overrides), surrogates, line and
paragraph separators (token names too: ``anjian.service.tokens``)."""
_CONTROL_NAMES = {"\n": "line feed", "\r": "carriage return", "\t": "tab", "\x00": "NUL character"}
_WHY = "names and subject prefixes go into e-mail subject lines and robot card titles, which are one line"


def one_line_fault(text: str) -> str | None:
    """What makes ``text`` unfit for a one-line header, or ``None`` when it fits.

    Returns:
        ``"holds a line feed (U+000A) at position 2"`` for the first refused character, else ``None``.
    """
    if text.isprintable():  # the common case: no control, format or separator character (space is fine)
        return None
    for position, ch in enumerate(text):
        if unicodedata.category(ch) in REFUSED_CATEGORIES:
            label = _CONTROL_NAMES.get(ch) or unicodedata.name(ch, "").lower() or "control character"
            return f"holds a {label} (U+{ord(ch):04X}) at position {position}"
    return None


def check_one_line(text: str) -> str:
    """``text`` unchanged when it holds no line break or other control, format or separator character.

    Raises:
        ValueError: It holds one; the message names the character and its position.
    """
    fault = one_line_fault(text)
    if fault is not None:
        raise ValueError(f"the text {fault}: {_WHY}")
    return text


def check_one_line_names(what: str, names: list[tuple[str, str]]) -> None:
    """Check ``(field path, name)`` pairs, e.g. ``("cameras[0].name", "东门")``, of ``what`` (a workshop).

    Raises:
        ValueError: A name holds a refused character; the message names the field and the character.
    """
    for field, name in names:
        fault = one_line_fault(name)
        if fault is not None:
            raise ValueError(f"{what}: {field} {fault}: {_WHY}")


OneLineText = Annotated[str, AfterValidator(check_one_line)]
"""A name of the site YAML that is shown in e-mail subjects and robot card titles."""
