"""Run-time control of the in-process pipeline: camera reload from the site YAML, reference resets."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from anjian.service.config import load_config

if TYPE_CHECKING:
    from anjian.pipeline.runner import PipelineRunner

__all__ = ["CameraChanges", "PipelineControl", "RunnerControl"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CameraChanges:
    """What a reload did, by camera id."""

    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)


class PipelineControl(Protocol):
    """What the API may ask of the pipeline running in this process."""

    def reload_cameras(self) -> CameraChanges:
        """Re-read the site YAML and apply its cameras; raises ``ConfigError`` if it is invalid."""
        ...

    def reset_reference(self, camera_id: str, zone_id: str) -> bool:
        """Forget a zone's learned clear/clean view; ``KeyError`` for an unknown camera."""
        ...


class RunnerControl:
    """``PipelineControl`` over a ``PipelineRunner`` and the site YAML it was started from.

    A reload adds new cameras, removes those gone from the file and updates the rest
    (the runner restarts a reader only when its stream settings changed), without
    touching cameras whose settings did not change. The site id must stay the same.
    """

    def __init__(self, runner: PipelineRunner, config_path: Path) -> None:
        self._runner = runner
        self._config_path = config_path
        self._lock = threading.Lock()

    def reload_cameras(self) -> CameraChanges:
        """Apply the cameras of the site YAML as it is now on disk.

        Raises:
            ConfigError: The file is invalid (nothing is changed).
            ValueError: The file names another site.
        """
        from anjian.pipeline.runner import CameraAssignment  # the runner is loaded by now: no cost

        with self._lock:
            config = load_config(self._config_path)
            if config.site.id != self._runner.site_id:
                raise ValueError(
                    f"{self._config_path}: site id changed from {self._runner.site_id!r} to "
                    f"{config.site.id!r}; restart anjian to change sites"
                )
            wanted = {c.id: CameraAssignment(w.id, c) for w, c in config.cameras() if c.enabled}
            current = set(self._runner.camera_ids())
            changes = CameraChanges(
                added=sorted(set(wanted) - current),
                removed=sorted(current - set(wanted)),
                updated=sorted(current & set(wanted)),
            )
            for camera_id in changes.removed:
                self._runner.remove_camera(camera_id)
            for camera_id in changes.added:
                self._runner.add_camera(wanted[camera_id])
            for camera_id in changes.updated:
                self._runner.update_camera(wanted[camera_id])
            logger.info(
                "cameras reloaded from %s: %d added, %d removed, %d checked for changes",
                self._config_path,
                len(changes.added),
                len(changes.removed),
                len(changes.updated),
            )
            return changes

    def reset_reference(self, camera_id: str, zone_id: str) -> bool:
        """Forget a zone's learned view; ``KeyError`` when the camera is not analysed."""
        return self._runner.reset_reference(camera_id, zone_id)
