"""Wire one anjian process: store, evidence, webhooks, escalation, detector, pipeline and the HTTP app.

Three shapes:

- ``anjian serve``: the alert service alone (API, store, webhooks, escalation);
- ``anjian run``: the service and the camera pipeline in one process, the pipeline
  queueing events to the store's writer thread (``StoreSink``, the fastest path); the
  CLI builds it with ``is_pipeline_deferred``, so the API answers while the model and
  the pipeline load in the background;
- ``anjian run --service-url URL``: the pipeline alone, POSTing events to a service
  elsewhere through ``anjian.pipeline.http_sink.HttpEventSink`` with a disk spool, and
  its cameras' health every few seconds (``POST /ingest/health``: the service lists
  them with its own, ``anjian.service.camera_board``).

With ``--node NAME`` (a plant with several pipeline nodes, the site YAML's ``nodes:``)
either shape runs only the cameras the node leases on the plant's bus
(``anjian.service.nodes.CameraNode``): its runner starts with none, the node adds and
removes them, and its incident journal and spool live in ``{storage.dir}/nodes/NAME``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from anjian.service.app import create_app
from anjian.service.composition import ServiceParts, build_service_parts
from anjian.service.control import RunnerControl
from anjian.service.health_reporter import HealthReporter, health_interval_s
from anjian.service.nodes import CameraNode, RunnerCameras

if TYPE_CHECKING:  # the pipeline's modules (tracking, SciPy, ONNX Runtime, PyAV) load only where it runs
    from fastapi import FastAPI

    from anjian.models.loader import ServingModel
    from anjian.models.registry import PromotionWatch
    from anjian.pipeline.http_sink import HttpEventSink
    from anjian.pipeline.live import LiveView
    from anjian.pipeline.runner import PipelineRunner
    from anjian.pipeline.sink import EventSink
    from anjian.service.config import AnjianConfig
    from anjian.service.model_reload import ModelReloader

__all__ = ["Runtime", "build_pipeline_runtime", "build_runtime", "server_port"]

logger = logging.getLogger(__name__)

_SPOOL_DIR = "spool"
_JOURNAL_FILE = "open_incidents.json"


def server_port(config: AnjianConfig) -> int:
    """The port to serve on: ``ANJIAN_PORT`` when set, else ``server.port``."""
    raw = os.environ.get("ANJIAN_PORT")
    if not raw:
        return config.server.port
    if not raw.isdigit() or not 1 <= int(raw) <= 65535:
        raise ValueError(f"ANJIAN_PORT must be a TCP port 1..65535, got {raw!r}")
    return int(raw)


@dataclass
class Runtime:
    """Everything a running anjian process holds, so it can be started and stopped as one.

    ``parts`` (the service's store, workers and event writer, from the composition root
    ``anjian.service.composition``) and ``app`` are ``None`` in a pipeline-only process; ``runner`` is ``None`` in a service-only one; ``http_sink`` is set when
    the pipeline sends its events over HTTP, and ``health_reporter`` then POSTs its
    cameras' health through it every few seconds, and once more when it stops. With ``pending_pipeline``,
    ``start_pipeline_loading()`` builds the pipeline in a background thread once the
    service runs, sets ``runner``, ``control`` and ``model_reloader`` and starts them; a
    failure there goes to ``on_pipeline_error``.
    """

    config: AnjianConfig
    parts: ServiceParts | None
    app: FastAPI | None
    runner: PipelineRunner | None
    http_sink: HttpEventSink | None = None
    control: RunnerControl | None = None
    model_reloader: ModelReloader | None = None
    pending_pipeline: Callable[[], tuple[PipelineRunner, RunnerControl | None, ServingModel]] | None = None
    on_pipeline_error: Callable[[Exception], None] | None = None
    node: CameraNode | None = None
    health_reporter: HealthReporter | None = None
    _pipeline_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _is_stopping: bool = False

    def start(self) -> None:
        """Start the service's parts (webhook and escalation workers, event writer), the HTTP sink, the camera pipeline, model reloads."""
        if self.parts is not None:
            self.parts.start()
        if self.http_sink is not None:
            self.http_sink.start()
        if self.runner is not None:
            self.runner.start()
            self._start_node(self.runner)
        if self.health_reporter is not None:
            self.health_reporter.start()
        if self.model_reloader is not None:
            self.model_reloader.start()

    def _start_node(self, runner: PipelineRunner) -> None:
        """Start leasing the node's cameras into ``runner`` (no-op without ``--node``)."""
        if self.node is not None:
            self.node.start(RunnerCameras(runner, self.config))

    def start_pipeline_loading(self, *, after: Callable[[], bool] | None = None) -> None:
        """Build the pending pipeline in a background thread and start it (no-op without one).

        Args:
            after: Polled until true before loading starts (the HTTP server listening), so
                that the model's imports and load do not slow the API's own start.
        """
        if self.pending_pipeline is None:
            return

        def load() -> None:
            while after is not None and not after() and not self._is_stopping:
                time.sleep(0.02)
            self._load_pipeline()

        threading.Thread(target=load, name="pipeline-loader", daemon=True).start()

    def _load_pipeline(self) -> None:
        """Build the pending pipeline (model load included), wire it into the running service, start it."""
        pending = self.pending_pipeline
        if pending is None:
            return
        try:
            watch = _promotion_watch(self.config)  # before the load: a promotion landing during it is seen
            runner, control, serving = pending()
        except Exception as exc:  # noqa: BLE001 - reported to the CLI, which stops the process with it
            self._pipeline_failed(exc)
            return
        try:
            with self._pipeline_lock:
                if self._is_stopping:
                    return
                self.runner, self.control = runner, control
                if self.app is not None:
                    self.app.state.pipeline_control = control
                self.model_reloader = _model_reloader(self.config, runner, watch, serving)
                runner.start()
                self._start_node(runner)
                if self.model_reloader is not None:
                    self.model_reloader.start()
        except Exception as exc:  # noqa: BLE001 - as above: never an unreported error in the loader thread
            self._pipeline_failed(exc)
            return
        logger.info("camera pipeline started: %d camera(s)", len(runner.camera_ids()))

    def _pipeline_failed(self, exc: Exception) -> None:
        """Log why the pending pipeline cannot start and hand the error to ``on_pipeline_error``."""
        logger.error("the camera pipeline cannot start: %s", exc)
        if self.on_pipeline_error is not None:
            self.on_pipeline_error(exc)

    def stop(self) -> None:
        """Stop the pipeline (its open incidents stay open for the next start), then close the service's parts."""
        with self._pipeline_lock:
            self._is_stopping = True  # a pipeline still loading will not start
        if self.model_reloader is not None:
            self.model_reloader.stop()
        if self.node is not None:
            self.node.stop()  # its cameras stop, their leases go to the other nodes
        if self.runner is not None:
            self.runner.stop()
        if self.health_reporter is not None:
            self.health_reporter.stop()  # the last report: what it runs now (a node: nothing)
        if self.http_sink is not None:
            self.http_sink.stop()
        if self.parts is not None:
            self.parts.close()  # the event writer first stores what the pipeline and ingest queued


def _promotion_watch(config: AnjianConfig) -> PromotionWatch | None:
    """A watch on what the site's ``builtin:`` model resolves to (none for a file path).

    Made before the model loads, so that a promotion landing while it loads is the watch's
    first change: made after, it was the baseline, and never applied until a restart.
    """
    if not config.model.path.startswith("builtin:"):
        return None
    from anjian.models.registry import PromotionWatch

    # not strict: a promoted version whose folder is gone must not stop the start (load_serving falls back)
    return PromotionWatch(config.model.path, root=config.model.registry, is_strict=False)


def _model_reloader(
    config: AnjianConfig,
    runner: PipelineRunner | None,
    watch: PromotionWatch | None,
    serving: ServingModel | None,
) -> ModelReloader | None:
    """A reloader following ``watch`` (promotions of the site's ``builtin:`` model) for ``runner``.

    When an earlier promotion serves (``serving.passed_over``), the promoted one is tried
    again after the reloader's doubling wait, as after a failed hot swap. A reloader that
    cannot be made (the registry unreadable since the load) is an ERROR line and no
    reloader: the cameras run on the model they loaded, promotions apply at the next start.
    """
    if runner is None or watch is None:
        return None
    from anjian.service.model_reload import ModelReloader

    try:
        reloader = ModelReloader(config.model.path, config.model, runner, watch=watch)
        if serving is not None and serving.passed_over is not None:
            reloader.serving_earlier(serving.path, serving.passed_over)
    except Exception as exc:  # noqa: BLE001 - the pipeline runs on; promotions wait for a restart, said so
        logger.error(
            "%s: promotions are not followed until a restart, the cameras keep %s: %s",
            config.model.path,
            serving.path if serving is not None else runner.detector.version,
            exc,
        )
        return None
    return reloader


def _node_dir(config: AnjianConfig, node: str | None) -> Path:
    """Where a process keeps its journal and spool: ``storage.dir``, or a node's own folder under it."""
    return config.storage.dir if node is None else config.storage.dir / "nodes" / node


def _runner(
    config: AnjianConfig, sink: EventSink, live_view: LiveView | None = None, node: str | None = None
) -> tuple[PipelineRunner, ServingModel]:
    """The camera pipeline of the site, publishing to ``sink``, and the model it serves.

    Its model must detect on one blank frame first (as a hot-reloaded one must); when the
    promoted version cannot, the newest earlier promotion that can serves, loudly
    (``load_serving``); when none can, ``ModelError`` names why.
    Its open incidents outlive a restart (``{storage.dir}/open_incidents.json``): stopping
    leaves them open and this runner carries on with those of the previous run; those
    whose camera or rule is gone are ended here. A ``node``'s runner starts with no
    cameras (its ``CameraNode`` adds those it leases) and ends the others' incidents
    after its first lease round instead.
    """
    from anjian.models.loader import load_serving
    from anjian.pipeline.incident_journal import IncidentJournal
    from anjian.pipeline.runner import CameraAssignment, PipelineRunner
    from anjian.service.model_reload import warn_classes_not_detected

    serving = load_serving(config.model.path, config.model)
    if serving.passed_over is not None:
        logger.error(
            "the promoted model cannot serve (%s): the cameras run %s, promoted before it, until one that serves "
            "is promoted (`anjian models rollback` makes it official); the promoted one is tried again meanwhile",
            serving.passed_over,
            serving.path,
        )
    detector = serving.detector
    assignments = (
        [] if node is not None else [CameraAssignment(w.id, camera) for w, camera in config.cameras()]
    )
    journal = IncidentJournal(_node_dir(config, node) / _JOURNAL_FILE)
    runner = PipelineRunner(
        config.site.id,
        assignments,
        detector,
        sink,
        time_zone=config.site.timezone,
        language=config.site.language,
        incident_journal=journal,
        live_view=live_view,
    )
    warn_classes_not_detected(runner)
    if node is not None:
        return runner, serving  # RunnerCameras.settle() ends what the node does not take
    for event in journal.close_unclaimed(time.time()):
        sink.publish(event)
    return runner, serving


def _live_view(config: AnjianConfig) -> LiveView:
    """The control room's live view of the site's cameras, captioned with their names and the site's time."""
    from anjian.pipeline.live import LiveView, clock_caption

    names = {camera.id: camera.name or camera.id for _, camera in config.cameras()}
    return LiveView(
        caption=clock_caption(lambda camera_id: names.get(camera_id, camera_id), config.site.timezone)
    )


def build_runtime(
    config: AnjianConfig,
    *,
    with_pipeline: bool,
    config_path: Path | None = None,
    is_pipeline_deferred: bool = False,
    node: str | None = None,
) -> Runtime:
    """Build the service (and, with ``with_pipeline``, the camera pipeline feeding it in-process).

    With ``config_path`` (the site YAML the config came from), the API and SIGHUP can
    reload the cameras from that file while running. With ``is_pipeline_deferred``
    the pipeline (its imports and the model load: seconds) is built by
    ``Runtime.start_pipeline_loading()`` in the background, after the service is up, so
    the API answers at once; its errors then go to ``Runtime.on_pipeline_error`` instead
    of being raised here. With ``node`` (a name in the site's ``nodes:``) the pipeline
    runs only the cameras that node leases; the cameras are then not reloaded from the
    file (a node restarts to change them).

    Raises:
        ValueError: ``node`` is not one of the site's nodes.
        DatabaseError: The database cannot be migrated.
        ModelLoadError: The configured model cannot be loaded.
        ModelMetadataError: It lacks what anjian needs.
    """
    camera_node = CameraNode.from_config(config, node) if with_pipeline and node is not None else None
    if camera_node is not None:
        config_path = None  # the node's leases decide its cameras, not a reload
    holder: list[PipelineRunner] = []  # the runner, once built: the cameras' health comes from it
    live_view = _live_view(config) if with_pipeline else None
    parts = build_service_parts(
        config,
        camera_health=(lambda: holder[0].health() if holder else []) if with_pipeline else None,
        camera_node=node if with_pipeline else None,
        live_view=live_view,
    )
    runner: PipelineRunner | None = None
    control: RunnerControl | None = None

    def build_pipeline() -> tuple[PipelineRunner, RunnerControl | None, ServingModel]:
        built, serving = _runner(config, parts.sink, live_view, node)
        holder.append(built)
        return built, RunnerControl(built, config_path) if config_path is not None else None, serving

    watch = None
    serving: ServingModel | None = None
    if with_pipeline and not is_pipeline_deferred:
        try:
            watch = _promotion_watch(config)
            runner, control, serving = build_pipeline()
        except BaseException:
            parts.close()
            raise
    return Runtime(
        config=config,
        parts=parts,
        app=create_app(config, parts, pipeline_control=control),
        runner=runner,
        control=control,
        model_reloader=_model_reloader(config, runner, watch, serving),
        pending_pipeline=build_pipeline if with_pipeline and is_pipeline_deferred else None,
        node=camera_node,
    )


def build_pipeline_runtime(
    config: AnjianConfig, *, service_url: str, token: str, node: str | None = None
) -> Runtime:
    """Build the camera pipeline alone, sending its events to the service at ``service_url``.

    Undelivered events wait in ``{storage.dir}/spool`` (a node's: ``{storage.dir}/nodes/NAME/spool``)
    and go out, in order, once the service answers, after a restart of this process too.
    With ``node`` the pipeline runs only the cameras that node leases. The cameras' health
    goes to the service every few seconds (``POST /ingest/health``, ``HealthReporter``).

    Raises:
        ValueError: The URL or token is unusable, or ``node`` is not one of the site's nodes.
        ModelLoadError: The configured model cannot be loaded.
    """
    from anjian.pipeline.http_sink import HttpEventSink

    camera_node = None if node is None else CameraNode.from_config(config, node)
    sink = HttpEventSink(
        service_url,
        token,
        _node_dir(config, node) / _SPOOL_DIR,
        max_spool_bytes=config.storage.max_spool_mb * 1024 * 1024,
    )
    watch = _promotion_watch(config)
    runner, serving = _runner(config, sink, node=node)
    return Runtime(
        config=config,
        parts=None,
        app=None,
        runner=runner,
        http_sink=sink,
        model_reloader=_model_reloader(config, runner, watch, serving),
        node=camera_node,
        health_reporter=HealthReporter(
            sink, runner.health, node=node, interval_s=health_interval_s(config, node)
        ),
    )
