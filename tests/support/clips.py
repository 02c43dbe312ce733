"""Test clips come from the one synthetic-clip writer, shared with the benchmarks; ``header_first_copy``
remuxes one the way cameras and NVRs write MP4s (header first), so that a copy cut short still opens."""

from __future__ import annotations

from pathlib import Path

import av

from anjian.service.benchmarks.clips import ClipPattern
from anjian.service.benchmarks.clips import write_synthetic_clip as make_test_clip

__all__ = ["ClipPattern", "broken_off_copy", "header_first_copy", "make_test_clip"]


def header_first_copy(video: Path, out: Path, *, dropped_packets: int = 0) -> Path:
    """``video`` remuxed into ``out`` with its header first, optionally starting ``dropped_packets`` in (mid-GOP)."""
    with av.open(str(video)) as source, av.open(str(out), "w", options={"movflags": "faststart"}) as copy:
        original = source.streams.video[0]
        stream = copy.add_stream_from_template(original)
        for i, packet in enumerate(p for p in source.demux(original) if p.dts is not None):
            if i >= dropped_packets:
                packet.stream = stream
                copy.mux(packet)
    return out


def broken_off_copy(video: Path, fraction: float) -> Path:
    """A copy of ``video`` beside it (``cut-<name>``) holding its first ``fraction`` of bytes: a recording cut short."""
    data = video.read_bytes()
    cut = video.with_name(f"cut-{video.name}")
    cut.write_bytes(data[: int(len(data) * fraction)])
    return cut
