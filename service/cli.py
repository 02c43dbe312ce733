"""The ``anjian`` command line: each command parses its arguments, calls one function of the packages, prints.

The service's parts are built by ``anjian.service.composition`` (the composition root),
a process is assembled by ``anjian.service.runtime`` and served by ``anjian.service.serve``;
harvests come from ``anjian.service.harvest_source``, event evaluation from
``anjian.training.event_eval``. This module may reach every package. Every command imports what it
needs inside its function (PyAV, uvicorn, the runtime, ``datasets``/``training`` work),
so ``anjian --help`` and every command start without loading torch, SciPy, supervision,
ONNX Runtime or OpenVINO until they are used (``anjian bench startup`` measures it).
"""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated
from zoneinfo import ZoneInfo

import typer
from typer.core import TyperGroup

from anjian.cameras.errors import CameraError
from anjian.datasets.command_line import fail, failing_on, output_folder
from anjian.models.errors import ModelError
from anjian.service.errors import ConfigError, DatabaseError
from anjian.service.hub.cli import bench_hub, hub_app
from anjian.service.lazy_cli import LazyCommandGroup, LazyCommands
from anjian.service.logs import setup_logging

if TYPE_CHECKING:
    from typer._click.core import Command

    from anjian.service.config import AnjianConfig
    from anjian.service.store import EventStore

__all__ = ["app"]


def _analyst_commands() -> dict[str, Command]:
    """The analysts' loop (issue 7): ``dataset``, ``models``, ``train``, ``eval``, ``export``, imported
    only when one of them runs (these modules import neither torch nor ultralytics until then)."""
    from anjian.datasets.cli import dataset_app
    from anjian.training.cli import eval_command, export_command, models_app, train_command

    dataset_app.command("harvest")(dataset_harvest)
    analysts = typer.Typer()
    analysts.add_typer(dataset_app, name="dataset")
    analysts.add_typer(models_app, name="models")
    analysts.command("train")(train_command)
    analysts.command("eval")(eval_command)
    analysts.command("export")(export_command)
    group = typer.main.get_command(analysts)
    if not isinstance(group, TyperGroup):  # several commands always make a group
        raise TypeError(f"expected the analysts' commands as a group, got {type(group).__name__}")
    return dict(group.commands)


class _AnjianCommands(LazyCommandGroup):
    lazy = LazyCommands(
        sources={
            "dataset": ("anjian.datasets.cli", "dataset_app"),
            "models": ("anjian.training.cli", "models_app"),
            "train": ("anjian.training.cli", "train_command"),
            "eval": ("anjian.training.cli", "eval_command"),
            "export": ("anjian.training.cli", "export_command"),
        },
        load=lambda: _analyst_commands(),
    )


app = typer.Typer(
    name="anjian",
    help="anjian (安监): safety-supervision alerts from factory RTSP cameras.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    cls=_AnjianCommands,
)
config_app = typer.Typer(help="Validate the site config and print its schema.", no_args_is_help=True)
camera_app = typer.Typer(help="Check camera streams.", no_args_is_help=True)
tokens_app = typer.Typer(help="Create, list and revoke API tokens.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema migrations.", no_args_is_help=True)
bench_app = typer.Typer(help="Measure parts of anjian on this machine.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(camera_app, name="camera")
app.add_typer(tokens_app, name="tokens")
app.add_typer(db_app, name="db")
app.add_typer(bench_app, name="bench")
app.add_typer(hub_app, name="hub")
bench_app.command("hub")(bench_hub)

ConfigOption = Annotated[Path, typer.Option("--config", "-c", help="Site YAML file.")]
LogLevel = Annotated[str, typer.Option("--log-level", help="DEBUG, INFO, WARNING or ERROR.")]
JsonLogs = Annotated[bool, typer.Option("--json-logs", help="One JSON object per log line.")]


def _progress(line: str) -> None:
    """A benchmark's progress line, indented on stderr (stdout keeps only the report)."""
    typer.echo(f"  {line}", err=True)


def _load(path: Path) -> AnjianConfig:
    from anjian.service.config import load_config

    with failing_on(ConfigError):
        return load_config(path)


@config_app.command("check")
def config_check(file: Annotated[Path, typer.Argument(help="Site YAML file.")]) -> None:
    """Validate a site YAML; print each error with its field path and exit non-zero if any.

    Also warns (exit 0) when this install lacks the driver of its storage.database_url (PostgreSQL:
    the postgres extra), which `serve` and `run` need and a pipeline-only node does not.
    """
    config = _load(file)
    cameras = config.cameras()
    typer.echo(
        f"{file}: OK — site {config.site.id!r}, {len(config.site.workshops)} workshop(s), "
        f"{len(cameras)} camera(s), model {config.model.path}, {len(config.webhooks)} webhook(s)"
    )
    if config.storage.database_url is not None:  # valid, yet `serve` and `run` here cannot open it
        from anjian.service.database import check_driver

        try:
            check_driver(config.storage.database_url)
        except DatabaseError as exc:
            typer.secho(
                f"warning: {exc}; a pipeline node sending to --service-url does not need it",
                fg=typer.colors.YELLOW,
                err=True,
            )


@config_app.command("schema")
def config_schema() -> None:
    """Print the JSON Schema of the site YAML (for editors and CI checks)."""
    from anjian.service.config import AnjianConfig

    typer.echo(json.dumps(AnjianConfig.model_json_schema(), indent=2))


@camera_app.command("probe")
def camera_probe(
    url: Annotated[str, typer.Argument(help="rtsp://, http(s)://, rtmp:// URL or file path.")],
    timeout_s: Annotated[float, typer.Option(help="Open and stall timeout, seconds.")] = 10.0,
    frames: Annotated[int, typer.Option(help="Frames to read before reporting success.")] = 5,
) -> None:
    """Open a stream, read a few frames, and report its size and rate, or why it failed."""
    from pydantic import ValidationError

    from anjian.cameras.config import CameraConfig
    from anjian.cameras.decode import decode_frames
    from anjian.cameras.url import mask_credentials

    try:
        camera = CameraConfig(
            id="probe",
            url=url,
            analysis_fps=30,
            open_timeout_s=timeout_s,
            stall_timeout_s=timeout_s,
            realtime=False,
        )
    except ValidationError as exc:  # its text would quote the URL: name the fields only
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg']}" if e["loc"] else e["msg"] for e in exc.errors()
        )
        raise fail(mask_credentials(f"cannot probe: {problems}", url=url)) from None
    stop = threading.Event()
    started = time.monotonic()
    seen = 0
    size = (0, 0)
    with failing_on(CameraError):
        for frame in decode_frames(camera, stop=stop):
            seen += 1
            size = frame.resolution_wh
            if seen >= frames:
                break
    if seen == 0:
        raise fail(f"{camera.masked_url}: opened, but no frame arrived")
    elapsed = time.monotonic() - started
    typer.echo(f"{camera.masked_url}: OK — {size[0]}x{size[1]}, {seen} frame(s) in {elapsed:.2f}s")


def _serve(
    config: AnjianConfig,
    *,
    with_pipeline: bool,
    config_path: Path | None = None,
    banner: str = "",
    node: str | None = None,
) -> None:
    """Serve the site (with its camera pipeline loading in the background) until Ctrl-C or SIGTERM."""
    from anjian.service.runtime import build_runtime, server_port
    from anjian.service.serve import serve_runtime

    with failing_on(ModelError, ValueError, DatabaseError):
        port = server_port(config)
        runtime = build_runtime(
            config, with_pipeline=with_pipeline, config_path=config_path, is_pipeline_deferred=True, node=node
        )
    host = config.server.host
    typer.echo(f"anjian: serving on http://{host}:{port}/  (dashboard: http://{host}:{port}/{banner})")
    error = serve_runtime(runtime, host=host, port=port)
    if error is not None:
        known = isinstance(error, ModelError | ValueError | CameraError)
        raise fail(
            str(error) if known else f"the camera pipeline cannot start: {type(error).__name__}: {error}"
        )


def _run_pipeline_only(config: AnjianConfig, service_url: str, token: str, node: str | None) -> None:
    """Run the camera pipeline alone, sending events to a remote service, until Ctrl-C or SIGTERM."""
    from anjian.service.runtime import build_pipeline_runtime
    from anjian.service.serve import run_until_signalled

    with failing_on(ModelError, ValueError):
        runtime = build_pipeline_runtime(config, service_url=service_url, token=token, node=node)
    spool = config.storage.dir / ("spool" if node is None else f"nodes/{node}/spool")
    typer.echo(f"anjian: pipeline sending events to {service_url} (spool: {spool})")
    run_until_signalled(runtime)


@app.command()
def serve(config: ConfigOption, log_level: LogLevel = "INFO", json_logs: JsonLogs = False) -> None:
    """Run the alert service alone (API, dashboard, store, webhooks), without reading cameras."""
    setup_logging(log_level, is_json=json_logs)
    _serve(_load(config), with_pipeline=False, config_path=config)


@app.command()
def run(
    config: ConfigOption,
    log_level: LogLevel = "INFO",
    json_logs: JsonLogs = False,
    service_url: Annotated[
        str | None,
        typer.Option(help="Send events to the alert service at this URL instead of running it in-process."),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(envvar="ANJIAN_PIPELINE_TOKEN", help="pipeline-role token for --service-url."),
    ] = None,
    node: Annotated[
        str | None,
        typer.Option(
            envvar="ANJIAN_NODE",
            help="Run as this node of the site YAML's nodes: only the cameras it leases on the plant's bus.",
        ),
    ] = None,
) -> None:
    """Run the pipeline (cameras → detector → rules) and the alert service in one process.

    With --service-url, run only the pipeline and POST its events to that service
    (spooled on disk while it is unreachable). With --node, run one of the plant's
    pipeline nodes (the site YAML's nodes:): the cameras it leases, taking over those of
    a node that died.
    """
    setup_logging(log_level, is_json=json_logs)
    loaded = _load(config)
    if node is None and loaded.nodes is not None:
        names = [member.name for member in loaded.nodes.members]
        raise fail(f"{config}: the site runs several pipeline nodes {names}; choose one with --node NAME")
    if service_url is None:
        _serve(loaded, with_pipeline=True, config_path=config, node=node)
        return
    if not token:
        raise fail("--service-url needs a pipeline token: --token or ANJIAN_PIPELINE_TOKEN")
    _run_pipeline_only(loaded, service_url, token, node)


@app.command()
def nodes(
    config: ConfigOption,
    timeout_s: Annotated[float, typer.Option(help="How long to wait for the plant's nats-server.")] = 5.0,
) -> None:
    """Show which of the plant's pipeline nodes are alive and which node runs each camera (the site YAML's nodes:)."""
    from anjian.service.bus.errors import BusUnavailableError
    from anjian.service.node_status import format_node_status, read_node_status

    loaded = _load(config)
    with failing_on(ValueError, BusUnavailableError):
        status = read_node_status(loaded, timeout_s=timeout_s)
    typer.echo(format_node_status(status))


def _open_store(config: AnjianConfig) -> EventStore:
    """The site's event store, or a clean CLI error; commands migrate it to the head whatever
    ``storage.is_auto_migrate`` says (as ``anjian db upgrade`` does)."""
    from anjian.service.store import EventStore

    with failing_on(DatabaseError):
        return EventStore.from_config(config.storage.model_copy(update={"is_auto_migrate": True}))


@app.command()
def demo(
    directory: Annotated[Path, typer.Option("--dir", help="Where the demo footage and data go.")] = Path(
        ".demo"
    ),
    log_level: LogLevel = "INFO",
) -> None:
    """Run the embedded demo plant: four generated cameras, all six behaviours within minutes, the demo model."""
    from anjian.service.demo_site import DEMO_SCRIPT, prepare_demo_site

    setup_logging(log_level)
    typer.echo(f"anjian demo: preparing the demo plant in {directory} (the footage is generated once)")
    site = prepare_demo_site(output_folder(directory))
    config = _load(site)
    store = _open_store(config)
    try:
        _info, secret = store.tokens.create("demo operator", "operator")
    finally:
        store.close()
    typer.echo(f"anjian demo: site config {site}; what happens (seconds after start, looping every 200 s):")
    for line in DEMO_SCRIPT:
        typer.echo(f"  {line}")
    typer.echo(f"anjian demo: operator token (reads and works alerts): {secret}")
    from anjian.service.runtime import server_port

    with failing_on(ValueError):
        port = server_port(config)
    host = config.server.host
    typer.echo(f"anjian demo: e.g. curl -H 'Authorization: Bearer {secret}' http://{host}:{port}/events")
    _serve(config, with_pipeline=True, config_path=site, banner=f"#token={secret}")


@tokens_app.command("create")
def tokens_create(
    config: ConfigOption,
    role: Annotated[str, typer.Option(help="viewer, operator, admin or pipeline.")],
    name: Annotated[str | None, typer.Option(help="Who holds it (shown in the audit trail).")] = None,
) -> None:
    """Create an API token and print it (only its hash is stored: it cannot be shown again)."""
    from anjian.service.tokens import Role, check_token_name

    try:
        role_value = Role(role)
    except ValueError:
        raise fail(f"unknown role {role!r}; expected one of {[r.value for r in Role]}") from None
    with failing_on(ValueError):
        token_name = check_token_name(name or f"{role_value.value} token")
    store = _open_store(_load(config))
    try:
        info, secret = store.tokens.create(token_name, role_value)
    finally:
        store.close()
    typer.secho(f"created {info.role.value} token {info.id} ({info.name!r}); keep it safe:", err=True)
    typer.echo(secret)


@tokens_app.command("list")
def tokens_list(config: ConfigOption) -> None:
    """List API tokens (never their secrets)."""
    store = _open_store(_load(config))
    try:
        tokens = store.tokens.list()
    finally:
        store.close()
    from anjian.service.tokens import printable

    for token in tokens:
        state = "revoked" if token.revoked_at is not None else "active"
        typer.echo(f"{token.id}\t{token.role.value}\t{state}\t{printable(token.name)}")


@tokens_app.command("revoke")
def tokens_revoke(
    config: ConfigOption, token_id: Annotated[int, typer.Argument(help="Token id.", min=1, max=2**31 - 1)]
) -> None:
    """Revoke an API token at once."""
    store = _open_store(_load(config))
    try:
        revoked = store.tokens.revoke(token_id)
    finally:
        store.close()
    if revoked is None:
        raise fail(f"no token {token_id}")
    typer.echo(f"revoked token {token_id} ({revoked.name!r})")


@db_app.command("upgrade")
def db_upgrade(config: ConfigOption) -> None:
    """Apply pending schema migrations to the site's database (also done at start by default)."""
    from anjian.service.database import head_revision, masked_url

    store = _open_store(_load(config))
    url = masked_url(str(store.engine.url))
    store.close()
    typer.echo(f"{url}: at schema {head_revision()}")


@db_app.command("downgrade")
def db_downgrade(
    revision: Annotated[
        str,
        typer.Argument(
            help="The older schema, e.g. 0005 (`anjian db upgrade` of the older anjian prints its own)."
        ),
    ],
    config: ConfigOption,
    yes: Annotated[
        bool, typer.Option("--yes", help="Drop what the newer schema added (columns, indexes).")
    ] = False,
) -> None:
    """Take the site's database back to an older schema, for the older anjian it goes back to after an upgrade."""
    from anjian.service.database import downgrade_database, masked_url

    if not yes:
        raise fail(f"going back to schema {revision} drops what the newer migrations added: pass --yes")
    store = _open_store(_load(config))
    try:
        previous = downgrade_database(store.engine, revision)
    except DatabaseError as exc:
        raise fail(str(exc)) from None
    finally:
        store.close()
    typer.echo(f"{masked_url(str(store.engine.url))}: schema {previous} -> {revision}")


@app.command()
def report(
    config: ConfigOption,
    start: Annotated[
        str | None,
        typer.Option(
            "--from",
            help="Start, ISO 8601 (site time zone unless it has an offset); default: 12 h before --to.",
        ),
    ] = None,
    end: Annotated[str | None, typer.Option("--to", help="End, ISO 8601; default: now.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="html or pdf (pdf needs Chromium).")] = "html",
    out: Annotated[
        Path | None, typer.Option(help="Report file; default report-<from>.<format> here.")
    ] = None,
) -> None:
    """A shift or daily report: alerts by behaviour, camera and hour, response times, false alarms, uptime, open items."""
    from anjian.service.report import ReportOutputError, ReportPdfError, parse_report_time, write_report

    if fmt not in ("html", "pdf"):
        raise fail(f"--format must be html or pdf, got {fmt!r}")
    site = _load(config)
    with failing_on(ValueError, DatabaseError, ReportPdfError, ReportOutputError):
        until = parse_report_time(end, site.site.timezone) if end else time.time()
        since = parse_report_time(start, site.site.timezone) if start else until - 12 * 3600
        local_start = datetime.fromtimestamp(
            since, ZoneInfo(site.site.timezone)
        )  # the site's, not this host's
        target = out or Path(f"report-{local_start:%Y%m%d-%H%M}.{fmt}")
        written = write_report(site, since, until, target, fmt)  # type: ignore[arg-type]
    typer.echo(f"wrote {written}")


@bench_app.command("service")
def bench_service(
    events: Annotated[int, typer.Option(help="Events in the webhook burst.")] = 1000,
    workers: Annotated[int, typer.Option(help="Webhook worker threads.")] = 4,
    claim_batch: Annotated[
        int, typer.Option(help="Deliveries a worker claims at once (a 1-at-a-time burst runs too).")
    ] = 64,
    database_url: Annotated[
        str | None, typer.Option(help="Database of the burst (default: a SQLite file in a temp folder).")
    ] = None,
    ingest_rate: Annotated[
        list[float], typer.Option(help="Events/s offered to /ingest/events (repeat for several rates).")
    ] = [200.0, 500.0],  # noqa: B006
    ingest_seconds: Annotated[float, typer.Option(help="How long each ingest rate is offered.")] = 10.0,
    crash_rounds: Annotated[
        int,
        typer.Option(
            help="Instead: kill -9 the service this many times under a 20 events/s ingest, count duplicates."
        ),
    ] = 0,
    soak_s: Annotated[
        float,
        typer.Option(
            "--soak",
            help="Instead: load a real service this many seconds (30 events/s) and print its RSS, then idle.",
        ),
    ] = 0.0,
) -> None:
    """Measure webhook delivery latency (p50/p95) under a burst and ingest at offered rates, against baselines."""
    setup_logging("WARNING")
    if soak_s:
        from anjian.service.benchmarks.soak import run_soak_bench

        typer.echo(run_soak_bench(seconds=soak_s, warmup_s=min(60.0, soak_s / 4)).render())
        return
    if crash_rounds:
        from anjian.service.benchmarks.crash import run_crash_bench

        typer.echo(run_crash_bench(rounds=crash_rounds).render())
        return
    from anjian.service.benchmarks.service import run_service_bench

    report = run_service_bench(
        events=events,
        workers=workers,
        claim_batch=claim_batch,
        database_url=database_url,
        ingest_rates_per_s=tuple(ingest_rate),
        ingest_seconds=ingest_seconds,
    )
    typer.echo(report.render())


@bench_app.command("decode")
def bench_decode(
    directory: Annotated[Path, typer.Option("--dir", help="Where the test clips go (reused).")] = Path(
        ".bench/decode"
    ),
    resolutions: Annotated[list[str], typer.Option("--resolution", help="1080p, 720p or 360p.")] = [  # noqa: B006
        "1080p",
        "720p",
    ],
    seconds: Annotated[float, typer.Option(help="Clip length, seconds.")] = 10.0,
    fps: Annotated[int, typer.Option(help="Clip (camera) frame rate.")] = 25,
    analysis_fps: Annotated[float, typer.Option(help="Rate anjian samples to.")] = 5.0,
    repeats: Annotated[int, typer.Option(help="Runs per method; the lowest CPU time counts.")] = 1,
) -> None:
    """Decode + sample cost per camera and per core, next to ffmpeg -f null and cv2.VideoCapture."""
    from anjian.service.benchmarks.decode import format_decode_table, run_decode_bench

    with failing_on(ValueError, FileNotFoundError):
        rows = run_decode_bench(
            output_folder(directory),
            resolutions=resolutions,
            seconds=seconds,
            fps=fps,
            analysis_fps=analysis_fps,
            repeats=repeats,
            progress=_progress,
        )
    typer.echo(format_decode_table(rows, analysis_fps=analysis_fps))


@bench_app.command("reconnect")
def bench_reconnect(
    rounds: Annotated[int, typer.Option(help="Server outages to measure.")] = 3,
    down_s: Annotated[float, typer.Option(help="Seconds the server stays down each time.")] = 20.0,
    cameras: Annotated[
        int, typer.Option(help="Cameras for the one-dead-among-N comparison (0: skip it).")
    ] = 8,
) -> None:
    """Seconds from an RTSP server answering again to its camera online (default settings), from a hung
    server to 'stalled', and whether one dead camera slows the others; needs GStreamer's RTSP server."""
    from anjian.service.benchmarks.reconnect import (
        format_reconnect_report,
        run_dead_camera_bench,
        run_reconnect_bench,
        run_stall_bench,
    )

    setup_logging("ERROR")
    with failing_on(RuntimeError):
        rounds_measured = run_reconnect_bench(rounds=rounds, down_s=down_s, progress=_progress)
        stall = run_stall_bench()
        dead = run_dead_camera_bench(cameras=cameras, progress=_progress) if cameras >= 2 else None
    typer.echo(format_reconnect_report(rounds_measured, dead, stall))


@bench_app.command("nodes")
def bench_nodes(
    rounds: Annotated[int, typer.Option(help="Nodes killed, one per round.")] = 3,
    cameras: Annotated[int, typer.Option(help="Cameras, half preferred by each of the two nodes.")] = 8,
    lease_ttl_s: Annotated[float, typer.Option(help="nodes.lease_ttl_s to measure.")] = 15.0,
    renew_interval_s: Annotated[float, typer.Option(help="nodes.renew_interval_s to measure.")] = 3.0,
) -> None:
    """Seconds from kill -9 of a pipeline node to a live node holding its cameras, over a real nats-server."""
    from anjian.service.benchmarks.nodes import format_takeover_report, run_takeover_bench

    setup_logging("ERROR")
    with failing_on(RuntimeError, ValueError):
        figures = run_takeover_bench(
            rounds=rounds,
            cameras=cameras,
            lease_ttl_s=lease_ttl_s,
            renew_interval_s=renew_interval_s,
            progress=_progress,
        )
    typer.echo(format_takeover_report(figures, lease_ttl_s=lease_ttl_s, renew_interval_s=renew_interval_s))


@bench_app.command("startup")
def bench_startup(
    runs: Annotated[int, typer.Option(help="Fresh processes per figure.")] = 3,
) -> None:
    """Seconds from spawn to `anjian --help` done, to `anjian serve`/`run` answering /readyz, to a camera online."""
    from anjian.service.benchmarks.startup import format_startup_report, run_startup_bench

    with failing_on(RuntimeError):
        figures = run_startup_bench(runs=runs, progress=_progress)
    typer.echo(format_startup_report(figures))


@bench_app.command("sensors")
def bench_sensors(
    sensors: Annotated[int, typer.Option(help="Sensors, each sending one reading a second.")] = 1000,
    seconds: Annotated[float, typer.Option(help="Length of the measured window.")] = 30.0,
    crossings: Annotated[int, typer.Option(help="Sensors crossing their red limit each second.")] = 5,
) -> None:
    """Sensors at 1 Hz over a real Mosquitto broker into the sensor rules and the store: CPU, RSS, reading-to-alert latency."""
    from anjian.service.benchmarks.sensors import run_sensor_bench

    with failing_on(RuntimeError):
        report = run_sensor_bench(sensors=sensors, seconds=seconds, crossings_per_s=crossings)
    typer.echo(report.render())


@bench_app.command("pipeline")
def bench_pipeline(
    cameras: Annotated[int, typer.Option(help="Cameras, each reading its own copy of the video.")] = 4,
    model: Annotated[str, typer.Option(help=".pt, .onnx or builtin:NAME (the naive loop runs it too).")] = (
        "builtin:anjian-n"
    ),
    video: Annotated[
        Path | None, typer.Option(help="Footage (default: a synthetic 30 s 640x360 clip).")
    ] = None,
    analysis_fps: Annotated[float, typer.Option(help="Analysed frames per second and camera.")] = 2.0,
    seconds: Annotated[float, typer.Option(help="Measured seconds per phase.")] = 20.0,
    phases: Annotated[
        list[str] | None,
        typer.Option(
            "--phase",
            help="naive, 'ultralytics openvino', anjian, 'anjian fp32', 'anjian onnxruntime', "
            "'anjian + motion gate', 'anjian real time', 'model limit', 'model limit fp32' "
            "(default: all but onnxruntime).",
        ),
    ] = None,
    cpu: Annotated[
        str,
        typer.Option(
            help="Run every phase as this CPU: native, avx2 (no AVX-512, AMX or AVX-VNNI, as most edge boxes) "
            "or avx2_vnni; CPUID is masked in the phases' processes (Linux, a CPU with CPUID faulting, a C compiler).",
        ),
    ] = "native",
) -> None:
    """Analysed frames/s, latency, CPU, RSS per camera: anjian vs naive, ultralytics+OpenVINO, the model's limit."""
    from anjian.service.benchmarks.pipeline import DEFAULT_PHASES, run_pipeline_bench

    setup_logging("WARNING")
    with failing_on(ValueError, ModelError):
        report = run_pipeline_bench(
            cameras=cameras,
            model=model,
            video=video,
            analysis_fps=analysis_fps,
            seconds=seconds,
            phases=tuple(phases or DEFAULT_PHASES),
            cpu=cpu,
            progress=_progress,
        )
    typer.echo(report.render())
    if report.failures:
        raise fail(
            f"{len(report.failures)} of {len(report.phases) + len(report.failures)} phases failed (above)",
            code=1,
        )


@app.command()
def replay(
    video: Annotated[Path, typer.Argument(help="Recorded video file.")],
    config: ConfigOption,
    camera: Annotated[
        str, typer.Option("--camera", help="Id of the site camera whose zones and rules apply.")
    ],
    events: Annotated[
        Path, typer.Option("--events", help="Where the JSON lines go (one per event revision).")
    ],
    evidence_dir: Annotated[
        Path | None, typer.Option("--evidence-dir", help="Also write snapshots (.jpg) and clips (.mp4) here.")
    ] = None,
    start_at: Annotated[
        str | None,
        typer.Option(
            help="Wall-clock time of the first frame, ISO 8601 (default: the file's creation time)."
        ),
    ] = None,
    until_s: Annotated[float | None, typer.Option(help="Stop after this many seconds of video.")] = None,
    model: Annotated[
        str | None, typer.Option(help="Model to run instead of the site's (.onnx or builtin:NAME).")
    ] = None,
    log_level: LogLevel = "WARNING",
) -> None:
    """Run the full pipeline over a video file as fast as possible and write one JSON line per event."""
    import datetime as dt

    from anjian.models.loader import load_detector
    from anjian.pipeline.replay import replay_video

    setup_logging(log_level)
    loaded = _load(config)
    found = [(w, c) for w, c in loaded.cameras() if c.id == camera]
    if not found:
        raise fail(f"no camera {camera!r} in {config}; cameras: {[c.id for _, c in loaded.cameras()]}")
    workshop, camera_config = found[0]
    try:
        first = None if start_at is None else dt.datetime.fromisoformat(start_at)
    except ValueError:
        raise fail(
            f"--start-at: expected an ISO 8601 time such as 2024-03-04T08:00:00+08:00, got {start_at!r}"
        ) from None
    with failing_on(ModelError, CameraError, ValueError):
        detector = load_detector(model or loaded.model.path, loaded.model)
        try:
            out_file = events.open("w", encoding="utf-8")
        except OSError as exc:
            raise fail(f"--events {events}: cannot write it: {exc.strerror or exc}") from None
        with out_file as out:
            report = replay_video(
                video,
                camera_config,
                detector,
                out,
                site_id=loaded.site.id,
                workshop_id=workshop.id,
                time_zone=loaded.site.timezone,
                start_at=None if first is None else first.timestamp(),
                evidence_dir=evidence_dir,
                until_s=until_s,
            )
    gated = (
        f" ({report.frames_inferred} inferred, motion gate)" if report.frames_inferred < report.frames else ""
    )
    typer.echo(
        f"{video}: {report.frames} frames{gated}, {report.video_s:.1f} s of video in {report.wall_s:.1f} s "
        f"({report.speed:.1f}x); {report.incidents} incident(s), {report.events} event revision(s) -> {events}"
    )
    for damage in report.damage(video):
        typer.secho(f"warning: {damage}", fg=typer.colors.YELLOW, err=True)


def dataset_harvest(
    config: ConfigOption,
    out: Annotated[Path, typer.Option(help="Folder for hard_negatives/, to_label/ and manifest.jsonl.")],
    camera: Annotated[str | None, typer.Option(help="Only this camera.")] = None,
    since_days: Annotated[float | None, typer.Option(help="Only alerts started in the last N days.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many alerts.")] = 10000,
) -> None:
    """Judged alerts -> images: false alarms as hard negatives, confirmed (resolved) ones to label."""
    from anjian.datasets.cli import rich_progress
    from anjian.service.harvest_source import harvest_site

    loaded = _load(config)
    try:
        report = harvest_site(
            loaded, out, camera_id=camera, since_days=since_days, limit=limit, progress=rich_progress
        )
    except (DatabaseError, ValueError) as exc:
        raise fail(f"{config}: {exc}") from None
    typer.echo(
        f"{report.hard_negatives} hard negative(s), {report.to_label} image(s) to label -> {out}"
        + (f"; {len(report.skipped)} alert(s) without a snapshot file skipped" if report.skipped else "")
    )


@app.command("eval-events")
def eval_events(
    spec: Annotated[Path, typer.Argument(help="YAML listing clips and the incidents each holds.")],
    config: ConfigOption,
    model: Annotated[str | None, typer.Option(help="Model to run instead of the site's.")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the report as JSON here.")] = None,
    record: Annotated[
        str | None,
        typer.Option(
            "--record",
            metavar="NAME/VERSION",
            help="Keep the figures with that registry version (meta.json event_evals, a card section); the model "
            "run must be that version.",
        ),
    ] = None,
    registry: Annotated[
        Path | None,
        typer.Option(help="Site registry --record writes to (default: the site's model.registry)."),
    ] = None,
    log_level: LogLevel = "WARNING",
) -> None:
    """Replay clips through the full pipeline; event precision, recall and time to alert per behaviour.

    Says when a clip is too short for a rule's min_duration_s (or its camera does not run the rule),
    and its --json holds every clip's alerts, first alert and time to alert per incident.
    """
    from anjian.models.loader import load_detector
    from anjian.training.eval_record import check_recorded_model, parse_version_ref, record_event_evaluation
    from anjian.training.event_eval import (
        ClipScore,
        EvalCamera,
        evaluate_events,
        load_event_spec,
        render_table,
        summarize,
    )

    setup_logging(log_level)
    loaded = _load(config)

    def report_clip(score: ClipScore) -> None:
        gated = (
            f" ({score.frames_inferred} of {score.frames} frames inferred, motion gate)"
            if score.frames_inferred < score.frames
            else ""
        )
        typer.echo(
            f"{score.video}: {len(score.alerts)} alert(s) in {score.clip_s:.0f} s of video{gated}", err=True
        )
        for hint in score.hints:
            typer.secho(f"  hint: {hint}", fg=typer.colors.YELLOW, err=True)

    model_spec = model or loaded.model.path
    root = registry or loaded.model.registry
    with failing_on(ValueError, ModelError):
        target = parse_version_ref(record) if record else None
        if target is not None:
            check_recorded_model(model_spec, *target, root=root)
        plan = load_event_spec(spec)
        detector = load_detector(model_spec, loaded.model)
    try:
        scores = evaluate_events(
            plan,
            {camera.id: EvalCamera(workshop.id, camera) for workshop, camera in loaded.cameras()},
            detector,
            site_id=loaded.site.id,
            time_zone=loaded.site.timezone,
            on_clip=report_clip,
        )
    except ValueError as exc:
        raise fail(f"{spec}: {exc}") from None
    rows = summarize(scores)
    typer.echo(render_table(rows))
    payload = {"behaviours": [r.to_dict() for r in rows], "clips": [c.to_dict() for c in scores]}
    if json_out:
        json_out.write_text(json.dumps(payload, indent=2) + "\n")
    if target is not None:
        folder = record_event_evaluation(
            *target, payload, spec=str(spec), model_spec=model_spec, description=plan.description, root=root
        )
        typer.echo(f"recorded with {target[0]}/{target[1]}: {folder / 'meta.json'} (event_evals) and card.md")


def main() -> None:
    """Entry point of the ``anjian`` console script."""
    app()
