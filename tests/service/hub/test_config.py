"""The hub YAML, a plant's ``bus:`` section and the nats-server configs: bad input is named, never a traceback."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from anjian.service.cli import app
from anjian.service.config import AnjianConfig
from anjian.service.errors import ConfigError
from anjian.service.hub.config import load_hub_config
from tests.service.conftest import make_config
from tests.support.nats import assert_nats_server_accepts


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "hub.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_broken_line_of_the_hub_yaml_is_echoed_with_its_leaf_password_masked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"hub\.yaml:2:\d+: not valid YAML") as info:
        load_hub_config(_write(tmp_path, "plants: [\n  leaf_password: s3cret-leaf-pass:x: y\n"))
    assert "leaf_password: ***" in str(info.value)
    assert "s3cret" not in str(info.value)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"plants:\n  - id: a\xff\n", r"hub\.yaml: not UTF-8 text \(byte 17 is b'\\xff'\)"),
        (b"plants:\n  - id: a\n    id: b\n", r"the key 'id' is given twice"),
        (b"plants: " + b"[" * 3000 + b"]" * 3000, r"hub\.yaml: lists or mappings nested too deep to read"),
    ],
    ids=["not-utf8", "key-twice", "nested-3000-deep"],
)
def test_the_hub_yaml_is_read_as_the_site_yaml_is(tmp_path: Path, data: bytes, message: str) -> None:
    path = tmp_path / "hub.yaml"
    path.write_bytes(data)
    with pytest.raises(ConfigError, match=message):
        load_hub_config(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("plants: []\n", "plants: List should have at least 1 item"),
        ("plants:\n  - id: a.b\n", "plants.0.id: String should match pattern"),
        ("plants:\n  - id: a\n  - id: a\n", "plant id 'a' appears twice"),
        ("plants:\n  - id: a\n  - id: b\n    domain: plant-a\n", "JetStream domain 'plant-a' is taken"),
        ("plants:\n  - id: a\n    colour: red\n", "plants.0.colour: Extra inputs are not permitted"),
        ("plants: [\n", "not valid YAML"),
        (
            "plants:\n  - id: a\n    leaf_password: aaaaaaaaaaaaaaaaaaaa\n  - id: b\n",
            "set leaf_password for every plant or for none",
        ),
        (
            "plants:\n  - id: a\n    leaf_password: short\n",
            "leaf_password: must be at least 16 characters, got 5",
        ),
        (
            "hub: {response_window_days: 120}\nplants:\n  - id: a\n",
            "response_window_days \\(120\\) is longer than keep_closed_days \\(90\\)",
        ),
        (
            "bus: {max_stream_bytes: 1000}\nplants:\n  - id: a\n",
            "bus.max_stream_bytes: Input should be greater",
        ),
        (
            "bus: {remark_retention_days: 0.5}\nplants:\n  - id: a\n",
            "bus.remark_retention_days: Input should be greater than or equal to 1",
        ),
        (
            "bus: {url: 'nats://127.0.0.1:422200'}\nplants:\n  - id: a\n",  # a digit too many: refused only when connecting
            "bus.url: .*422200': the port is out of range",
        ),
    ],
    ids=[
        "no-plants",
        "dotted-id",
        "twice",
        "same-domain",
        "typo",
        "not-yaml",
        "some-passwords",
        "short-password",
        "window-past-keeping",
        "tiny-stream",
        "remark-retention-under-a-day",
        "nats-port-out-of-range",
    ],
)
def test_a_bad_hub_config_names_what_is_wrong(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_hub_config(_write(tmp_path, text))


def test_a_hub_config_resolves_its_storage_dir_against_its_folder(tmp_path: Path) -> None:
    config = load_hub_config(_write(tmp_path, "storage:\n  dir: data\nplants:\n  - id: a\n    group: dust\n"))
    assert config.storage.dir == (tmp_path / "data").resolve()
    assert config.groups == ["dust"]
    assert config.plants[0].jetstream_domain == "plant-a"


def test_a_hub_time_zone_is_an_iana_name_known_at_load_time(tmp_path: Path) -> None:
    config = load_hub_config(_write(tmp_path, "hub:\n  timezone: Asia/Shanghai\nplants:\n  - id: a\n"))
    assert config.hub.timezone == "Asia/Shanghai"
    assert load_hub_config(_write(tmp_path, "plants:\n  - id: a\n")).hub.timezone is None
    with pytest.raises(ConfigError, match=r"hub.timezone: Value error, unknown time zone 'China'"):
        load_hub_config(_write(tmp_path, "hub:\n  timezone: China\nplants:\n  - id: a\n"))


def test_a_site_whose_id_cannot_be_a_bus_id_needs_bus_plant_id(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    site = config.site.model_copy(update={"id": "plant.one"})
    raw = config.model_dump() | {"site": site.model_dump(), "bus": {"url": "nats://127.0.0.1:4222"}}
    with pytest.raises(ValidationError, match=r"set bus.plant_id"):
        AnjianConfig.model_validate(raw)
    raw["bus"]["plant_id"] = "plant-one"
    assert AnjianConfig.model_validate(raw).bus is not None


@pytest.mark.skipif(shutil.which("nats-server") is None, reason="nats-server is not installed")
@pytest.mark.parametrize(
    "args",
    [
        ["--store-dir", "js", "--leaf-listen", "0.0.0.0:7422"],
        ["--store-dir", "js", "--plant", "lab-3", "--hub-leaf-url", "nats-leaf://hub.example:7422"],
    ],
    ids=["hub", "plant"],
)
def test_nats_config_prints_a_config_nats_server_accepts(tmp_path: Path, args: list[str]) -> None:
    result = CliRunner().invoke(app, ["hub", "nats-config", *args])
    assert result.exit_code == 0, result.output
    assert_nats_server_accepts(tmp_path, "nats.conf", result.output)


def test_a_plant_nats_config_without_the_hubs_address_is_refused() -> None:
    result = CliRunner().invoke(app, ["hub", "nats-config", "--store-dir", "js", "--plant", "lab-3"])
    assert result.exit_code == 2
    assert "needs --hub-leaf-url" in result.output


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (
            ["--leaf-listen", "0.0.0.0:74220"],
            "leaf_listen must be host:port, got '0.0.0.0:74220' (the port is out of range",
        ),
        (
            ["--plant", "lab-3", "--hub-leaf-url", "nats-leaf://hub.example:74220"],
            "hub.example:74220': the port is out of range",
        ),
        (
            ["--plant", "lab-3", "--hub-leaf-url", "nats-leaf://hub.example:7422", "--listen", "[::1:4222"],
            "lacks its",
        ),
    ],
    ids=["hub-leaf-port", "plant-hub-port", "plant-listen-bracket"],
)
def test_nats_config_names_an_address_nats_server_would_refuse(args: list[str], problem: str) -> None:
    """nats-server refused these configs only when started, at the plant, with its own words."""
    result = CliRunner().invoke(
        app, ["hub", "nats-config", "--store-dir", "js", *args], env={"COLUMNS": "400"}
    )
    assert result.exit_code == 2
    assert problem in result.output


def test_tokens_create_refuses_an_unknown_group_and_prints_a_scoped_token(tmp_path: Path) -> None:
    path = _write(tmp_path, "storage:\n  dir: data\nplants:\n  - id: a\n    group: dust\n")
    runner = CliRunner()
    unknown = runner.invoke(
        app, ["hub", "tokens", "create", "-c", str(path), "--name", "x", "--scope", "group:c"]
    )
    created = runner.invoke(
        app, ["hub", "tokens", "create", "-c", str(path), "--name", "bureau", "--scope", "group:dust"]
    )
    listed = runner.invoke(app, ["hub", "tokens", "list", "-c", str(path)])

    assert unknown.exit_code == 2 and "no group 'c'" in unknown.output
    assert created.exit_code == 0 and created.stdout.strip().startswith("anjhub_")
    assert "viewer\tgroup:dust\tbureau" in listed.output


@pytest.mark.skipif(shutil.which("nats-server") is None, reason="nats-server is not installed")
def test_leaf_passwords_go_into_the_hubs_authorization_and_the_plants_remote_url(tmp_path: Path) -> None:
    hub_yaml = _write(tmp_path, "plants:\n  - id: lab-3\n    leaf_password: 'p@ss word/with:odd chars'\n")
    secret = tmp_path / "leaf-password"
    secret.write_text("p@ss word/with:odd chars\n", encoding="utf-8")
    runner = CliRunner()
    hub = runner.invoke(app, ["hub", "nats-config", "--store-dir", "js", "--config", str(hub_yaml)])
    plant = runner.invoke(
        app,
        [
            "hub", "nats-config", "--store-dir", "js", "--plant", "lab-3",
            "--hub-leaf-url", "nats-leaf://hub.example:7422", "--leaf-password-file", str(secret),
        ],
    )  # fmt: skip

    assert hub.exit_code == 0 and plant.exit_code == 0, hub.output + plant.output
    assert 'authorization { users = [ {user: "lab-3", password: "p@ss word/with:odd chars"} ] }' in hub.output
    assert "nats-leaf://lab-3:p%40ss%20word%2Fwith%3Aodd%20chars@hub.example:7422" in plant.output
    assert_nats_server_accepts(tmp_path, "hub.conf", hub.output)
    assert_nats_server_accepts(tmp_path, "plant.conf", plant.output)


def test_a_hub_leaf_url_with_credentials_in_it_is_refused() -> None:
    result = CliRunner().invoke(
        app,
        [
            "hub",
            "nats-config",
            "--store-dir",
            "js",
            "--plant",
            "a",
            "--hub-leaf-url",
            "nats-leaf://a:b@hub:7422",
        ],
    )
    assert result.exit_code == 2
    assert "no credentials" in result.output


def test_a_short_signing_key_is_refused_at_the_plant_and_at_the_hub(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="signing_key: must be at least 16 characters"):
        load_hub_config(_write(tmp_path, "plants:\n  - id: a\n    signing_key: short\n"))
    raw = make_config(tmp_path).model_dump() | {"bus": {"signing_key": "short"}}
    with pytest.raises(ValidationError, match="bus.signing_key"):
        AnjianConfig.model_validate(raw)


def test_a_plants_nats_url_with_a_space_in_its_host_is_refused_with_its_password_masked(
    tmp_path: Path,
) -> None:
    raw = make_config(tmp_path).model_dump() | {"bus": {"url": "nats://plant:Pa55word@nats host:4222"}}
    with pytest.raises(ValidationError, match="nats host:4222': the host holds a space") as refused:
        AnjianConfig.model_validate(raw)
    assert "Pa55word" not in str(refused.value.errors()[0]["msg"])


def test_tokens_revoke_names_an_unknown_id_and_revokes_a_known_one(tmp_path: Path) -> None:
    path = _write(tmp_path, "storage:\n  dir: data\nplants:\n  - id: a\n")
    runner = CliRunner()
    runner.invoke(app, ["hub", "tokens", "create", "-c", str(path), "--name", "bureau", "--scope", "all"])

    unknown = runner.invoke(app, ["hub", "tokens", "revoke", "-c", str(path), "99"])
    known = runner.invoke(app, ["hub", "tokens", "revoke", "-c", str(path), "1"])
    bad_scope = runner.invoke(
        app, ["hub", "tokens", "create", "-c", str(path), "--name", "x", "--scope", "every"]
    )

    assert unknown.exit_code == 2 and "no hub token with id 99" in unknown.output
    assert known.exit_code == 0 and "revoked token 1 ('bureau')" in known.output
    assert bad_scope.exit_code == 2 and "a scope is all, group:<name> or plant:<id>" in bad_scope.output
    assert runner.invoke(app, ["hub", "tokens", "list", "-c", str(path)]).output.endswith(
        "\tbureau revoked\n"
    )


def test_a_placeholder_key_is_refused_in_characters_with_how_to_make_one(tmp_path: Path) -> None:
    text = 'plants:\n  - {id: a, leaf_password: "<random>", signing_key: "<random>"}\n'
    with pytest.raises(ConfigError) as raised:
        load_hub_config(_write(tmp_path, text))
    message = str(raised.value)
    for field in ("leaf_password", "signing_key"):
        assert (
            f"plants.0.{field}: must be at least 16 characters, got 8 (make one with `openssl rand -hex 16`)"
            in (message)
        )
    assert "items" not in message
    with pytest.raises(ConfigError, match="plants.0.signing_key: must be at most 200 characters, got 201"):
        load_hub_config(_write(tmp_path, f"plants:\n  - {{id: a, signing_key: {'k' * 201}}}\n"))
    raw = make_config(tmp_path).model_dump() | {"bus": {"signing_key": "short"}}
    with pytest.raises(ValidationError, match="must be at least 16 characters, got 5"):
        AnjianConfig.model_validate(raw)


def test_the_readme_hub_yaml_makes_a_valid_hub_config_with_random_keys(tmp_path: Path) -> None:
    """The README's hub.yaml once held "<random>" keys, refused as too short; its shell now makes them."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl makes the README's keys")
    readme = (Path(__file__).parents[3] / "README.md").read_text(encoding="utf-8")
    start = readme.index("cat > hub.yaml <<YAML")
    script = readme[start : readme.index("\nYAML\n", start) + len("\nYAML\n")]
    subprocess.run(["bash", "-c", script], cwd=tmp_path, check=True, timeout=30)

    hub = load_hub_config(tmp_path / "hub.yaml")

    secrets = [s.get_secret_value() for p in hub.plants for s in (p.leaf_password, p.signing_key) if s]
    assert len(secrets) == 4 == len(set(secrets)) and all(len(s) == 32 for s in secrets)
