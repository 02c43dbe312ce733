"""The control-room dashboard: static files shipped in the package, served at ``/`` (no CDN, works offline).

Besides the files in ``service/dashboard/``, ``/dashboard/behaviours.js`` is made from
``anjian.service.behaviour_names`` on each request: the one table of the behaviours' names,
which the control room (``i18n.js``, the behaviour filter) and the hub's page (``hub.js``,
served by ``anjian.service.hub.api`` from ``behaviours_script_response`` too) read, so
neither keeps a copy that could drift.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path

from fastapi import APIRouter, Request, Response, status
from fastapi.responses import FileResponse

from anjian.service.api.routing import GuardedRoute
from anjian.service.behaviour_names import BEHAVIOUR_NAMES

__all__ = [
    "BEHAVIOURS_SCRIPT",
    "BEHAVIOURS_VARIABLE",
    "DASHBOARD_DIR",
    "behaviours_script",
    "behaviours_script_response",
    "router",
]

DASHBOARD_DIR = Path(__file__).resolve().parent.parent / "dashboard"
BEHAVIOURS_SCRIPT = "behaviours.js"
"""The generated script's file name, beside the dashboards' static files (``/dashboard/``, the hub's ``/static/``)."""
BEHAVIOURS_VARIABLE = "anjianBehaviours"
"""The global (``window.anjianBehaviours``) the generated script sets."""

_JS_ESCAPES = {
    "<": "\\u003c",  # no "</script>" or "<!--", should the script ever be inlined in a page
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",  # line terminators in a string literal before ES2019
    "\u2029": "\\u2029",
}

router = APIRouter(tags=["dashboard"], include_in_schema=False, route_class=GuardedRoute)


@router.get("/", response_class=FileResponse)
def index() -> FileResponse:
    """The dashboard page; its script and style load from ``/dashboard/``."""
    return FileResponse(
        DASHBOARD_DIR / "index.html", media_type="text/html", headers={"Cache-Control": "no-cache"}
    )


@router.get(f"/dashboard/{BEHAVIOURS_SCRIPT}", response_class=Response)
def behaviours(request: Request) -> Response:
    """The behaviours' names for the page's scripts, made from the service's table (before the static mount)."""
    return behaviours_script_response(request)


def behaviours_script(names: Mapping[str, tuple[str, str]] = BEHAVIOUR_NAMES) -> str:
    """The script that sets ``window.anjianBehaviours`` to the behaviours' names, in the table's order.

    The dashboards take the names from here rather than keep their own table, so a behaviour
    named in Python (a new rule, the sensors' alerts) shows by its name in both. The value
    is a frozen array of ``{"code", "en", "zh-CN"}`` objects (an array keeps the order, which
    the control room's filter follows). The names are JSON with ``<``, ``>``, ``&``, U+2028
    and U+2029 escaped, so no name (``</script>``, quotes, backslashes) can end the string,
    the statement or an enclosing ``<script>`` element.

    Args:
        names: Behaviour code to ``(Chinese, English)``; by default ``BEHAVIOUR_NAMES``.

    Returns:
        The script's text (JavaScript, no ``eval``: the pages' Content-Security-Policy holds).

    Example:
        >>> behaviours_script({"smoking": ("吸烟", "Smoking")}).splitlines()[2:]
        ['window.anjianBehaviours = Object.freeze([', '  {"code": "smoking", "en": "Smoking", "zh-CN": "吸烟"}', ']);']
    """
    lines = [
        _js_literal({"code": code, "en": english, "zh-CN": chinese})
        for code, (chinese, english) in names.items()
    ]
    listed = ",\n".join(f"  {line}" for line in lines)  # the array is JSON too: no trailing comma
    return (
        "// The behaviours' names, made by the service from anjian.service.behaviour_names: do not edit.\n"
        '"use strict";\n'
        f"window.{BEHAVIOURS_VARIABLE} = Object.freeze([\n{listed}\n]);\n"
    )


def _js_literal(value: dict[str, str]) -> str:
    """``value`` as JSON, which is a JavaScript literal, with the characters that could end a script escaped."""
    literal = json.dumps(value, ensure_ascii=False)
    # These characters only ever stand inside a JSON string here, where \uXXXX is the same text.
    for character, escape in _JS_ESCAPES.items():
        literal = literal.replace(character, escape)
    return literal


def behaviours_script_response(request: Request) -> Response:
    """``behaviours_script()`` as a response the browser revalidates by ETag (304 while the table is unchanged).

    Served like the static files beside it (an ETag, a 304 for a matching ``If-None-Match``),
    and ``no-cache`` as the pages are, so a service upgraded with new names shows them at
    the next load.

    Args:
        request: The request, for its ``If-None-Match``.

    Returns:
        200 with the script (``text/javascript``), or 304 without a body.
    """
    body = behaviours_script().encode()
    etag = f'"{hashlib.sha256(body).hexdigest()[:32]}"'
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    asked = request.headers.get("if-none-match", "")
    if etag in [tag.strip().removeprefix("W/") for tag in asked.split(",")]:
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    return Response(body, media_type="text/javascript; charset=utf-8", headers=headers)
