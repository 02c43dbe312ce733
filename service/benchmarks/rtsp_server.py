"""Serve MP4 clips as looping live H.264 RTSP streams, for tests and benchmarks (a stand-in camera).

Run under Debian's ``/usr/bin/python3`` (the only interpreter with ``gi``)::

    /usr/bin/python3 service/benchmarks/rtsp_server.py --port 8554 \\
        --mount /cam1=/tmp/clip.mp4 [--mount /cam2=/tmp/other.mp4] [--user U --password W]

Why it works this way:

* Each clip is demuxed once at startup (``parsebin ! h264parse``) into whole
  access units (one per frame, however many slices it has), kept in memory.
  Nothing is decoded or re-encoded, so a served stream costs almost no CPU
  and the client receives exactly the clip's bitstream.
* Each mount is a *shared* media: ``appsrc ! rtph264pay``. A pusher thread
  sends the access units at the clip's own pace, looping forever. Every
  buffer is stamped with the pipeline running time at which it is due, so
  timestamps keep increasing across the loop point (unlike
  ``multifilesrc loop=true``, which restarts them at 0).
* When a client sends PLAY, the pusher jumps straight to the clip's next
  keyframe, so a new viewer gets a picture at once instead of waiting for the
  rest of a GOP; the timeline still only moves forward.
* With ``--user``/``--password``, RTSP basic auth is required: missing or
  wrong credentials get ``401``. Unknown mounts get ``404`` (server default).

It prints ``READY <port>`` on stdout once listening (``--port 0`` picks a free
port and prints it) and exits cleanly on SIGTERM or SIGINT. Only H.264 clips
are served. Their keyframe interval bounds how long a second client of a
running stream may wait for a picture (its PLAY makes the stream skip ahead to
the next keyframe). B-frames are fine: their PTS-DTS offsets are kept.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer

_SECOND_NS = 1_000_000_000
_CLOCK_WAIT_S = 10.0
_CLOCK_POLL_S = 0.005
_MAX_LATE_NS = _SECOND_NS // 2
_ROLE = "tester"


@dataclass(frozen=True)
class AccessUnit:
    """One encoded frame of a clip, with times relative to the clip's first DTS.

    Attributes:
        data: The access unit in AVC (length-prefixed) form, all its slices.
        pts_ns: Presentation time relative to the clip's first decode time, ns.
        dts_ns: Decode time relative to the clip's first decode time, ns (>= 0).
        duration_ns: Frame duration, ns (> 0).
        is_keyframe: Whether decoding can start here.
    """

    data: bytes
    pts_ns: int
    dts_ns: int
    duration_ns: int
    is_keyframe: bool


@dataclass(frozen=True)
class Clip:
    """A demuxed clip: its caps and access units, and the length of one loop.

    Attributes:
        path: The source file.
        caps: ``video/x-h264, stream-format=avc, alignment=au`` caps with codec_data.
        units: Access units in decode order; the first is a keyframe.
        period_ns: Length of one loop, ns: last DTS plus its duration.
    """

    path: Path
    caps: Gst.Caps
    units: tuple[AccessUnit, ...]
    period_ns: int


def load_clip(path: Path) -> Clip:
    """Demux an MP4/MKV clip's H.264 video into access units, using GStreamer.

    Args:
        path: The clip file.

    Returns:
        The demuxed clip, starting at its first keyframe.

    Raises:
        ValueError: If the file has no decodable H.264 video or no keyframe.
    """
    if not path.is_file():
        raise ValueError(f"clip {str(path)!r} does not exist")
    pipeline = Gst.parse_launch(
        "filesrc name=src ! parsebin ! h264parse config-interval=-1 "
        "! video/x-h264,stream-format=avc,alignment=au ! appsink name=sink sync=false"
    )
    pipeline.get_by_name("src").set_property("location", str(path))
    sink = pipeline.get_by_name("sink")
    pipeline.set_state(Gst.State.PLAYING)
    samples: list[Gst.Sample] = []
    while True:
        sample = sink.emit("try-pull-sample", 10 * _SECOND_NS)
        if sample is None:
            break
        samples.append(sample)
    bus_error = _bus_error(pipeline)
    pipeline.set_state(Gst.State.NULL)
    if not samples:
        reason = f": {bus_error}" if bus_error else ""
        raise ValueError(f"clip {str(path)!r} has no H.264 video stream{reason}")
    return _clip_from_samples(path, samples)


def _bus_error(pipeline: Gst.Element) -> str | None:
    """Return the first error message posted on ``pipeline``'s bus, if any."""
    message = pipeline.get_bus().pop_filtered(Gst.MessageType.ERROR)
    if message is None:
        return None
    error, debug = message.parse_error()
    return f"{error.message} ({debug})"


def _clip_from_samples(path: Path, samples: list[Gst.Sample]) -> Clip:
    """Turn appsink samples into a ``Clip``, dropping frames before the first keyframe."""
    caps = samples[0].get_caps()
    fps_ok, fps_num, fps_den = caps.get_structure(0).get_fraction("framerate")
    default_duration_ns = (
        Gst.util_uint64_scale(_SECOND_NS, fps_den, fps_num) if fps_ok and fps_num > 0 else _SECOND_NS // 25
    )
    raw: list[tuple[bytes, int, int, int, bool]] = []
    for sample in samples:
        buffer = sample.get_buffer()
        is_keyframe = not buffer.has_flags(Gst.BufferFlags.DELTA_UNIT)
        if not raw and not is_keyframe:
            continue
        dts = buffer.dts if buffer.dts != Gst.CLOCK_TIME_NONE else buffer.pts
        pts = buffer.pts if buffer.pts != Gst.CLOCK_TIME_NONE else dts
        duration = buffer.duration if buffer.duration not in (Gst.CLOCK_TIME_NONE, 0) else default_duration_ns
        raw.append((buffer.extract_dup(0, buffer.get_size()), pts, dts, duration, is_keyframe))
    if not raw:
        raise ValueError(f"clip {str(path)!r} has no keyframe")
    first_dts = raw[0][2]
    units = tuple(
        AccessUnit(data, max(pts - first_dts, dts - first_dts), dts - first_dts, duration, is_keyframe)
        for data, pts, dts, duration, is_keyframe in raw
    )
    last = units[-1]
    return Clip(path=path, caps=caps, units=units, period_ns=last.dts_ns + last.duration_ns)


class ClipPusher:
    """Feed one media's ``appsrc`` with a clip's access units, live and looping.

    Buffers are pushed when the pipeline clock reaches their due time and are
    stamped with that running time, so PTS/DTS increase forever, across loops.
    """

    def __init__(self, clip: Clip, appsrc: Gst.Element, mount: str, *, verbose: bool = False) -> None:
        self._verbose = verbose
        self._clip = clip
        self._appsrc = appsrc
        self._mount = mount
        self._stop = threading.Event()
        self._jump = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"push{mount}", daemon=True)

    def start(self) -> None:
        """Start pushing in a background thread."""
        self._thread.start()

    def stop(self) -> None:
        """Ask the pushing thread to stop; it exits at its next wake-up."""
        self._stop.set()
        self._jump.set()

    def jump_to_keyframe(self) -> None:
        """Send the clip's next keyframe now, so a newly playing client gets a picture."""
        self._jump.set()

    def _run(self) -> None:
        """Push access units at their due running time until stopped or flushing."""
        start_ns = self._wait_for_running_time()
        if start_ns is None:
            return
        units = self._clip.units
        now_ns: int | None = start_ns
        origin_ns = start_ns  # Running time at which the current loop's DTS 0 is due.
        index = 0
        last_dts_ns = -1
        while now_ns is not None and not self._stop.is_set():
            if self._jump.is_set():
                self._jump.clear()
                if last_dts_ns >= 0:
                    index, origin_ns = self._next_keyframe(index, now_ns)
                    if self._verbose:
                        _log(f"{self._mount}: client started playing; jumped to keyframe {index}")
            unit = units[index]
            due_ns = origin_ns + unit.dts_ns
            if now_ns - due_ns > _MAX_LATE_NS:
                # Far behind (the process was stopped): carry on from now, no burst.
                origin_ns += now_ns - due_ns
                due_ns = now_ns
            if due_ns > now_ns and self._jump.wait((due_ns - now_ns) / _SECOND_NS):
                now_ns = self._wait_for_running_time()
                continue
            dts_ns = max(due_ns, last_dts_ns + 1)
            if not self._push(unit, dts_ns, dts_ns + unit.pts_ns - unit.dts_ns):
                return
            last_dts_ns = dts_ns
            if self._verbose:
                _log(f"{self._mount}: pushed unit {index} dts={dts_ns / _SECOND_NS:.3f}s")
            index += 1
            if index == len(units):
                index = 0
                origin_ns += self._clip.period_ns
            now_ns = self._wait_for_running_time()

    def _next_keyframe(self, index: int, now_ns: int) -> tuple[int, int]:
        """Return the next keyframe at or after ``index``, and the origin that makes it due now."""
        units = self._clip.units
        for offset in range(len(units)):
            candidate = (index + offset) % len(units)
            if units[candidate].is_keyframe:
                return candidate, now_ns - units[candidate].dts_ns
        return 0, now_ns  # Unreachable: a clip starts with a keyframe.

    def _push(self, unit: AccessUnit, dts_ns: int, pts_ns: int) -> bool:
        """Push one access unit; return False once the pipeline stops accepting data."""
        buffer = Gst.Buffer.new_wrapped(unit.data)
        buffer.dts = dts_ns
        buffer.pts = pts_ns
        buffer.duration = unit.duration_ns
        if not unit.is_keyframe:
            buffer.set_flags(Gst.BufferFlags.DELTA_UNIT)
        result = self._appsrc.emit("push-buffer", buffer)
        return bool(result == Gst.FlowReturn.OK)

    def _wait_for_running_time(self) -> int | None:
        """Return the pipeline's running time in ns once it is PLAYING; None if stopped first."""
        waited_s = 0.0
        while not self._stop.is_set():
            clock = self._appsrc.get_clock()
            if clock is not None:
                return int(clock.get_time() - self._appsrc.get_base_time())
            if waited_s >= _CLOCK_WAIT_S:
                _log(f"{self._mount}: media not playing after {_CLOCK_WAIT_S:.0f}s; stop pushing")
                return None
            self._stop.wait(_CLOCK_POLL_S)
            waited_s += _CLOCK_POLL_S
        return None


class ClipMediaFactory(GstRtspServer.RTSPMediaFactory):  # type: ignore[misc]
    """A shared media factory serving one clip; one pusher per prepared media.

    Shared, so any number of clients watch one pipeline, like a real camera.
    A media lives from the first client's DESCRIBE until the last client
    leaves; the next client then gets a fresh media (and pusher).
    """

    def __init__(self, clip: Clip, mount: str, *, verbose: bool = False) -> None:
        super().__init__()
        self._clip = clip
        self._mount = mount
        self._verbose = verbose
        self._live: list[tuple[GstRtspServer.RTSPMedia, ClipPusher]] = []
        self._lock = threading.Lock()
        self.set_launch(
            "( appsrc name=src is-live=true format=time do-timestamp=false ! rtph264pay name=pay0 pt=96 )"
        )
        self.set_shared(True)
        self.connect("media-configure", self._on_media_configure)

    def stop_all(self) -> None:
        """Stop every pusher of this mount (at shutdown)."""
        with self._lock:
            live, self._live = self._live, []
        for _media, pusher in live:
            pusher.stop()

    def on_play(self, media: GstRtspServer.RTSPMedia | None) -> None:
        """A client sent PLAY for ``media``: if it is ours, send a keyframe now."""
        with self._lock:
            pushers = [pusher for known, pusher in self._live if known == media]
        for pusher in pushers:
            pusher.jump_to_keyframe()

    def _on_media_configure(self, _factory: object, media: GstRtspServer.RTSPMedia) -> None:
        """Give the new media's appsrc the clip caps and start its pusher."""
        appsrc = media.get_element().get_by_name("src")
        appsrc.set_property("caps", self._clip.caps)
        pusher = ClipPusher(self._clip, appsrc, self._mount, verbose=self._verbose)
        with self._lock:
            self._live.append((media, pusher))
        media.connect("unprepared", self._on_unprepared)
        if self._verbose:
            _log(f"{self._mount}: new media")
        pusher.start()

    def _on_unprepared(self, media: GstRtspServer.RTSPMedia) -> None:
        """Stop and forget the pusher of a media that no client uses any more."""
        with self._lock:
            gone = [pusher for known, pusher in self._live if known == media]
            self._live = [(known, pusher) for known, pusher in self._live if known != media]
        for pusher in gone:
            pusher.stop()
        if self._verbose:
            _log(f"{self._mount}: media unprepared")


def _log(text: str) -> None:
    """Write one diagnostic line to stderr (this is a CLI)."""
    print(f"rtsp_server: {text}", file=sys.stderr, flush=True)


def _parse_mount(text: str) -> tuple[str, Path]:
    """Parse ``/path=/file.mp4`` into (mount, file)."""
    mount, sep, file_name = text.partition("=")
    if not sep or not mount.startswith("/") or not file_name:
        raise argparse.ArgumentTypeError(f"expected /mount=/path/clip.mp4, got {text!r}")
    return mount, Path(file_name)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse command-line arguments."""
    parser = argparse.ArgumentParser(description="Serve MP4 clips as looping live H.264 RTSP streams.")
    parser.add_argument("--port", type=int, default=8554, help="TCP port; 0 picks a free one")
    parser.add_argument("--address", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--mount", type=_parse_mount, action="append", required=True, help="/mount=/clip.mp4")
    parser.add_argument("--user", default=None, help="require basic auth with this user")
    parser.add_argument("--password", default=None, help="password for --user")
    parser.add_argument("--verbose", action="store_true", help="log media and pushed frames to stderr")
    args = parser.parse_args(argv)
    if (args.user is None) != (args.password is None):
        parser.error("--user and --password go together")
    return args


def _install_auth(server: GstRtspServer.RTSPServer, user: str, password: str) -> None:
    """Require basic auth: only ``user``/``password`` gets the tester role."""
    auth = GstRtspServer.RTSPAuth()
    token = GstRtspServer.RTSPToken()
    token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, _ROLE)
    auth.add_basic(GstRtspServer.RTSPAuth.make_basic(user, password), token)
    server.set_auth(auth)


def _allow_role(factory: GstRtspServer.RTSPMediaFactory) -> None:
    """Let the tester role access and construct media from ``factory``."""
    factory.add_role_from_structure(
        Gst.Structure.new_from_string(
            f"{_ROLE}, media.factory.access=(boolean)true, media.factory.construct=(boolean)true"
        )
    )


def main(argv: list[str] | None = None) -> int:
    """Run the server until SIGTERM/SIGINT; return the process exit status."""
    args = _parse_args(argv)
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address(args.address)
    server.set_service(str(args.port))
    if args.user is not None:
        _install_auth(server, args.user, args.password)
    mounts = server.get_mount_points()
    factories: list[ClipMediaFactory] = []
    for mount, path in args.mount:
        try:
            clip = load_clip(path)
        except ValueError as error:
            _log(f"cannot serve {mount}: {error}")
            return 2
        factory = ClipMediaFactory(clip, mount, verbose=args.verbose)
        if args.user is not None:
            _allow_role(factory)
        mounts.add_factory(mount, factory)
        factories.append(factory)

    def on_client(_server: object, client: GstRtspServer.RTSPClient) -> None:
        client.connect("play-request", on_play)

    def on_play(_client: object, context: GstRtspServer.RTSPContext) -> None:
        for factory in factories:
            factory.on_play(context.media)

    server.connect("client-connected", on_client)
    if server.attach(None) == 0:
        _log(f"cannot listen on {args.address}:{args.port}")
        return 3
    loop = GLib.MainLoop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_HIGH, signum, _quit, loop)
    print(f"READY {server.get_bound_port()}", flush=True)
    loop.run()
    for factory in factories:
        factory.stop_all()
    return 0


def _quit(loop: GLib.MainLoop) -> bool:
    """Stop the main loop (signal handler); returning False removes the handler."""
    loop.quit()
    return False


if __name__ == "__main__":
    sys.exit(main())
