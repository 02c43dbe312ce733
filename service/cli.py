"""The ``anjian`` command line: the composition root that starts every part of anjian.

It is the one module allowed to reach every package (``datasets``/``training`` commands
are imported lazily, so the runtime path never loads torch).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import Annotated

import typer
import uvicorn

from cameras.config import CameraConfig
from cameras.decode import decode_frames
from cameras.errors import CameraError
from models.errors import ModelError
from service.config import AnjianConfig, load_config
from service.errors import ConfigError
from service.logs import setup_logging

__all__ = ["app"]

logger = logging.getLogger("anjian")

app = typer.Typer(
    name="anjian",
    help="anjian (安监): safety-supervision alerts from factory RTSP cameras.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Validate the site config and print its schema.", no_args_is_help=True)
camera_app = typer.Typer(help="Check camera streams.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(camera_app, name="camera")

ConfigOption = Annotated[Path, typer.Option("--config", "-c", help="Site YAML file.")]
LogLevel = Annotated[str, typer.Option("--log-level", help="DEBUG, INFO, WARNING or ERROR.")]
JsonLogs = Annotated[bool, typer.Option("--json-logs", help="One JSON object per log line.")]


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.secho(message, fg=typer.colors.RED, err=True)
    return typer.Exit(code)


def _load(path: Path) -> AnjianConfig:
    try:
        return load_config(path)
    except ConfigError as exc:
        raise _fail(str(exc)) from None


@config_app.command("check")
def config_check(file: Annotated[Path, typer.Argument(help="Site YAML file.")]) -> None:
    """Validate a site YAML; print each error with its field path and exit non-zero if any."""
    config = _load(file)
    cameras = config.cameras()
    typer.echo(
        f"{file}: OK — site {config.site.id!r}, {len(config.site.workshops)} workshop(s), "
        f"{len(cameras)} camera(s), model {config.model.path}, {len(config.webhooks)} webhook(s)"
    )


@config_app.command("schema")
def config_schema() -> None:
    """Print the JSON Schema of the site YAML (for editors and CI checks)."""
    typer.echo(json.dumps(AnjianConfig.model_json_schema(), indent=2))


@camera_app.command("probe")
def camera_probe(
    url: Annotated[str, typer.Argument(help="rtsp://, http(s)://, rtmp:// URL or file path.")],
    timeout_s: Annotated[float, typer.Option(help="Open and stall timeout, seconds.")] = 10.0,
    frames: Annotated[int, typer.Option(help="Frames to read before reporting success.")] = 5,
) -> None:
    """Open a stream, read a few frames, and report its size and rate, or why it failed."""
    camera = CameraConfig(
        id="probe", url=url, analysis_fps=30, open_timeout_s=timeout_s, stall_timeout_s=timeout_s, realtime=False
    )
    stop = threading.Event()
    started = time.monotonic()
    seen = 0
    size = (0, 0)
    try:
        for frame in decode_frames(camera, stop=stop):
            seen += 1
            size = frame.resolution_wh
            if seen >= frames:
                break
    except CameraError as exc:
        raise _fail(str(exc)) from None
    if seen == 0:
        raise _fail(f"{camera.masked_url}: opened, but no frame arrived")
    elapsed = time.monotonic() - started
    typer.echo(f"{camera.masked_url}: OK — {size[0]}x{size[1]}, {seen} frame(s) in {elapsed:.2f}s")


def _serve(config: AnjianConfig, *, with_pipeline: bool) -> None:
    from service.runtime import build_runtime, server_port

    try:
        runtime = build_runtime(config, with_pipeline=with_pipeline)
        port = server_port(config)
    except (ModelError, ValueError) as exc:
        raise _fail(str(exc)) from None
    host = config.server.host
    typer.echo(f"anjian: serving on http://{host}:{port}/  (events: http://{host}:{port}/events)")
    runtime.start()
    try:
        server = uvicorn.Server(uvicorn.Config(runtime.app, host=host, port=port, log_config=None, access_log=False))
        server.run()
    finally:
        runtime.stop()


@app.command()
def serve(config: ConfigOption, log_level: LogLevel = "INFO", json_logs: JsonLogs = False) -> None:
    """Run the alert service alone (API, store, webhooks), without reading cameras."""
    setup_logging(log_level, is_json=json_logs)
    _serve(_load(config), with_pipeline=False)


@app.command()
def run(config: ConfigOption, log_level: LogLevel = "INFO", json_logs: JsonLogs = False) -> None:
    """Run the pipeline (cameras → detector → rules) and the alert service in one process."""
    setup_logging(log_level, is_json=json_logs)
    _serve(_load(config), with_pipeline=True)


@app.command()
def demo(
    directory: Annotated[Path, typer.Option("--dir", help="Where the demo footage and data go.")] = Path(".demo"),
    log_level: LogLevel = "INFO",
) -> None:
    """Run the embedded demo site: generated workshop footage with a fire, the shipped demo model."""
    from datasets.synthetic import write_demo_video

    setup_logging(log_level)
    directory = directory.resolve()
    video = directory / "footage" / "polishing-line.mp4"
    if not video.is_file():
        video.parent.mkdir(parents=True, exist_ok=True)
        typer.echo(f"anjian demo: generating demo footage in {video}")
        write_demo_video(video)
    template = (Path(__file__).parent / "demo" / "site.yaml").read_text(encoding="utf-8")
    site = directory / "site.yaml"
    site.write_text(template.replace("{video}", str(video)).replace("{storage}", str(directory / "data")))
    typer.echo(f"anjian demo: site config {site}; a fire appears on the camera a few seconds in")
    _serve(_load(site), with_pipeline=True)


def main() -> None:
    """Entry point of the ``anjian`` console script."""
    app()
