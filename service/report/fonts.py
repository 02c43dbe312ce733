"""The report's fonts: Noto Sans CJK from the bundled ``noto-cjk-sans-otc`` package, so Chinese prints anywhere.

Headless Chromium draws the page with the fonts fontconfig finds; a machine with only
``apt install chromium`` has DejaVu and Liberation, no CJK, and the PDF would show every
Chinese name as a box without an error. The page therefore declares its own face: the
system's Noto Sans CJK SC when there is one (``local()``), else the font file anjian
installs with it (a ``file://`` URL, read by the browser on this machine: nothing is
downloaded). An HTML report opened on another machine, where that path does not exist,
falls back to the next family of ``FONT_STACK``.

Example:
    >>> FONT_STACK
    '"Anjian Noto Sans CJK", "Noto Sans CJK SC", "Noto Sans", sans-serif'
"""

from __future__ import annotations

import logging
from pathlib import Path

__all__ = ["FONT_STACK", "cjk_font_face_css"]

logger = logging.getLogger(__name__)

_FAMILY = "Anjian Noto Sans CJK"
FONT_STACK = f'"{_FAMILY}", "Noto Sans CJK SC", "Noto Sans", sans-serif'
"""The CSS ``font-family`` of the page and its charts' text."""


def _bundled_font() -> Path | None:
    """The Noto Sans CJK collection of the ``noto-cjk-sans-otc`` package, or ``None`` when it is missing."""
    try:
        from noto_cjk_sans_otc import FONT_PATH
    except ImportError:
        logger.warning("noto-cjk-sans-otc is not installed: the report's Chinese needs a system CJK font")
        return None
    path = Path(str(FONT_PATH))
    if not path.is_file():  # installed zipped: no file a browser can read
        logger.warning("the Noto Sans CJK font of noto-cjk-sans-otc is not a file at %s", path)
        return None
    return path


def cjk_font_face_css() -> str:
    """The ``@font-face`` rule of ``FONT_STACK``'s first family: the system's Noto Sans CJK SC, else the bundled one."""
    sources = ['local("Noto Sans CJK SC")', 'local("NotoSansCJKsc-Regular")']
    bundled = _bundled_font()
    if bundled is not None:
        sources.append(f'url("{bundled.resolve().as_uri()}")')  # a collection: no format() hint
    return f'@font-face {{ font-family: "{_FAMILY}"; src: {", ".join(sources)}; }}'
