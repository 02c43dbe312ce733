"""Replay a recorded video through the full pipeline, as fast as possible, for evaluating rules.

Decode (sampled at the camera's ``analysis_fps``) → detector (in batches) → tracker
→ the camera's ``CameraAnalyzer`` (rules, snapshots, clips) → one JSON line per event
revision. Time comes from the video: a frame's ``captured_at`` is ``start_at`` plus
its presentation time since the file's first frame (a file's timestamps need not
start at 0), so rules, durations and clip windows behave as they would live, only
faster. Schedules see ``start_at`` as the wall-clock time of the first frame (by
default the file's ``creation_time`` tag, else the epoch).

Every sampled frame is analysed, and ``tick`` runs once per second of video between
frames, as the runner does for live cameras. The camera's motion gate
(``engine.motion_gate``) decides, as in the runner, which frames the detector runs on: a
frame it skips reaches the tracker and the rules with the last inferred frame's detections.

Each JSON line is the event's wire form (``anjian.pipeline.event_wire.EventWire``)
without the embedded snapshot unless asked, plus ``video_started_s``,
``video_last_seen_s``, ``video_ended_s`` (seconds into the video) and, with an
evidence folder, ``snapshot_file`` / ``clip_file``.

A damaged file is said, not hidden: one that yields no frame is refused, and the report
names a file that ends before the duration its header declares (a recording cut short, a
copy broken off; measured from the stream's start, so a file that starts mid-GOP is whole;
not told with ``keyframes_only``, whose last keyframe may stand a GOP before the end) and
packets that did not decode, so that a replay's "no incident" is never the silence of a
broken file.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import av

from anjian.cameras.decode import decode_frames
from anjian.cameras.errors import DecodeError
from anjian.cameras.frame import Frame
from anjian.models.detections import Detections
from anjian.models.detector import Detector
from anjian.pipeline.analyzer import CameraAnalyzer
from anjian.pipeline.config import CameraPipelineConfig
from anjian.pipeline.event import Event
from anjian.pipeline.event_wire import EventWire
from anjian.pipeline.incidents import EventContext
from anjian.pipeline.motion import MotionGate, is_occupied
from anjian.pipeline.tracking import CameraTracker

__all__ = ["ReplayReport", "VideoHeader", "read_video_header", "replay_video"]

_CUT_SHORT_SLACK_S = 1.0
"""Seconds a replay may stop before the declared end (beyond two analysis periods) and still count as whole."""

logger = logging.getLogger(__name__)

_TICK_S = 1.0


@dataclass(frozen=True, slots=True)
class ReplayReport:
    """What a replay did.

    Attributes:
        frames: Frames analysed.
        video_s: Seconds of video covered.
        wall_s: Seconds the replay took.
        events: Event revisions written.
        incidents: Distinct incidents (event ids).
        frames_inferred: Frames the detector ran on (fewer than ``frames`` behind a motion gate).
        declared_s: Seconds of video the file's header declares (None: it declares none).
        ended_at_s: Where in the file the last analysed frame stands, seconds from the stream's
            start (``video_s`` counts from the first analysed frame, which a file that starts
            mid-GOP shows seconds in).
        is_cut_short: The file ended well before the declared duration (or ``until_s``).
        decode_errors: Packets that could not be decoded (their frames are missing).
    """

    frames: int
    video_s: float
    wall_s: float
    events: int
    incidents: int
    frames_inferred: int
    declared_s: float | None = None
    ended_at_s: float = 0.0
    is_cut_short: bool = False
    decode_errors: int = 0

    @property
    def speed(self) -> float:
        """Video seconds replayed per wall-clock second."""
        return self.video_s / self.wall_s if self.wall_s > 0 else float("inf")

    def damage(self, video: Path) -> list[str]:
        """What of ``video`` the replay could not see, one sentence each (empty for a whole file).

        Callers print these beside the figures: events missing after a cut, or around
        packets that did not decode, are otherwise indistinguishable from a quiet scene.
        """
        found = []
        if self.is_cut_short and self.declared_s is not None:
            found.append(
                f"{video.name} ends at {self.ended_at_s:.1f} s of the {self.declared_s:.1f} s its header declares: "
                "the file is cut short, and what happened after is not in these events"
            )
        if self.decode_errors:
            found.append(
                f"{video.name}: {self.decode_errors} packet(s) could not be decoded (a damaged file): "
                "the frames around them are missing"
            )
        return found


@dataclass(frozen=True, slots=True)
class VideoHeader:
    """What a video file's header says of it.

    Attributes:
        creation_time: The ``creation_time`` tag as epoch seconds, or 0.0 when it has none.
        declared_s: The video stream's declared duration in seconds, or None when the
            header gives none (raw H.264 or MJPEG, Matroska). An MPEG-TS file's is read
            from its first and last timestamps, so a cut one declares only what it holds.
        start_s: The video stream's first timestamp in seconds (0.0 when it gives none):
            where in the file a frame stands is its ``pts_s`` minus this.
    """

    creation_time: float
    declared_s: float | None
    start_s: float = 0.0


def read_video_header(path: Path) -> VideoHeader:
    """Read ``path``'s creation time and declared duration; a file that does not open declares neither.

    The replay opens the file again to decode it, and that open names what is wrong with
    an unreadable file.
    """
    try:
        with av.open(str(path.absolute())) as container:  # a path, never an FFmpeg protocol
            stream = container.streams.video[0]
            tag = container.metadata.get("creation_time") or stream.metadata.get("creation_time")
            base = stream.time_base
            declared = (
                float(stream.duration * base) if stream.duration is not None and base is not None else None
            )
            start = (
                float(stream.start_time * base) if stream.start_time is not None and base is not None else 0.0
            )
    except (av.error.FFmpegError, IndexError):
        return VideoHeader(0.0, None)
    return VideoHeader(_epoch_of(tag), declared if declared is not None and declared > 0 else None, start)


def _epoch_of(tag: str | None) -> float:
    """An ISO 8601 ``creation_time`` tag as epoch seconds; 0.0 when absent or unreadable."""
    if not tag:
        return 0.0
    try:
        return dt.datetime.fromisoformat(tag).timestamp()
    except ValueError:
        return 0.0


def _batches(frames: Iterator[Frame], size: int) -> Iterator[list[Frame]]:
    batch: list[Frame] = []
    for frame in frames:
        batch.append(frame)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def replay_video(
    video: Path,
    camera: CameraPipelineConfig,
    detector: Detector,
    out: IO[str],
    *,
    site_id: str = "replay",
    workshop_id: str = "replay",
    time_zone: str = "UTC",
    start_at: float | None = None,
    evidence_dir: Path | None = None,
    is_snapshot_embedded: bool = False,
    batch_size: int = 8,
    until_s: float | None = None,
    on_event: Callable[[Event], None] | None = None,
) -> ReplayReport:
    """Run ``camera``'s rules over ``video`` and write one JSON line per event revision to ``out``.

    Args:
        video: The recorded file.
        camera: The camera's config (its ``url`` is ignored: ``video`` is read instead).
        detector: The detector to run.
        out: Text stream the JSON lines go to.
        site_id: Site id written into the events.
        workshop_id: Workshop id written into the events.
        time_zone: Site time zone, for schedules that name none.
        start_at: Wall-clock time of the video's first frame, epoch seconds (default:
            the file's creation time, else 0).
        evidence_dir: Write snapshots and clips there and name them in the lines.
        is_snapshot_embedded: Keep the base64 snapshot in the lines.
        batch_size: Frames per detector call.
        until_s: Stop after this many seconds of video (default: the whole file).
        on_event: Also called with each event revision (tests, progress).

    Returns:
        What the replay did.

    Raises:
        cameras.errors.CameraError: The video cannot be opened or decoded, or yields no frame.
    """
    header = read_video_header(video)
    begin = start_at if start_at is not None else header.creation_time
    path = str(video.absolute())  # "a:b.mp4" is a file here, not FFmpeg's protocol "a"
    source = CameraPipelineConfig.model_validate(
        {**camera.model_dump(), "url": path, "realtime": False, "loop": False}
    )
    context = EventContext(site_id, workshop_id, camera.id, detector.version, time_zone=time_zone)
    analyzer = CameraAnalyzer(source, context, class_thresholds=detector.class_thresholds)
    tracker = CameraTracker(camera.engine.tracking, fps=camera.analysis_fps, camera_id=camera.id)
    if evidence_dir is not None:
        evidence_dir.mkdir(parents=True, exist_ok=True)
    written: list[Event] = []

    def emit(events: list[Event]) -> None:
        for event in events:
            out.write(json.dumps(_record(event, begin, evidence_dir, is_snapshot_embedded)) + "\n")
            written.append(event)
            if on_event is not None:
                on_event(event)

    started = time.monotonic()
    frames = 0
    last_at: float | None = None
    first_pts_s = last_pts_s = 0.0
    next_tick: float | None = None
    decode_errors: list[str] = []
    stream: Iterator[Frame] = decode_frames(
        source, stop=threading.Event(), clock=lambda: begin, on_decode_error=decode_errors.append
    )
    if until_s is not None:
        stream = itertools.takewhile(lambda f: f.captured_at - begin <= until_s, stream)
    gate = MotionGate(camera.engine.motion_gate)
    last_detections: Detections | None = None
    frames_inferred = 0
    for batch in _batches(stream, batch_size):
        is_inferred = [
            gate.should_infer(frame.image, frame.captured_at, is_occupied=is_occupied(last_detections))
            for frame in batch
        ]
        is_inferred[0] = is_inferred[0] or last_detections is None  # nothing to reuse yet
        images = [frame.host_image() for frame, infer in zip(batch, is_inferred, strict=True) if infer]
        inferred = iter(detector.detect(images))
        frames_inferred += len(images)
        for frame, infer in zip(batch, is_inferred, strict=True):
            if infer or last_detections is None:
                last_detections = next(inferred)
            dets = last_detections
            if next_tick is not None:
                while next_tick < frame.captured_at:
                    emit(analyzer.tick(next_tick))
                    next_tick += _TICK_S
            emit(analyzer.process(frame, tracker.update(dets, frame.captured_at)))
            frames += 1
            if last_at is None:
                first_pts_s = frame.pts_s
            last_at, last_pts_s = frame.captured_at, frame.pts_s
            next_tick = frame.captured_at + _TICK_S
    if last_at is None:
        declared = (
            "" if header.declared_s is None else f" of the {header.declared_s:.1f} s its header declares"
        )
        raise DecodeError(
            f"cannot replay {video}: not one frame could be decoded{declared} "
            "(the file is cut short before its first picture, or holds none)"
        )
    emit(analyzer.close(last_at))
    out.flush()
    video_s = last_at - begin
    ended_at_s = last_pts_s - header.start_s
    expected_s = header.declared_s
    if expected_s is not None and until_s is not None:  # until_s counts from the first analysed frame
        expected_s = min(expected_s, first_pts_s - header.start_s + until_s)
    if camera.keyframes_only:  # the last keyframe may stand a whole GOP before the end: nothing to tell
        expected_s = None
    slack_s = _CUT_SHORT_SLACK_S + 2.0 / camera.analysis_fps
    return ReplayReport(
        frames=frames,
        video_s=video_s,
        wall_s=time.monotonic() - started,
        events=len(written),
        incidents=len({e.id for e in written}),
        frames_inferred=frames_inferred,
        declared_s=header.declared_s,
        ended_at_s=ended_at_s,
        is_cut_short=expected_s is not None and ended_at_s + slack_s < expected_s,
        decode_errors=len(decode_errors),
    )


def _record(
    event: Event, begin: float, evidence_dir: Path | None, is_snapshot_embedded: bool
) -> dict[str, Any]:
    record = EventWire.from_event(event).model_dump(mode="json")
    if not is_snapshot_embedded:
        record["snapshot_jpeg_b64"] = None
    record["video_started_s"] = round(event.started_at - begin, 3)
    record["video_last_seen_s"] = round(event.last_seen_at - begin, 3)
    record["video_ended_s"] = None if event.ended_at is None else round(event.ended_at - begin, 3)
    record["has_clip"] = event.clip_mp4 is not None
    if evidence_dir is not None:
        stem = f"{event.behaviour.value}-{event.id[:12]}-r{event.revision}"
        if event.snapshot_jpeg is not None:
            (evidence_dir / f"{stem}.jpg").write_bytes(event.snapshot_jpeg)
            record["snapshot_file"] = f"{stem}.jpg"
        if event.clip_mp4 is not None:
            (evidence_dir / f"{stem}.mp4").write_bytes(event.clip_mp4)
            record["clip_file"] = f"{stem}.mp4"
    return record
