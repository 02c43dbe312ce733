"""Wire one anjian process: store, evidence, webhooks, escalation, detector, pipeline and the HTTP app.

Three shapes:

- ``anjian serve``: the alert service alone (API, store, webhooks, escalation);
- ``anjian run``: the service and the camera pipeline in one process, the pipeline
  queueing events to the store's writer thread (``StoreSink``, the fastest path);
- ``anjian run --service-url URL``: the pipeline alone, POSTing events to a service
  elsewhere through ``pipeline.http_sink.HttpEventSink`` with a disk spool.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI

from models.loader import load_detector
from pipeline.http_sink import HttpEventSink
from pipeline.runner import CameraAssignment, PipelineRunner
from pipeline.sink import EventSink
from service.app import create_app
from service.config import AnjianConfig
from service.control import RunnerControl
from service.escalation import Escalator
from service.evidence import EvidenceStore
from service.metrics import ServiceMetrics
from service.model_reload import ModelReloader
from service.sink import StoreSink
from service.store import EventStore
from service.webhooks import WebhookDispatcher

__all__ = ["Runtime", "build_pipeline_runtime", "build_runtime", "server_port"]

logger = logging.getLogger(__name__)

_SPOOL_DIR = "spool"


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

    ``store``, ``dispatcher``, ``escalator`` and ``app`` are ``None`` in a pipeline-only
    process; ``runner`` is ``None`` in a service-only one; ``http_sink`` is set when
    the pipeline sends its events over HTTP.
    """

    config: AnjianConfig
    store: EventStore | None
    dispatcher: WebhookDispatcher | None
    escalator: Escalator | None
    app: FastAPI | None
    runner: PipelineRunner | None
    http_sink: HttpEventSink | None = None
    control: RunnerControl | None = None
    model_reloader: ModelReloader | None = None
    sink: StoreSink | None = None

    def start(self) -> None:
        """Start the event writer, the webhook and escalation workers, the HTTP sink, the camera pipeline, model reloads."""
        if self.sink is not None:
            self.sink.start()
        if self.dispatcher is not None:
            self.dispatcher.start()
        if self.escalator is not None:
            self.escalator.start()
        if self.http_sink is not None:
            self.http_sink.start()
        if self.runner is not None:
            self.runner.start()
        if self.model_reloader is not None:
            self.model_reloader.start()

    def stop(self) -> None:
        """Stop the pipeline (closing open incidents), then the sink, the workers and the store."""
        if self.model_reloader is not None:
            self.model_reloader.stop()
        if self.runner is not None:
            self.runner.stop()
        if self.http_sink is not None:
            self.http_sink.stop()
        if self.sink is not None:
            self.sink.stop()  # stores what the pipeline and ingest queued
        if self.escalator is not None:
            self.escalator.stop()
        if self.dispatcher is not None:
            self.dispatcher.stop()
        if self.store is not None:
            self.store.close()


def _model_reloader(config: AnjianConfig, runner: PipelineRunner | None) -> ModelReloader | None:
    """A reloader following promotions of the site's ``builtin:`` model (none for a file path)."""
    if runner is None or not config.model.path.startswith("builtin:"):
        return None
    return ModelReloader(config.model.path, config.model, runner, root=config.model.registry)


def _runner(config: AnjianConfig, sink: EventSink) -> PipelineRunner:
    """The camera pipeline of the site, publishing to ``sink``."""
    detector = load_detector(config.model.path, config.model)
    assignments = [CameraAssignment(workshop.id, camera) for workshop, camera in config.cameras()]
    return PipelineRunner(config.site.id, assignments, detector, sink, time_zone=config.site.timezone)


def build_runtime(config: AnjianConfig, *, with_pipeline: bool, config_path: Path | None = None) -> Runtime:
    """Build the service (and, with ``with_pipeline``, the camera pipeline feeding it in-process).

    With ``config_path`` (the site YAML the config came from), the API and SIGHUP can
    reload the cameras from that file while running.

    Raises:
        DatabaseError: The database cannot be migrated.
        ModelLoadError: The configured model cannot be loaded.
        ModelMetadataError: It lacks what anjian needs.
    """
    store = EventStore.from_config(config.storage)
    evidence = EvidenceStore(config.storage.dir)
    holder: list[PipelineRunner] = []
    metrics = ServiceMetrics(store, lambda: holder[0].health() if holder else [])
    dispatcher = WebhookDispatcher(store, metrics=metrics)
    escalator = Escalator(store, config.sla, dispatcher=dispatcher, metrics=metrics)
    sink = StoreSink(store, evidence, dispatcher, metrics=metrics)
    runner: PipelineRunner | None = None
    control: RunnerControl | None = None
    if with_pipeline:
        runner = _runner(config, sink)
        holder.append(runner)
        if config_path is not None:
            control = RunnerControl(runner, config_path)
    app = create_app(
        config,
        store=store,
        evidence=evidence,
        dispatcher=dispatcher,
        camera_health=runner.health if runner is not None else None,
        metrics=metrics,
        escalator=escalator,
        pipeline_control=control,
        sink=sink,
    )
    return Runtime(
        config=config,
        store=store,
        dispatcher=dispatcher,
        escalator=escalator,
        app=app,
        runner=runner,
        control=control,
        model_reloader=_model_reloader(config, runner),
        sink=sink,
    )


def build_pipeline_runtime(config: AnjianConfig, *, service_url: str, token: str) -> Runtime:
    """Build the camera pipeline alone, sending its events to the service at ``service_url``.

    Undelivered events wait in ``{storage.dir}/spool`` and go out, in order, once the
    service answers, after a restart of this process too.

    Raises:
        ValueError: The URL or token is unusable.
        ModelLoadError: The configured model cannot be loaded.
    """
    sink = HttpEventSink(service_url, token, config.storage.dir / _SPOOL_DIR)
    runner = _runner(config, sink)
    return Runtime(
        config=config,
        store=None,
        dispatcher=None,
        escalator=None,
        app=None,
        runner=runner,
        http_sink=sink,
        model_reloader=_model_reloader(config, runner),
    )
