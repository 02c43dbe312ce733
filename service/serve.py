"""Run a built ``Runtime`` until it is told to stop: behind uvicorn (``anjian serve`` / ``run``) or alone.

``serve_runtime`` is the process's life after the composition root has built it:

1. start the service's parts (and a pipeline built up front);
2. start the HTTP server; once it listens, load the camera pipeline in the background
   (so the API answers within a second while the model loads for seconds);
3. SIGHUP re-reads the site YAML's cameras, as daemons do;
4. Ctrl-C or SIGTERM stops the server, then the runtime (pipeline first, the store last).

A camera pipeline that cannot load stops the server, and ``serve_runtime`` returns its
error for the command to report. ``run_until_signalled`` is the same life without a
server, for a pipeline that sends its events to a service elsewhere.
"""

from __future__ import annotations

import logging
import signal
import threading
from typing import TYPE_CHECKING

from anjian.service.errors import ConfigError

if TYPE_CHECKING:
    from anjian.service.runtime import Runtime

__all__ = ["reload_cameras_on_sighup", "run_until_signalled", "serve_runtime"]

logger = logging.getLogger(__name__)

_GRACEFUL_SHUTDOWN_S = 3


def reload_cameras_on_sighup(runtime: Runtime) -> None:
    """Make SIGHUP re-read the site YAML's cameras, off the signal handler's thread (no-op without a pipeline)."""
    if runtime.control is None and runtime.pending_pipeline is None:
        return

    def reload() -> None:
        if runtime.node is not None:
            logger.warning(
                "camera reload skipped: a pipeline node runs the cameras it leases; restart it instead"
            )
            return
        control = runtime.control  # set once the pipeline has loaded
        if control is None:
            logger.warning("camera reload skipped: the camera pipeline is still loading")
            return
        try:
            changes = control.reload_cameras()
        except (ConfigError, ValueError) as exc:
            logger.error("camera reload refused, nothing changed: %s", exc)
            return
        logger.info(
            "cameras reloaded: added %s, removed %s, %d kept (restarted only where changed)",
            changes.added,
            changes.removed,
            len(changes.updated),
        )

    signal.signal(signal.SIGHUP, lambda _sig, _frame: threading.Thread(target=reload, daemon=True).start())


def serve_runtime(runtime: Runtime, *, host: str, port: int) -> Exception | None:
    """Serve ``runtime.app`` on ``host:port`` until Ctrl-C or SIGTERM, then stop the runtime.

    Args:
        runtime: From ``build_runtime`` (not started); a pending pipeline loads once
            the server listens.
        host: Interface to listen on.
        port: TCP port.

    Returns:
        The error that kept the camera pipeline from starting (it stopped the server),
        or ``None`` after a requested stop.

    Raises:
        ValueError: The runtime has no HTTP app (a pipeline-only runtime).
    """
    import uvicorn

    if runtime.app is None:
        raise ValueError("a pipeline-only runtime has no HTTP app to serve; use run_until_signalled")
    server = uvicorn.Server(
        uvicorn.Config(
            runtime.app,
            host=host,
            port=port,
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=_GRACEFUL_SHUTDOWN_S,
        )
    )
    pipeline_errors: list[Exception] = []

    def stop_on_pipeline_error(exc: Exception) -> None:  # a model that cannot load ends the process
        pipeline_errors.append(exc)
        server.should_exit = True

    runtime.on_pipeline_error = stop_on_pipeline_error
    runtime.start()
    runtime.start_pipeline_loading(after=lambda: server.started or server.should_exit)  # API answers first
    reload_cameras_on_sighup(runtime)
    try:
        try:
            server.run()
        except KeyboardInterrupt:
            pass  # uvicorn re-raises the Ctrl-C it handled; a requested stop is a clean exit
    finally:
        runtime.stop()
    return pipeline_errors[0] if pipeline_errors else None


def run_until_signalled(runtime: Runtime) -> None:
    """Start ``runtime`` and keep it running until SIGINT or SIGTERM, then stop it."""
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    runtime.start()
    try:
        stop.wait()
    finally:
        runtime.stop()
