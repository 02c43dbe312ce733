"""A live camera whose timestamps barely advance still delivers its analysed frames.

Some encoders stamp each frame one tick after the last (90 kHz: 11 microseconds a frame at
10 fps). Sampling on stream time alone then waited hours of wall time for the next due frame:
the camera decoded every frame, delivered one, and looked online all along.
"""

from __future__ import annotations

import fractions
import http.server
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import av
import pytest

from anjian.cameras.config import CameraConfig
from anjian.cameras.source import VideoSource
from anjian.service.benchmarks.clips import write_synthetic_clip
from anjian.service.benchmarks.ports import free_port

_FPS = 10


def _one_tick_a_frame(tmp_path: Path) -> bytes:
    """20 s of 10 fps H.264 in MPEG-TS, each frame stamped one 90 kHz tick after the one before."""
    clip = tmp_path / "clip.mp4"
    write_synthetic_clip(clip, seconds=20, fps=_FPS, size_wh=(320, 240))
    out = tmp_path / "ticks.ts"
    with av.open(str(clip)) as source, av.open(str(out), "w", format="mpegts") as target:
        stream = target.add_stream_from_template(source.streams.video[0])
        for n, packet in enumerate(p for p in source.demux(source.streams.video[0]) if p.size):
            packet.stream, packet.time_base = stream, fractions.Fraction(1, 90_000)
            packet.pts = packet.dts = 90_000 + n
            target.mux(packet)
    return out.read_bytes()


@pytest.fixture
def live_ts_url(tmp_path: Path) -> Iterator[str]:
    """An HTTP server sending the stream paced like a live camera (a tenth of a second per frame's share)."""
    data = _one_tick_a_frame(tmp_path)

    class Paced(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "video/mp2t")
            self.end_headers()
            chunk = max(1, len(data) // (20 * _FPS))
            try:
                for start in range(0, len(data), chunk):
                    self.wfile.write(data[start : start + chunk])
                    self.wfile.flush()
                    time.sleep(1 / _FPS)
            except OSError:
                pass

        def log_message(self, *_args: object) -> None:
            pass

    port = free_port()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Paced)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}/cam.ts"
    finally:
        server.shutdown()
        server.server_close()


def test_a_live_stream_stamped_one_tick_a_frame_keeps_delivering(live_ts_url: str) -> None:
    source = VideoSource(CameraConfig(id="ticks", url=live_ts_url, analysis_fps=2, stall_timeout_s=5))
    source.start()
    delivered = 0
    try:
        deadline = (
            time.monotonic() + 60
        )  # generous: the stream lasts 20 s; before the fix 1 frame came in all
        while delivered < 5 and time.monotonic() < deadline:
            delivered += source.wait_frame(timeout_s=1.0) is not None
    finally:
        source.stop()
    assert delivered >= 5
