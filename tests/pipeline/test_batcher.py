"""The cross-camera batcher: dynamic batches, no waiting on dead cameras, drops instead of queues, fairness."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable

import numpy as np
import pytest

from anjian.cameras.frame import Frame
from anjian.pipeline.batcher import FrameBatcher

_IMAGE = np.zeros((8, 8, 3), np.uint8)


class _FakeSource:
    """A camera that holds at most one frame, like ``VideoSource``."""

    def __init__(
        self, camera_id: str, condition: threading.Condition, *, keeps_every_frame: bool = False
    ) -> None:
        self._id = camera_id
        self._condition = condition
        self._latest: Frame | None = None
        self._index = 0
        self._keeps_every_frame = keeps_every_frame

    @property
    def camera_id(self) -> str:
        return self._id

    def publish(self) -> None:
        with self._condition:
            self._latest = Frame(
                self._id, _IMAGE, captured_at=float(self._index), pts_s=0.0, index=self._index
            )
            self._index += 1
            self._condition.notify_all()

    def take_latest(self) -> Frame | None:
        with self._condition:
            frame, self._latest = self._latest, None
            return frame

    @property
    def keeps_every_frame(self) -> bool:
        return self._keeps_every_frame

    @property
    def has_frame(self) -> bool:
        return self._latest is not None


class _FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _sources(n: int, condition: threading.Condition) -> list[_FakeSource]:
    return [_FakeSource(f"cam-{i}", condition) for i in range(n)]


def _cameras(
    n: int,
    *,
    max_batch: int,
    deadline_s: float,
    max_age_s: float = 2.0,
    monotonic: Callable[[], float] = time.monotonic,
) -> tuple[list[_FakeSource], FrameBatcher]:
    """``n`` fake cameras and a batcher over them, sharing one condition."""
    condition = threading.Condition()
    batcher = FrameBatcher(
        condition, max_batch=max_batch, deadline_s=deadline_s, max_age_s=max_age_s, monotonic=monotonic
    )
    return _sources(n, condition), batcher


def test_batch_holds_the_newest_frame_of_every_ready_camera() -> None:
    sources, batcher = _cameras(3, max_batch=8, deadline_s=0.0)
    for source in sources:
        source.publish()
    sources[0].publish()  # replaces its first frame inside the source

    batch = batcher.next_batch(lambda: sources, timeout_s=0.0)

    assert sorted(p.frame.camera_id for p in batch) == ["cam-0", "cam-1", "cam-2"]
    assert next(p.frame.index for p in batch if p.frame.camera_id == "cam-0") == 1
    stats = batcher.stats()
    assert (stats.batches, stats.frames, stats.max_batch_size) == (1, 3, 3)


def test_dead_camera_does_not_hold_the_batch_past_the_deadline() -> None:
    (live, dead), batcher = _cameras(2, max_batch=8, deadline_s=0.05)
    live.publish()

    started = time.monotonic()
    batch = batcher.next_batch(lambda: [live, dead], timeout_s=30.0)
    elapsed = time.monotonic() - started

    assert [p.frame.camera_id for p in batch] == ["cam-0"]
    assert elapsed < 5.0  # the deadline (0.05 s) bounds the wait, not the 30 s timeout


def test_frames_arriving_within_the_deadline_join_the_batch() -> None:
    (first, second), batcher = _cameras(2, max_batch=8, deadline_s=10.0)
    first.publish()
    threading.Timer(0.05, second.publish).start()

    batch = batcher.next_batch(lambda: [first, second], timeout_s=1.0)

    # Both cameras are in: the batch flushed as soon as every camera had a frame, not after 10 s.
    assert sorted(p.frame.camera_id for p in batch) == ["cam-0", "cam-1"]


def test_no_frame_returns_an_empty_batch_after_the_timeout() -> None:
    condition = threading.Condition()
    batcher = FrameBatcher(condition)
    assert batcher.next_batch(lambda: _sources(2, condition), timeout_s=0.01) == []


def test_a_wait_for_frames_ends_when_until_turns_true() -> None:
    """The inference loop gathers the next batch while the model runs; the model finishing ends the wait."""
    (camera,), batcher = _cameras(1, max_batch=8, deadline_s=0.0)
    model_done = threading.Event()
    threading.Timer(0.05, model_done.set).start()

    started = time.monotonic()
    batch = batcher.next_batch(lambda: [camera], timeout_s=30.0, until=model_done.is_set)

    assert batch == []
    assert time.monotonic() - started < 10.0  # ended by until, not by the 30 s timeout


def test_a_partial_batch_is_flushed_when_until_turns_true_before_the_deadline() -> None:
    (first, second), batcher = _cameras(2, max_batch=8, deadline_s=30.0)
    first.publish()
    model_done = threading.Event()
    threading.Timer(0.05, model_done.set).start()

    started = time.monotonic()
    batch = batcher.next_batch(lambda: [first, second], timeout_s=30.0, until=model_done.is_set)

    assert [p.frame.camera_id for p in batch] == ["cam-0"]  # not held 30 s for the silent camera
    assert time.monotonic() - started < 10.0


def test_frames_already_there_are_taken_even_when_until_is_true() -> None:
    (first, second), batcher = _cameras(2, max_batch=8, deadline_s=30.0)
    first.publish()
    second.publish()

    batch = batcher.next_batch(lambda: [first, second], timeout_s=30.0, until=lambda: True)

    assert sorted(p.frame.camera_id for p in batch) == ["cam-0", "cam-1"]


def test_overload_serves_every_camera_in_turn() -> None:
    sources, batcher = _cameras(5, max_batch=2, deadline_s=0.0)
    served: Counter[str] = Counter()
    for _ in range(10):
        for source in sources:  # every camera always has a new frame: more than fits
            source.publish()
        batch = batcher.next_batch(lambda: sources, timeout_s=0.0)
        assert len(batch) == 2
        served.update(p.frame.camera_id for p in batch)

    assert served == {f"cam-{i}": 4 for i in range(5)}
    # Frames that waited were replaced by newer ones of the same camera, never queued.
    assert batcher.stats().frames_superseded > 0


def test_a_source_that_keeps_every_frame_is_served_in_order_and_never_superseded() -> None:
    condition = threading.Condition()
    batcher = FrameBatcher(condition, max_batch=2, deadline_s=0.0, max_age_s=60.0)
    sources = [_FakeSource(f"cam-{i}", condition, keeps_every_frame=True) for i in range(5)]
    analysed: dict[str, list[int]] = {s.camera_id: [] for s in sources}
    for _ in range(10):
        # Like a file read as fast as the engine takes it: the next frame once the last was taken.
        for source in sources:
            if not source.has_frame:
                source.publish()
        batch = batcher.next_batch(lambda: sources, timeout_s=0.0)
        assert len(batch) == 2
        for pending in batch:
            analysed[pending.frame.camera_id].append(pending.frame.index)

    # Every decoded frame is analysed, none thrown away, and the cameras still take turns.
    assert batcher.stats().frames_superseded == 0
    assert {camera: frames == list(range(len(frames))) for camera, frames in analysed.items()} == {
        f"cam-{i}": True for i in range(5)
    }
    assert sorted(len(frames) for frames in analysed.values()) == [4, 4, 4, 4, 4]


def test_frame_waiting_too_long_is_dropped_as_stale() -> None:
    clock = _FakeClock()
    sources, batcher = _cameras(3, max_batch=1, deadline_s=0.0, max_age_s=2.0, monotonic=clock)
    for source in sources:
        source.publish()
    assert len(batcher.next_batch(lambda: sources, timeout_s=0.0)) == 1  # two left pending

    clock.now += 2.5
    assert batcher.next_batch(lambda: sources, timeout_s=0.0) == []

    assert batcher.stats().frames_stale == 2


def test_removed_camera_leaves_no_pending_frame() -> None:
    sources, batcher = _cameras(2, max_batch=1, deadline_s=0.0)
    for source in sources:
        source.publish()
    batcher.next_batch(lambda: sources, timeout_s=0.0)

    batch = batcher.next_batch(list, timeout_s=0.0)

    assert batch == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"max_batch": 0}, "max_batch"), ({"max_age_s": 0}, "max_age_s"), ({"deadline_s": -1}, "deadline_s")],
    ids=["batch", "age", "deadline"],
)
def test_invalid_settings_are_refused(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FrameBatcher(threading.Condition(), **kwargs)  # type: ignore[arg-type]
