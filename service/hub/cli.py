"""``anjian hub …``: run the supervising hub, manage its tokens, write the nats-server configs.

Heavy imports (the store, the bus, uvicorn) load only when a command runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from anjian.cameras.url import mask_url
from anjian.datasets.command_line import fail, failing_on
from anjian.service.errors import ConfigError, DatabaseError
from anjian.service.logs import setup_logging

if TYPE_CHECKING:
    from anjian.service.hub.config import HubConfig
    from anjian.service.hub.store import HubStore
    from anjian.service.hub.tokens import HubTokens

__all__ = ["bench_hub", "hub_app"]

hub_app = typer.Typer(
    help="The supervising hub: every plant's incidents, camera health and response times on one view.",
    no_args_is_help=True,
)
hub_tokens_app = typer.Typer(
    help="Create, list and revoke hub tokens (each limited to plants).", no_args_is_help=True
)
hub_app.add_typer(hub_tokens_app, name="tokens")

HubConfigOption = Annotated[Path, typer.Option("--config", "-c", help="Hub YAML file.")]


def _load(path: Path) -> HubConfig:
    from anjian.service.hub.config import load_hub_config

    with failing_on(ConfigError):
        return load_hub_config(path)


def _open(config: HubConfig) -> HubStore:
    from anjian.service.hub.store import HubStore

    with failing_on(DatabaseError):
        return HubStore.from_config(config.storage)


@contextmanager
def _tokens(config: HubConfig) -> Iterator[HubTokens]:
    """The hub's tokens, its store closed afterwards; a refused name, role, scope or id ends the command (exit 2)."""
    store = _open(config)
    try:
        yield store.tokens
    except KeyError as exc:
        raise fail(str(exc.args[0])) from None
    except ValueError as exc:
        raise fail(str(exc)) from None
    finally:
        store.close()


@hub_app.command("serve")
def hub_serve(
    config: HubConfigOption,
    log_level: Annotated[str, typer.Option("--log-level", help="DEBUG, INFO, WARNING or ERROR.")] = "INFO",
) -> None:
    """Run the hub: consume every plant's events from NATS into its database; serve its API and dashboard."""
    from anjian.service.hub.runtime import serve_hub

    setup_logging(log_level)
    hub = _load(config)
    host, port = hub.server.host, hub.server.port
    typer.echo(
        f"anjian hub: {len(hub.plants)} plant(s), NATS {mask_url(hub.bus.url)}, serving on http://{host}:{port}/"
    )
    with failing_on(DatabaseError):
        serve_hub(hub, host=host, port=port)


@hub_tokens_app.command("create")
def hub_tokens_create(
    config: HubConfigOption,
    name: Annotated[str, typer.Option("--name", help="Who holds it (shown in the audit trail).")],
    scope: Annotated[str, typer.Option("--scope", help="all, group:<name> or plant:<id>.")],
    role: Annotated[str, typer.Option("--role", help="viewer, or supervisor (may add remarks).")] = "viewer",
) -> None:
    """Create a hub token and print it (only its hash is stored)."""
    hub = _load(config)
    kind, _, value = scope.partition(":")
    if kind == "plant" and hub.plant(value) is None:
        raise fail(f"no plant {value!r} in {config}; plants: {[p.id for p in hub.plants]}")
    if kind == "group" and value not in hub.groups:
        raise fail(f"no group {value!r} in {config}; groups: {hub.groups}")
    with _tokens(hub) as tokens:
        info, secret = tokens.create(name, role, scope)
    typer.secho(
        f"created {info.role.value} token {info.id} ({info.name!r}, {info.scope}); keep it safe:", err=True
    )
    typer.echo(secret)


@hub_tokens_app.command("list")
def hub_tokens_list(config: HubConfigOption) -> None:
    """List the hub's tokens (never their secrets)."""
    from anjian.service.tokens import printable

    with _tokens(_load(config)) as tokens:
        listed = tokens.list()
    for token in listed:
        revoked = " revoked" if token.revoked_at is not None else ""
        typer.echo(f"{token.id}\t{token.role.value}\t{token.scope}\t{printable(token.name)}{revoked}")


@hub_tokens_app.command("revoke")
def hub_tokens_revoke(
    config: HubConfigOption, token_id: Annotated[int, typer.Argument(help="Token id.")]
) -> None:
    """Revoke a hub token."""
    with _tokens(_load(config)) as tokens:
        info = tokens.revoke(token_id)
    typer.echo(f"revoked token {info.id} ({info.name!r})")


@hub_app.command("nats-config")
def hub_nats_config(
    store_dir: Annotated[Path, typer.Option("--store-dir", help="Where this nats-server keeps JetStream.")],
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="The hub's: hub YAML whose plants' leaf passwords to require."),
    ] = None,
    plant: Annotated[
        str | None,
        typer.Option("--plant", help="Write a plant's leaf node config (its bus id); default the hub's."),
    ] = None,
    hub_leaf_url: Annotated[
        str, typer.Option("--hub-leaf-url", help="A plant's: the hub's leaf address, nats-leaf://host:7422.")
    ] = "",
    leaf_password_file: Annotated[
        Path | None, typer.Option("--leaf-password-file", help="A plant's: file holding its leaf password.")
    ] = None,
    listen: Annotated[str, typer.Option("--listen", help="host:port for clients.")] = "127.0.0.1:4222",
    leaf_listen: Annotated[
        str, typer.Option("--leaf-listen", help="The hub's: host:port the plants connect to.")
    ] = "0.0.0.0:7422",
    tls_cert: Annotated[
        Path | None,
        typer.Option(
            "--tls-cert", help="TLS on the leaf link: this server's certificate (PEM; the hub's: needed)."
        ),
    ] = None,
    tls_key: Annotated[
        Path | None, typer.Option("--tls-key", help="TLS: the certificate's private key (PEM).")
    ] = None,
    tls_ca: Annotated[
        Path | None,
        typer.Option(
            "--tls-ca",
            help="TLS: a plant's: the CA that signed the hub's certificate (needed); the hub's: the CA of the "
            "plants' certificates (then every plant must present one: mutual TLS).",
        ),
    ] = None,
) -> None:
    """Print a nats-server config: the hub's (JetStream domain hub) or a plant's leaf node (--plant).

    With --tls-cert/--tls-key/--tls-ca the leaf link between them is TLS (see the README).
    """
    from anjian.service.bus.server_config import LeafTls, hub_server_config, plant_server_config

    with failing_on(ValueError):
        has_tls = any(path is not None for path in (tls_cert, tls_key, tls_ca))
        tls = LeafTls(cert_file=tls_cert, key_file=tls_key, ca_file=tls_ca) if has_tls else None
        if plant is None:
            users = _load(config).leaf_users() if config is not None else {}
            text = hub_server_config(
                listen=listen,
                leaf_listen=leaf_listen,
                store_dir=store_dir.resolve(),
                leaf_users=users,
                tls=tls,
            )
        else:
            if not hub_leaf_url:
                raise ValueError("a plant's config needs --hub-leaf-url nats-leaf://<hub>:7422")
            password = None
            if leaf_password_file is not None:
                try:
                    password = leaf_password_file.read_text(encoding="utf-8").strip()
                except OSError as exc:
                    raise ValueError(f"cannot read {leaf_password_file}: {exc.strerror or exc}") from None
            text = plant_server_config(
                plant_id=plant,
                listen=listen,
                hub_leaf_url=hub_leaf_url,
                store_dir=store_dir.resolve(),
                leaf_password=password,
                tls=tls,
            )
    typer.echo(text, nl=False)


def bench_hub(
    plants: Annotated[
        int, typer.Option(help="Plant leaf nodes (each with its plant service) on this machine.")
    ] = 2,
    events: Annotated[int, typer.Option(help="Events in the burst.")] = 2000,
    rate: Annotated[float, typer.Option(help="Events/s of the trickle the latency is measured on.")] = 50.0,
    seconds: Annotated[float, typer.Option(help="How long the trickle runs.")] = 10.0,
    database_url: Annotated[
        str | None, typer.Option(help="The hub's database (default: a SQLite file in a temp folder).")
    ] = None,
    target_plants: Annotated[int, typer.Option(help="Plants of the region the calculation is for.")] = 100,
    cameras_per_plant: Annotated[int, typer.Option(help="Cameras per plant in the calculation.")] = 60,
    incidents_per_camera_hour: Annotated[
        float, typer.Option(help="Incidents per camera per hour at a busy time (calculation).")
    ] = 2.0,
    messages_per_incident: Annotated[
        float, typer.Option(help="Bus messages per incident: revisions and lifecycle changes (calculation).")
    ] = 10.0,
) -> None:
    """Measure events/s through the bus and plant-to-hub latency p50/p95; what one hub carries for a region."""
    from anjian.service.benchmarks.hub import HubLoadModel, run_hub_bench
    from anjian.service.benchmarks.nats_servers import nats_server_available

    setup_logging("WARNING")
    if not nats_server_available():
        raise fail("nats-server is not installed (apt install nats-server)")
    model = HubLoadModel(
        plants=target_plants,
        cameras_per_plant=cameras_per_plant,
        incidents_per_camera_hour=incidents_per_camera_hour,
        messages_per_incident=messages_per_incident,
    )
    with failing_on(ValueError, TimeoutError, RuntimeError):
        report = run_hub_bench(
            plants=plants,
            events=events,
            rate_per_s=rate,
            seconds=seconds,
            database_url=database_url,
            model=model,
        )
    typer.echo(report.render())
