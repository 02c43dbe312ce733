"""Cross-camera batching: the newest frame of every camera that has one, in one detector batch.

Each camera's reader keeps only its newest frame (``cameras.VideoSource``). The
``FrameBatcher`` takes those frames as they come and hands the analysis loop a batch:

* **dynamic size**: as soon as one frame is there, it waits at most ``deadline_s``
  for more, and flushes early when ``max_batch`` are ready; frames that arrived while
  the detector was busy are all taken at once, so batches grow with load;
* **never waits for a slow or dead camera**: waiting is bounded by the deadline, and a
  camera that sends nothing is simply not in the batch;
* **drops, never queues**: a camera holds at most one pending frame; a newer one
  replaces it (``frames_superseded``), and one that waited more than ``max_age_s``
  is dropped (``frames_stale``);
* **fair under overload**: when more cameras are ready than fit, those that have
  waited longest go first, so every camera is served in turn.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from anjian.cameras.frame import Frame

__all__ = ["BatcherStats", "FrameBatcher", "FrameSource", "PendingFrame"]

_UNTIL_POLL_S = 0.002
"""How often a wait with an ``until`` asks it: a batch done on the model waits at most this long to be collected."""


class FrameSource(Protocol):
    """What the batcher needs of a camera (``cameras.VideoSource`` is one)."""

    @property
    def camera_id(self) -> str:
        """The camera's id."""
        ...

    def take_latest(self) -> Frame | None:
        """The newest frame not taken yet, or ``None``."""
        ...

    @property
    def keeps_every_frame(self) -> bool:
        """True for a source that decodes its next frame only once the last was taken (a file read as fast as
        the engine takes it): its frame waiting in the batcher is never replaced by a newer one, which would
        throw away a decoded frame where a live camera's newest simply wins."""
        ...


@dataclass(frozen=True, slots=True)
class PendingFrame:
    """A frame in a batch, with when the batcher received it.

    Attributes:
        frame: The frame.
        received_at: Monotonic seconds when the batcher took it from its camera.
    """

    frame: Frame
    received_at: float


@dataclass(frozen=True, slots=True)
class BatcherStats:
    """Counters of a ``FrameBatcher`` since it was created.

    Attributes:
        batches: Batches handed out.
        frames: Frames handed out in them.
        full_batches: Batches flushed because ``max_batch`` frames were ready.
        frames_superseded: Pending frames replaced by a newer frame of the same camera.
        frames_stale: Pending frames dropped because they waited longer than ``max_age_s``.
        max_batch_size: Largest batch so far.
    """

    batches: int = 0
    frames: int = 0
    full_batches: int = 0
    frames_superseded: int = 0
    frames_stale: int = 0
    max_batch_size: int = 0

    @property
    def mean_batch_size(self) -> float:
        """Frames per batch on average (0 before the first batch)."""
        return self.frames / self.batches if self.batches else 0.0


@dataclass(slots=True)
class _Slot:
    pending: PendingFrame
    waiting_since: float  # when the camera's oldest unserved frame arrived: fairness key


class FrameBatcher:
    """Collects frames across cameras into dynamic batches for one analysis thread.

    Example:
        >>> batcher = FrameBatcher(camera_set.new_frame, max_batch=8)
        >>> while running:
        ...     batch = batcher.next_batch(camera_set.sources, timeout_s=0.25)
        ...     detections = detector.detect([p.frame.image for p in batch])
    """

    def __init__(
        self,
        new_frame: threading.Condition,
        *,
        max_batch: int = 8,
        deadline_s: float = 0.02,
        max_age_s: float = 2.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """Create a batcher.

        Args:
            new_frame: The condition every camera notifies on a new frame (shared with them).
            max_batch: Most frames in one batch.
            deadline_s: Once a frame is ready, how long to wait for others before flushing.
            max_age_s: A frame not batched within this long after arrival is dropped.
            monotonic: Monotonic clock, seconds (tests inject a fake).

        Raises:
            ValueError: On a non-positive ``max_batch`` or ``max_age_s``, or a negative deadline.
        """
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        if deadline_s < 0 or max_age_s <= 0:
            raise ValueError(f"deadline_s must be >= 0 and max_age_s > 0, got {deadline_s} and {max_age_s}")
        self.max_batch = max_batch
        self.deadline_s = deadline_s
        self.max_age_s = max_age_s
        self._new_frame = new_frame
        self._monotonic = monotonic
        self._slots: dict[str, _Slot] = {}
        self._served_seq: dict[str, int] = {}  # when each camera was last served: breaks ties
        self._seq = 0
        self._stats = BatcherStats()

    def stats(self) -> BatcherStats:
        """Counters so far (an immutable copy)."""
        return self._stats

    def next_batch(
        self,
        sources: Callable[[], Sequence[FrameSource]],
        timeout_s: float,
        *,
        until: Callable[[], bool] | None = None,
    ) -> list[PendingFrame]:
        """Wait up to ``timeout_s`` for frames; return a batch (empty if none came).

        Args:
            sources: Returns the current cameras (called on every look, so cameras
                added or removed meanwhile are seen).
            timeout_s: Longest wait for a first frame.
            until: Stop waiting once this is true (asked on every new frame and every
                ``_UNTIL_POLL_S``): with a batch on the model, the next one is gathered while
                the model works, and the wait ends when the model is done, with what has
                come by then, so its result is not held back.

        Returns:
            Up to ``max_batch`` frames, at most one per camera, longest-waiting cameras first.
        """
        give_up_at = self._monotonic() + timeout_s
        with self._new_frame:
            while True:
                ready = self._gather(sources())
                now = self._monotonic()
                if ready or now >= give_up_at or (until is not None and until()):
                    break
                self._new_frame.wait(self._wait_s(give_up_at - now, until))
            if not ready:
                return []
            flush_at = now + self.deadline_s
            while ready < min(self.max_batch, ready + len(self._cameras_without_frame(sources()))):
                now = self._monotonic()
                if now >= flush_at or (until is not None and until()):
                    break
                self._new_frame.wait(self._wait_s(flush_at - now, until))
                ready = self._gather(sources(), only_missing=True)
            return self._take()

    @staticmethod
    def _wait_s(left_s: float, until: Callable[[], bool] | None) -> float:
        """How long to sleep before looking again: what is left, or less when ``until`` must be asked meanwhile."""
        return left_s if until is None else min(left_s, _UNTIL_POLL_S)

    def forget(self, camera_id: str) -> None:
        """Drop a removed camera's pending frame."""
        with self._new_frame:
            self._slots.pop(camera_id, None)
            self._served_seq.pop(camera_id, None)

    def _cameras_without_frame(self, sources: Sequence[FrameSource]) -> list[str]:
        return [s.camera_id for s in sources if s.camera_id not in self._slots]

    def _gather(self, sources: Sequence[FrameSource], *, only_missing: bool = False) -> int:
        """Take every camera's new frame into its slot; drop stale and orphaned ones; return the count.

        With ``only_missing`` (while waiting for the other cameras) cameras that already
        have a pending frame are left alone: their newer frame waits in the camera.
        """
        now = self._monotonic()
        present = set()
        superseded = stale = 0
        for source in sources:
            camera_id = source.camera_id
            present.add(camera_id)
            slot = self._slots.get(camera_id)
            if slot is not None and (only_missing or source.keeps_every_frame):
                continue
            frame = source.take_latest()
            if frame is not None:
                if slot is None:
                    self._slots[camera_id] = _Slot(PendingFrame(frame, now), waiting_since=now)
                else:
                    slot.pending = PendingFrame(frame, now)
                    superseded += 1
        for camera_id, slot in list(self._slots.items()):
            if camera_id not in present:
                del self._slots[camera_id]
            elif now - slot.pending.received_at > self.max_age_s:
                del self._slots[camera_id]
                stale += 1
        if superseded or stale:
            s = self._stats
            self._stats = replace(
                s, frames_superseded=s.frames_superseded + superseded, frames_stale=s.frames_stale + stale
            )
        return len(self._slots)

    def _take(self) -> list[PendingFrame]:
        order = sorted(self._slots, key=lambda c: (self._slots[c].waiting_since, self._served_seq.get(c, -1)))
        chosen = order[: self.max_batch]
        batch = [self._slots.pop(camera_id).pending for camera_id in chosen]
        for camera_id in chosen:
            self._seq += 1
            self._served_seq[camera_id] = self._seq
        s = self._stats
        self._stats = replace(
            s,
            batches=s.batches + 1,
            frames=s.frames + len(batch),
            full_batches=s.full_batches + (len(batch) == self.max_batch),
            max_batch_size=max(s.max_batch_size, len(batch)),
        )
        return batch
