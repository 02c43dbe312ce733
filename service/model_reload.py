"""Hot reload of the promoted model: when ``anjian models promote|rollback`` changes what the
site's ``builtin:NAME`` resolves to, the running pipeline swaps to it between two batches."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from anjian.cameras.backoff import backoff_delay_s
from anjian.models.config import DetectorConfig
from anjian.models.detector import Detector
from anjian.models.errors import ModelError
from anjian.models.loader import load_detector, probe_detector
from anjian.models.registry import PromotionWatch
from anjian.pipeline.rules.registry import classes_not_detected
from anjian.pipeline.runner import PipelineRunner
from anjian.service.periodic import PeriodicThread

__all__ = ["ModelReloader", "classes_lost", "warn_classes_not_detected"]

logger = logging.getLogger(__name__)

_RETRY_MAX_S = 600.0  # longest wait between two tries of a promoted model that failed


def classes_lost(runner: PipelineRunner, new: Detector) -> str | None:
    """What the running cameras' rules would lose with ``new``: classes they name that it does not
    detect while the running model does (a retrain that renamed ``fire``); ``None`` when nothing."""
    lost = classes_not_detected(runner.camera_configs(), new.class_names.values())
    kept = classes_not_detected(runner.camera_configs(), runner.detector.class_names.values())
    lost = {key: cameras for key, cameras in lost.items() if key not in kept}
    if not lost:
        return None
    return (
        "; ".join(
            f"{behaviour} on {', '.join(cameras)} names class '{name}'"
            for (behaviour, name), cameras in lost.items()
        )
        + f": the running model detects it, this one does not (its classes: {', '.join(new.class_names.values())})"
    )


def warn_classes_not_detected(runner: PipelineRunner) -> None:
    """Log, at start, each class the cameras' enabled rules name that the model does not detect."""
    detector = runner.detector
    for (behaviour, name), cameras in classes_not_detected(
        runner.camera_configs(), detector.class_names.values()
    ).items():
        logger.warning(
            "%s on camera(s) %s names class '%s', which model %s does not detect (its classes: %s): "
            "the rule never sees it",
            behaviour,
            ", ".join(cameras),
            name,
            detector.version,
            ", ".join(detector.class_names.values()),
        )


@dataclass(slots=True)
class _Retry:
    """A promoted model that failed: how many tries so far and when to try again (monotonic s)."""

    tries: int
    at: float


class ModelReloader:
    """Polls the model registry and swaps the runner's detector when a promotion lands.

    A model that fails to load, or to detect on one blank frame before the swap, is logged
    and skipped: the pipeline keeps the model it has, and no camera or frame is dropped
    either way (``PipelineRunner.swap_detector``).
    Only ``builtin:`` specs can change; a plain file path is never reloaded.

    Example:
        >>> reloader = ModelReloader("builtin:anjian-n", config.model, runner)
        >>> reloader.start(); ...; reloader.stop()
    """

    def __init__(
        self,
        spec: str,
        config: DetectorConfig,
        runner: PipelineRunner,
        *,
        interval_s: float = 5.0,
        root: Path | None = None,
        watch: PromotionWatch | None = None,
    ) -> None:
        """Watch ``spec`` from its current resolution on, or from ``watch``'s baseline.

        Args:
            watch: A watch made before the runner's model was loaded (its baseline is what was
                resolved then: a promotion landing during the load is its first change).

        Raises:
            ModelLoadError: ``spec`` does not resolve now.
        """
        if interval_s <= 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s}")
        self._watch = watch if watch is not None else PromotionWatch(spec, root=root)
        self._config = config
        self._runner = runner
        self._ticker = PeriodicThread(self.check_once, interval_s=interval_s, name="anjian-model-reload")
        self._interval_s = interval_s
        self._retry: _Retry | None = None
        self.swaps = 0
        self.failures = 0

    def _failed(self, path: Path, why: str) -> None:
        """Count a failed try of ``path`` and schedule the next (doubling waits)."""
        self.failures += 1
        tries = self._retry.tries + 1 if self._retry is not None else 1
        wait_s = backoff_delay_s(tries, base_s=self._interval_s, max_s=_RETRY_MAX_S)
        self._retry = _Retry(tries, time.monotonic() + wait_s)
        logger.error("promoted model %s %s (tried again in %.0f s)", path, why, wait_s)

    def serving_earlier(self, path: Path, why: str) -> None:
        """The runner serves ``path``, an earlier promotion, because the promoted model cannot (``why``).

        The promoted one is tried again after the doubling wait (a transient failure, a GPU
        still full), and swapped in once it serves; a new promotion is tried at once.
        """
        promoted = self._watch.resolved()
        self._watch.accept(path)
        if promoted is not None and promoted != path:
            self._failed(promoted, f"cannot serve at start, running {path} meanwhile: {why}")

    def check_once(self) -> bool:
        """Swap to the newly promoted model if there is one; True when a swap was requested.

        A promoted model that fails to load or run (a transient I/O error, a GPU still full
        of the old model) is tried again after a doubling wait (the poll interval, up to
        ``_RETRY_MAX_S``) for as long as it stays promoted: the registry must not say one
        model is in force while the pipeline runs another until a restart.
        """
        path = self._watch.poll()
        if path is not None:  # a new promotion: tried at once
            self._retry = None
        elif self._retry is not None and time.monotonic() >= self._retry.at:
            path = self._watch.resolved()
            if path is None or path == self._watch.current:  # promoted away meanwhile
                self._retry = None
                return False
        if path is None:
            return False
        try:
            detector = load_detector(path, self._config)
        except ModelError as exc:
            self._failed(path, f"cannot be loaded, keeping the current one: {exc}")
            return False
        reason = probe_detector(detector)
        if reason is not None:
            self._failed(path, f"cannot run, keeping the current one: {reason}")
            return False
        lost = classes_lost(self._runner, detector)
        if lost is not None:
            self._failed(
                path,
                f"would blind rules, keeping the current one: {lost} (rename the classes in the rules' settings "
                "first, or promote a model that detects them)",
            )
            return False
        self._runner.swap_detector(detector)
        self._watch.accept(path)
        self._retry = None
        self.swaps += 1
        logger.info(
            "promoted model %s: pipeline switching to %s (calibrated thresholds: %s)",
            path,
            detector.version,
            detector.class_thresholds or "none, the rules' defaults apply",
        )
        return True

    def start(self) -> None:
        """Poll every ``interval_s`` in a background thread (a failed check is logged and retried)."""
        self._ticker.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop polling."""
        self._ticker.stop(timeout_s)
