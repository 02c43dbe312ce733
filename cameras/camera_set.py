"""The running cameras of a process, by id: add, remove or replace one without touching the others."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from anjian.cameras.config import CameraConfig
from anjian.cameras.frame import Frame
from anjian.cameras.health import CameraHealth
from anjian.cameras.source import VideoSource

__all__ = ["CameraSet", "CameraSetChange", "source_settings_differ"]

logger = logging.getLogger(__name__)

# CameraConfig fields that do not change how the stream is read: editing them keeps the reader.
_NON_SOURCE_FIELDS = frozenset({"name", "enabled", "faults"})

SourceFactory = Callable[[CameraConfig, threading.Condition], VideoSource]


def source_settings_differ(old: CameraConfig, new: CameraConfig) -> bool:
    """True when ``new`` reads the stream differently from ``old`` (so its reader must restart).

    Only ``CameraConfig``'s own fields count, minus name, enabled and fault thresholds:
    fields a subclass adds (zones, behaviours) never restart a reader.
    """
    fields = set(CameraConfig.model_fields) - _NON_SOURCE_FIELDS
    return any(getattr(old, name) != getattr(new, name) for name in fields)


@dataclass(frozen=True, slots=True)
class CameraSetChange:
    """What ``CameraSet.apply`` did, by camera id.

    Attributes:
        added: Cameras started.
        removed: Cameras stopped and forgotten (gone from the config, or disabled).
        restarted: Cameras whose reader restarted because how to read them changed.
        reconfigured: Cameras whose config changed only in fields that keep the reader
            (name, fault thresholds, zones, behaviours).
    """

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    restarted: tuple[str, ...] = ()
    reconfigured: tuple[str, ...] = ()


class CameraSet:
    """Owns one ``VideoSource`` per enabled camera and changes them one at a time.

    Every source shares one condition (``new_frame``), so a consumer can wait for
    "any camera has a frame". Adding, removing or restarting a camera never stops
    or delays the others; a removed reader stuck inside FFmpeg exits on its own and
    publishes nothing more. Thread-safe.

    Example:
        >>> cameras = CameraSet()
        >>> cameras.apply(config.cameras)        # at start-up
        >>> cameras.add(new_camera)              # hot add
        >>> cameras.apply(reloaded.cameras)      # config reload: only the changes happen
        >>> cameras.stop()
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        source_factory: SourceFactory | None = None,
        stop_timeout_s: float = 1.0,
    ) -> None:
        """Create an empty set.

        Args:
            clock: Wall clock, epoch seconds, handed to each source.
            source_factory: Builds a source from a config and the shared condition
                (tests inject fakes); defaults to ``VideoSource``.
            stop_timeout_s: How long a removal waits for the old reader thread.
        """
        self.new_frame = threading.Condition()
        self._clock = clock
        self._factory = source_factory or (lambda cfg, cond: VideoSource(cfg, clock=clock, new_frame=cond))
        self._stop_timeout_s = stop_timeout_s
        self._lock = threading.RLock()
        self._sources: dict[str, VideoSource] = {}
        self._is_started = False

    def __contains__(self, camera_id: object) -> bool:
        with self._lock:
            return camera_id in self._sources

    def __len__(self) -> int:
        with self._lock:
            return len(self._sources)

    def ids(self) -> list[str]:
        """Camera ids, in the order they were added."""
        with self._lock:
            return list(self._sources)

    def get(self, camera_id: str) -> VideoSource | None:
        """The source of ``camera_id``, or ``None``."""
        with self._lock:
            return self._sources.get(camera_id)

    def sources(self) -> list[VideoSource]:
        """The sources, in the order they were added (a copy: safe to iterate while others change it)."""
        with self._lock:
            return list(self._sources.values())

    def health(self) -> list[CameraHealth]:
        """Health of every camera, in the order they were added."""
        return [source.health() for source in self.sources()]

    def take_latest(self) -> list[Frame]:
        """Take the newest untaken frame of every camera that has one."""
        return [frame for source in self.sources() if (frame := source.take_latest()) is not None]

    def start(self) -> None:
        """Start every source; later additions start at once."""
        with self._lock:
            self._is_started = True
            for source in self._sources.values():
                source.start()

    def stop(self) -> None:
        """Stop every source (the set keeps them: ``start()`` resumes)."""
        with self._lock:
            self._is_started = False
            sources = list(self._sources.values())
        self._stop_all(sources)

    def add(self, config: CameraConfig) -> VideoSource:
        """Add a camera (started if the set is); disabled cameras are refused.

        Raises:
            ValueError: If a camera with this id is already in the set, or it is disabled.
        """
        if not config.enabled:
            raise ValueError(f"camera {config.id!r} is disabled; enable it before adding it")
        with self._lock:
            if config.id in self._sources:
                raise ValueError(f"camera {config.id!r} is already running; use update() to change it")
            source = self._factory(config, self.new_frame)
            self._sources[config.id] = source
            if self._is_started:
                source.start()
        logger.info("%s: camera added (%s)", config.id, config.masked_url)
        return source

    def remove(self, camera_id: str) -> bool:
        """Stop and forget a camera; return whether it was there."""
        with self._lock:
            source = self._sources.pop(camera_id, None)
        if source is None:
            return False
        source.stop(self._stop_timeout_s)
        logger.info("%s: camera removed", camera_id)
        return True

    def update(self, config: CameraConfig) -> bool:
        """Apply a new config to a running camera (adding it if absent, removing it if disabled).

        The reader restarts only when how the stream is read changed (URL, transport,
        rates, timeouts...); otherwise the source just takes the new config object.

        Returns:
            True if a reader was started, stopped or restarted.
        """
        is_changed, old = self.replace(config)
        if old is not None:
            self.retire(old)
        return is_changed

    def replace(self, config: CameraConfig) -> tuple[bool, VideoSource | None]:
        """``update`` without the wait: apply ``config`` and hand back the reader it took out, still running.

        Stopping a reader waits up to ``stop_timeout_s`` for its thread, and one stuck
        connecting to a camera (the usual reason to fix its URL) costs all of it. A caller
        holding a lock of its own (the pipeline runner, whose lock every camera's analysis
        needs) swaps the reader under it and ``retire``s the old one once it has let go.
        The old reader's frames are never taken again: it is out of the set.

        Returns:
            Whether a reader was started, stopped or restarted, and the reader taken out
            (to ``retire``), or ``None``.
        """
        if not config.enabled:
            with self._lock:
                removed = self._sources.pop(config.id, None)
            if removed is not None:
                logger.info("%s: camera removed", config.id)
            return removed is not None, removed
        with self._lock:
            old = self._sources.get(config.id)
            if old is None:
                self.add(config)
                return True, None
            if not source_settings_differ(old.config, config):
                old.config = config
                return False, None
            new = self._factory(config, self.new_frame)
            self._sources[config.id] = new  # keeps its place in the order
            if self._is_started:
                new.start()
        logger.info("%s: camera restarted with a new config (%s)", config.id, config.masked_url)
        return True, old

    def retire(self, source: VideoSource) -> None:
        """Stop a reader ``replace`` took out of the set (waits up to ``stop_timeout_s`` for its thread)."""
        source.stop(self._stop_timeout_s)

    def apply(self, configs: Sequence[CameraConfig]) -> CameraSetChange:
        """Make the set match ``configs`` (a reloaded site config), touching only what changed.

        Raises:
            ValueError: If two configs share an id.
        """
        wanted = {c.id: c for c in configs if c.enabled}
        ids = [c.id for c in configs]
        if len(set(ids)) != len(ids):
            raise ValueError(f"camera ids must be unique, got {ids}")
        added: list[str] = []
        removed: list[str] = []
        restarted: list[str] = []
        reconfigured: list[str] = []
        for camera_id in self.ids():
            if camera_id not in wanted:
                self.remove(camera_id)
                removed.append(camera_id)
        for camera_id, config in wanted.items():
            source = self.get(camera_id)
            if source is None:
                self.add(config)
                added.append(camera_id)
            elif source.config != config:
                (restarted if self.update(config) else reconfigured).append(camera_id)
        return CameraSetChange(tuple(added), tuple(removed), tuple(restarted), tuple(reconfigured))

    def _stop_all(self, sources: list[VideoSource]) -> None:
        """Stop sources in parallel: each may take a moment to leave FFmpeg."""
        threads = [
            threading.Thread(target=s.stop, args=(self._stop_timeout_s,), daemon=True) for s in sources
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
