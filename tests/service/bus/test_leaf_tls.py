"""TLS on the leaf link: events cross a TLS link to the hub; a plant without the CA that signed the hub's certificate is refused."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from anjian.service.benchmarks.ports import free_port
from anjian.service.bus.server_config import LeafTls, hub_server_config, plant_server_config
from anjian.service.cli import app
from tests.factories import make_event
from tests.service.bus.conftest import PLANT, plant_and_hub
from tests.support.nats import NatsServer, assert_nats_server_accepts, nats_server_available
from tests.support.tls import TestCa, openssl_available
from tests.support.waiting import wait_for

pytestmark = pytest.mark.skipif(not openssl_available(), reason="the openssl CLI is not installed")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[TestCa, Path, Path, TestCa]:
    """The hub's CA, the hub's certificate and key (for 127.0.0.1) it signed, and a stranger's CA."""
    root = tmp_path_factory.mktemp("pki")
    ca = TestCa.create(root / "ca")
    cert, key = ca.issue("hub")
    return ca, cert, key, TestCa.create(root / "stranger", "another CA")


def _plant_conf(root: Path, port: int, leaf_port: int, ca: Path) -> str:
    return plant_server_config(
        plant_id=PLANT,
        listen=f"127.0.0.1:{port}",
        hub_leaf_url=f"nats-leaf://127.0.0.1:{leaf_port}",
        store_dir=root / "plant" / "jetstream",
        tls=LeafTls(ca_file=ca),
    )


@pytest.fixture
def tls_servers(
    tmp_path: Path, pki: tuple[TestCa, Path, Path, TestCa]
) -> Iterator[tuple[NatsServer, NatsServer, int]]:
    """A hub whose leaf listener speaks TLS only, and a plant leaf node trusting a stranger's CA (started)."""
    if not nats_server_available():
        pytest.skip("nats-server is not installed (apt install nats-server)")
    _ca, cert, key, stranger = pki
    hub_port, leaf_port, plant_port = free_port(), free_port(), free_port()
    hub_conf = hub_server_config(
        listen=f"127.0.0.1:{hub_port}",
        leaf_listen=f"127.0.0.1:{leaf_port}",
        store_dir=tmp_path / "hub" / "jetstream",
        tls=LeafTls(cert_file=cert, key_file=key),
    )
    hub = NatsServer(tmp_path / "hub", hub_conf, hub_port)
    plant = NatsServer(
        tmp_path / "plant", _plant_conf(tmp_path, plant_port, leaf_port, stranger.cert), plant_port
    )
    hub.start()
    plant.start()
    yield hub, plant, leaf_port
    plant.kill()
    hub.kill()


def test_events_cross_a_tls_leaf_link_only_once_the_plant_trusts_the_hubs_ca(
    tmp_path: Path, tls_servers: tuple[NatsServer, NatsServer, int], pki: tuple[TestCa, Path, Path, TestCa]
) -> None:
    hub, plant, leaf_port = tls_servers
    with plant_and_hub(tmp_path, plant.url, hub.url) as (parts, store):
        for event in [make_event() for _ in range(5)]:
            parts.sink.publish(event)
        assert wait_for(lambda: "certificate signed by unknown authority" in plant.log_path.read_text(), 30)
        assert store.count_events(PLANT) == 0

        plant.stop()
        plant.reconfigure(_plant_conf(tmp_path, plant.port, leaf_port, pki[0].cert))
        plant.start()
        assert wait_for(lambda: store.count_events(PLANT) == 5, 60)


@pytest.mark.skipif(shutil.which("nats-server") is None, reason="nats-server is not installed")
def test_nats_config_writes_tls_blocks_nats_server_accepts(
    tmp_path: Path, pki: tuple[TestCa, Path, Path, TestCa]
) -> None:
    ca, cert, key, _stranger = pki
    plant_cert, plant_key = ca.issue("plant")
    runner = CliRunner()
    tls = ["--tls-cert", str(cert), "--tls-key", str(key), "--tls-ca", str(ca.cert)]
    hub = runner.invoke(app, ["hub", "nats-config", "--store-dir", "js", *tls])
    plant = runner.invoke(
        app,
        [
            "hub", "nats-config", "--store-dir", "js", "--plant", "lab-3",
            "--hub-leaf-url", "nats-leaf://hub.example:7422",
            "--tls-ca", str(ca.cert), "--tls-cert", str(plant_cert), "--tls-key", str(plant_key),
        ],
    )  # fmt: skip

    assert hub.exit_code == 0 and plant.exit_code == 0, hub.output + plant.output
    assert f'tls {{ cert_file: "{cert}", key_file: "{key}", ca_file: "{ca.cert}", verify: true' in hub.output
    assert (
        f'tls {{ cert_file: "{plant_cert}", key_file: "{plant_key}", ca_file: "{ca.cert}", timeout'
        in plant.output
    )
    assert_nats_server_accepts(tmp_path, "hub.conf", hub.output)
    assert_nats_server_accepts(tmp_path, "plant.conf", plant.output)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tls-cert", "{cert}"], "a TLS certificate and its key go together"),
        (["--tls-cert", "{missing}", "--tls-key", "{key}"], "TLS certificate file {missing} does not exist"),
        (["--tls-cert", "{key}", "--tls-key", "{key}"], "TLS certificate file {key} is not PEM"),
        (["--tls-cert", "{cert}", "--tls-key", "{cert}"], "TLS key file {cert} is not PEM"),
        (["--tls-ca", "{ca}"], "the hub's leaf TLS needs its certificate and key"),
        (["--plant", "lab-3", "--hub-leaf-url", "nats-leaf://h:7422", "--tls-cert", "{cert}", "--tls-key", "{key}"],
         "a plant's leaf TLS needs the CA that signed the hub's certificate (--tls-ca)"),
        (["--plant", "lab-3", "--hub-leaf-url", "nats-leaf://h:7422", "--tls-ca", "{folder}"],
         "TLS CA {folder} is not a file"),
    ],
    ids=["cert-without-key", "missing-file", "key-as-cert", "cert-as-key", "hub-without-cert", "plant-without-ca", "folder"],
)  # fmt: skip
def test_bad_tls_files_are_named(
    tmp_path: Path, pki: tuple[TestCa, Path, Path, TestCa], args: list[str], message: str
) -> None:
    ca, cert, key, _stranger = pki
    names = {"cert": cert, "key": key, "ca": ca.cert, "missing": tmp_path / "nope.pem", "folder": tmp_path}
    filled = [arg.format(**names) for arg in args]
    result = CliRunner().invoke(
        app, ["hub", "nats-config", "--store-dir", "js", *filled], env={"COLUMNS": "400"}
    )
    assert result.exit_code == 2
    assert message.format(**names) in " ".join(result.output.split())
    assert "Traceback" not in result.output
