"""Wire one anjian process: store, evidence, webhooks, detector, pipeline and the HTTP app."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from fastapi import FastAPI

from models.onnx_detector import OnnxDetector
from models.registry import resolve_model_path
from pipeline.runner import CameraAssignment, PipelineRunner
from service.app import create_app
from service.config import AnjianConfig
from service.evidence import EvidenceStore
from service.sink import StoreSink
from service.store import EventStore
from service.webhooks import WebhookDispatcher

__all__ = ["Runtime", "build_runtime", "server_port"]

logger = logging.getLogger(__name__)


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
    """Everything a running anjian process holds, so it can be started and stopped as one."""

    config: AnjianConfig
    store: EventStore
    dispatcher: WebhookDispatcher
    app: FastAPI
    runner: PipelineRunner | None

    def start(self) -> None:
        """Start the webhook worker and, when built with one, the camera pipeline."""
        self.dispatcher.start()
        if self.runner is not None:
            self.runner.start()

    def stop(self) -> None:
        """Stop the pipeline (closing open incidents), then the webhook worker and the store."""
        if self.runner is not None:
            self.runner.stop()
        self.dispatcher.stop()
        self.store.close()


def build_runtime(config: AnjianConfig, *, with_pipeline: bool) -> Runtime:
    """Build the service (and, with ``with_pipeline``, the camera pipeline feeding it in-process).

    Raises:
        ModelLoadError: The configured model cannot be loaded.
        ModelMetadataError: It lacks what anjian needs.
    """
    store = EventStore.from_config(config.storage)
    evidence = EvidenceStore(config.storage.dir)
    dispatcher = WebhookDispatcher(store, config.webhooks)
    runner: PipelineRunner | None = None
    if with_pipeline:
        detector = OnnxDetector(resolve_model_path(config.model.path), config.model)
        sink = StoreSink(store, evidence, dispatcher, webhook_urls=[w.url for w in config.webhooks])
        assignments = [CameraAssignment(workshop.id, camera) for workshop, camera in config.cameras()]
        runner = PipelineRunner(config.site.id, assignments, detector, sink)
    app = create_app(
        config,
        store=store,
        evidence=evidence,
        dispatcher=dispatcher,
        camera_health=runner.health if runner is not None else None,
    )
    return Runtime(config=config, store=store, dispatcher=dispatcher, app=app, runner=runner)
