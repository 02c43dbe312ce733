"""Bar charts as inline SVG: no plotting library, no scripts to fetch, the same in a browser and a PDF."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from anjian.service.report.fonts import FONT_STACK

__all__ = ["hbar_chart", "vbar_chart"]

_BAR = "#1565c0"
_TEXT = "#222"
_FONT = f"font-family='{FONT_STACK}' font-size='12'"  # the page's stack: an attribute beats CSS inheritance


def hbar_chart(
    rows: Sequence[tuple[str, float]], *, width: int = 560, unit: str = "", colours: Sequence[str] = ()
) -> str:
    """Horizontal bars, one per ``(label, value)``, longest scale at the largest value.

    Args:
        rows: Labels (any text; escaped) and non-negative values.
        width: Width of the drawing in pixels.
        unit: Appended to each value's label (e.g. ``" %"``).
        colours: A colour per row (CSS); the default blue where absent.
    """
    row_h, label_w, value_w = 22, 170, 60
    height = max(1, len(rows)) * row_h + 8
    top = max((value for _, value in rows), default=0.0) or 1.0
    bars = []
    for i, (label, value) in enumerate(rows):
        y = 4 + i * row_h
        length = (width - label_w - value_w) * max(0.0, value) / top
        colour = colours[i] if i < len(colours) else _BAR
        shown = f"{value:g}{unit}" if isinstance(value, int) or value == int(value) else f"{value:.1f}{unit}"
        bars.append(
            f'<text x="{label_w - 6}" y="{y + 15}" text-anchor="end" {_FONT} fill="{_TEXT}">{escape(label)}</text>'
            f'<rect x="{label_w}" y="{y + 3}" width="{length:.1f}" height="{row_h - 8}" fill="{escape(colour)}"/>'
            f'<text x="{label_w + length + 4:.1f}" y="{y + 15}" {_FONT} fill="{_TEXT}">{escape(shown)}</text>'
        )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="100%" style="max-width: {width}px" '
        f'viewBox="0 0 {width} {height}" role="img">{"".join(bars)}</svg>'
    )


def vbar_chart(values: Sequence[int], labels: Sequence[str], *, width: int = 760, height: int = 180) -> str:
    """Vertical bars (e.g. alerts per hour), a label under every ``ceil(n / 24)``-th bar.

    Args:
        values: Non-negative counts.
        labels: One per value (e.g. ``"08:00"``).
        width: Width of the drawing in pixels.
        height: Height of the drawing in pixels.
    """
    if len(values) != len(labels):
        raise ValueError(f"expected one label per value, got {len(labels)} labels for {len(values)} values")
    n = max(1, len(values))
    plot_h = height - 36
    slot = width / n
    top = max(values, default=0) or 1
    step = max(1, -(-n // 24))
    parts = []
    for i, (value, label) in enumerate(zip(values, labels, strict=True)):
        bar_h = plot_h * value / top
        x = i * slot
        parts.append(
            f'<rect x="{x + slot * 0.15:.1f}" y="{10 + plot_h - bar_h:.1f}" width="{slot * 0.7:.1f}" '
            f'height="{bar_h:.1f}" fill="{_BAR}"><title>{escape(label)}: {value}</title></rect>'
        )
        if value:
            parts.append(
                f'<text x="{x + slot / 2:.1f}" y="{8 + plot_h - bar_h:.1f}" text-anchor="middle" '
                f'{_FONT} fill="{_TEXT}">{value}</text>'
            )
        if i % step == 0:
            parts.append(
                f'<text x="{x + slot / 2:.1f}" y="{height - 8}" text-anchor="middle" {_FONT} '
                f'fill="{_TEXT}">{escape(label)}</text>'
            )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="100%" style="max-width: {width}px" '
        f'viewBox="0 0 {width} {height}" role="img">{"".join(parts)}</svg>'
    )
