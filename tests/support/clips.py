"""Test clips come from the one synthetic-clip writer, shared with the benchmarks."""

from __future__ import annotations

from anjian.service.benchmarks.clips import ClipPattern
from anjian.service.benchmarks.clips import write_synthetic_clip as make_test_clip

__all__ = ["ClipPattern", "make_test_clip"]
