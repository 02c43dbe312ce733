"""The CLI gives clear, credential-free errors for a bad config, an unreachable camera, a bad model."""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

import anjian.service
from anjian.service.cli import app
from tests.support.fixtures import RTSP_PASSWORD
from tests.support.receiver import unused_port
from tests.support.rtsp import RtspTestServer

runner = CliRunner()


def _site(tmp_path: Path, **overrides: object) -> Path:
    config: dict[str, object] = {
        "site": {
            "id": "p",
            "workshops": [{"id": "w", "cameras": [{"id": "c", "url": "rtsp://admin:pw-123@127.0.0.1:1/x"}]}],
        },
        "storage": {"dir": str(tmp_path / "data")},
    }
    config.update(overrides)
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_config_check_accepts_a_valid_file(tmp_path: Path) -> None:
    result = runner.invoke(app, ["config", "check", str(_site(tmp_path))])
    assert result.exit_code == 0, result.output
    assert "OK" in result.output and "1 camera(s)" in result.output
    assert "pw-123" not in result.output


def test_config_check_refuses_a_copy_of_the_demo_template_naming_each_placeholder(tmp_path: Path) -> None:
    """A site started from the demo template passed the check and ran cameras on a file named {video:...}."""
    template = Path(anjian.service.__file__).parent / "demo" / "site.yaml"
    path = tmp_path / "site.yaml"
    path.write_text(template.read_text(encoding="utf-8"), encoding="utf-8")

    result = runner.invoke(app, ["config", "check", str(path)])

    assert result.exit_code != 0
    assert "site.workshops.0.cameras.0.url holds '{video:polishing-1-cam-1}'" in result.output
    assert "storage.dir holds '{storage}'" in result.output and "anjian demo" in result.output
    assert "Traceback" not in result.output


def test_config_check_rejects_an_invalid_file_naming_the_field(tmp_path: Path) -> None:
    path = _site(tmp_path, server={"port": 70000})
    result = runner.invoke(app, ["config", "check", str(path)])
    assert result.exit_code == 2
    assert str(path) in result.output
    assert "server.port: Input should be less than or equal to 65535" in result.output


def test_config_schema_is_json_schema_of_the_site() -> None:
    result = runner.invoke(app, ["config", "schema"])
    assert result.exit_code == 0
    schema = json.loads(result.output)
    assert set(schema["required"]) == {"site"}
    assert "CameraPipelineConfig" in schema["$defs"]


def test_probe_of_unreachable_camera_says_why_without_the_password() -> None:
    url = f"rtsp://admin:pw-123@127.0.0.1:{unused_port()}/stream1"
    result = runner.invoke(app, ["camera", "probe", url, "--timeout-s", "3"])
    assert result.exit_code == 2
    assert "connection refused" in result.output
    assert "rtsp://***:***@127.0.0.1" in result.output
    assert "pw-123" not in result.output


TRICKY_PASSWORDS = ["pa/ssW0rd", "p@ss@W0rd", "p:a/s@s?W#0rd%"]


@pytest.mark.parametrize("password", TRICKY_PASSWORDS, ids=["slash", "ats", "every-separator"])
def test_probe_of_a_dead_port_never_prints_a_password_with_slashes_or_ats(password: str) -> None:
    url = f"rtsp://admin:{password}@127.0.0.1:{unused_port()}/x"
    result = runner.invoke(app, ["camera", "probe", url, "--timeout-s", "3"])
    assert result.exit_code == 2
    assert "cannot open rtsp://***:***@127.0.0.1:" in result.output and "connection refused" in result.output
    assert "W0rd" not in result.output


@pytest.mark.slow
@pytest.mark.parametrize("password", TRICKY_PASSWORDS, ids=["slash", "ats", "every-separator"])
def test_probe_with_a_wrong_tricky_password_is_refused_without_echoing_it(
    password: str, rtsp_server: RtspTestServer
) -> None:
    url = f"rtsp://admin:{password}@127.0.0.1:{rtsp_server.port}/cam1"
    result = runner.invoke(app, ["camera", "probe", url, "--timeout-s", "5"])
    assert result.exit_code == 2
    assert "credentials refused (401 Unauthorized)" in result.output
    assert "W0rd" not in result.output and RTSP_PASSWORD not in result.output


def test_probe_of_an_invalid_url_names_the_problem_without_the_password() -> None:
    result = runner.invoke(app, ["camera", "probe", "rtsp://admin:pa/ssW0rd@h/x", "--timeout-s", "0"])
    assert result.exit_code == 2
    assert "open_timeout_s: Input should be greater than 0" in result.output
    assert "W0rd" not in result.output


def test_probe_of_an_ffmpeg_protocol_is_refused_before_ffmpeg_opens_it() -> None:
    """``concat:/etc/passwd|...`` made FFmpeg read local files; a port past 65535 said only "Invalid argument"."""
    protocol = runner.invoke(app, ["camera", "probe", "concat:/etc/passwd|/etc/hosts"])
    port = runner.invoke(app, ["camera", "probe", "rtsp://admin:pa/ssW0rd@h:70000/x"])
    assert protocol.exit_code == port.exit_code == 2
    assert protocol.output.startswith("cannot probe: Value error, url 'concat:")
    assert "as its concat protocol, not a camera or a file" in protocol.output
    assert "70000/x': the port is out of range" in port.output and "W0rd" not in port.output


def test_config_check_of_a_broken_url_line_never_prints_the_password(tmp_path: Path) -> None:
    path = _site(tmp_path)
    path.write_text(path.read_text().replace("rtsp://admin:pw-123@", "'rtsp://admin:pa/ss@W0rd@"))
    result = runner.invoke(app, ["config", "check", str(path)])
    assert result.exit_code == 2
    assert "not valid YAML" in result.output
    assert "url: 'rtsp://***:***@127.0.0.1:1/x" in result.output
    assert "W0rd" not in result.output and "pa/ss" not in result.output


def test_probe_of_a_file_that_is_not_video(tmp_path: Path) -> None:
    path = tmp_path / "notes.mp4"
    path.write_text("this is not a video")
    result = runner.invoke(app, ["camera", "probe", str(path)])
    assert result.exit_code == 2
    assert "not a playable video" in result.output


def test_run_with_a_corrupt_model_fails_naming_the_file(tmp_path: Path) -> None:
    model = tmp_path / "broken.onnx"
    model.write_bytes(b"not an onnx model at all")
    path = _site(tmp_path, model={"path": str(model)})
    # The API starts first and the model loads behind it: its failure ends the process.
    result = runner.invoke(app, ["run", "--config", str(path)], env={"ANJIAN_PORT": str(unused_port())})
    assert result.exit_code == 2
    assert "cannot load model" in result.output and "broken.onnx" in result.output


def test_tokens_create_prints_only_the_secret_and_stores_its_hash(tmp_path: Path) -> None:
    from anjian.service.store import EventStore

    site = _site(tmp_path)
    result = runner.invoke(
        app, ["tokens", "create", "--config", str(site), "--role", "operator", "--name", "shift A"]
    )

    assert result.exit_code == 0, result.output
    secret = result.stdout.strip().splitlines()[-1]
    assert secret.startswith("anj_")
    store = EventStore(f"sqlite:///{tmp_path / 'data' / 'anjian.db'}")
    try:
        token = store.tokens.authenticate(secret)
    finally:
        store.close()
    assert token is not None and (token.name, token.role.value) == ("shift A", "operator")
    listed = runner.invoke(app, ["tokens", "list", "--config", str(site)])
    assert "operator\tactive\tshift A" in listed.output and secret not in listed.output
    revoked = runner.invoke(app, ["tokens", "revoke", "--config", str(site), str(token.id)])
    assert revoked.exit_code == 0 and "revoked" in revoked.output


def test_tokens_create_rejects_an_unknown_role(tmp_path: Path) -> None:
    result = runner.invoke(app, ["tokens", "create", "--config", str(_site(tmp_path)), "--role", "king"])
    assert result.exit_code == 2
    assert "unknown role 'king'" in result.output


def test_db_upgrade_brings_a_new_database_to_the_head(tmp_path: Path) -> None:
    from anjian.service.database import head_revision

    result = runner.invoke(app, ["db", "upgrade", "--config", str(_site(tmp_path))])

    assert result.exit_code == 0, result.output
    assert f"at schema {head_revision()}" in result.output
    assert (tmp_path / "data" / "anjian.db").is_file()


def test_run_with_service_url_needs_a_token(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["run", "--config", str(_site(tmp_path)), "--service-url", "http://127.0.0.1:1"], env={}
    )
    assert result.exit_code == 2
    assert "needs a pipeline token" in result.output


@pytest.mark.parametrize(
    ("storage", "says"),
    [
        ({"database_url": "postgresql+psycopg://u:s3cret-pw@127.0.0.1:1/db"}, "cannot open the database"),
        ({"database_url": "not a url"}, "storage.database_url: Value error, not a SQLAlchemy database URL"),
        ({"database_url": "nosuchdriver://h/db"}, "no database driver 'nosuchdriver'"),
    ],
    ids=["server-down", "not-a-url", "unknown-driver"],
)
def test_database_problems_are_clear_errors_without_the_password(
    tmp_path: Path, storage: dict[str, str], says: str
) -> None:
    path = _site(tmp_path, storage={"dir": str(tmp_path / "data"), **storage})
    for command in (["db", "upgrade", "--config", str(path)], ["tokens", "list", "--config", str(path)]):
        result = runner.invoke(app, command)
        assert result.exit_code == 2, result.output
        assert says in result.output and "s3cret-pw" not in result.output
        assert (
            "Traceback" not in result.output
            and result.exception is None
            or isinstance(result.exception, SystemExit)
        )


def test_a_data_folder_that_is_a_file_or_a_database_that_is_not_one_is_named(tmp_path: Path) -> None:
    taken = tmp_path / "data"
    taken.write_text("a file, not a folder")
    result = runner.invoke(app, ["tokens", "list", "--config", str(_site(tmp_path))])
    assert result.exit_code == 2 and "cannot make the data folder" in result.output, result.output
    taken.unlink()
    taken.mkdir()
    (taken / "anjian.db").write_text("garbage " * 100)
    result = runner.invoke(app, ["tokens", "list", "--config", str(_site(tmp_path))])
    assert result.exit_code == 2 and "cannot open the database" in result.output, result.output


def test_a_database_from_a_newer_anjian_says_so(tmp_path: Path) -> None:
    path = _site(tmp_path)
    assert runner.invoke(app, ["db", "upgrade", "--config", str(path)]).exit_code == 0
    import sqlite3

    with sqlite3.connect(tmp_path / "data" / "anjian.db") as db:
        db.execute("UPDATE alembic_version SET version_num = '0099'")
    result = runner.invoke(app, ["db", "upgrade", "--config", str(path)])
    assert result.exit_code == 2 and "is at schema 0099, newer than this anjian knows" in result.output


def test_cli_arguments_out_of_range_are_usage_errors(tmp_path: Path) -> None:
    path = _site(tmp_path)
    revoke = runner.invoke(app, ["tokens", "revoke", "--config", str(path), "99999999999999999999"])
    assert revoke.exit_code == 2 and "Traceback" not in revoke.output
    replay = runner.invoke(
        app,
        [
            "replay",
            str(tmp_path / "clip.mp4"),
            "--config",
            str(path),
            "--camera",
            "c",
            "--events",
            str(tmp_path / "missing" / "e.jsonl"),
        ],
    )
    assert replay.exit_code == 2


_POSTGRES_URL = "postgresql+psycopg://u:s3cret-pw@127.0.0.1:1/db"


@pytest.mark.parametrize(
    "command",
    [["db", "upgrade"], ["tokens", "list"], ["tokens", "create", "--role", "viewer"]],
    ids=["db-upgrade", "tokens-list", "tokens-create"],
)
def test_postgresql_without_psycopg_names_the_postgres_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # the base install: no postgres extra
    path = _site(tmp_path, storage={"dir": str(tmp_path / "data"), "database_url": _POSTGRES_URL})

    result = runner.invoke(app, [*command, "--config", str(path)])

    assert result.exit_code == 2, result.output
    assert "driver psycopg is not installed" in result.output
    assert "pip install -e '.[postgres]'" in result.output and "s3cret-pw" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_hub_commands_on_postgresql_without_psycopg_name_the_postgres_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)
    hub = tmp_path / "hub.yaml"
    hub.write_text(
        yaml.safe_dump(
            {
                "storage": {"dir": str(tmp_path / "hub"), "database_url": _POSTGRES_URL},
                "plants": [{"id": "a"}],
            }
        )
    )

    result = runner.invoke(
        app, ["hub", "tokens", "create", "-c", str(hub), "--name", "bureau", "--scope", "all"]
    )

    assert result.exit_code == 2, result.output
    assert "pip install -e '.[postgres]'" in result.output and "s3cret-pw" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_config_check_warns_when_this_install_lacks_the_database_driver(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _site(tmp_path, storage={"dir": str(tmp_path / "data"), "database_url": _POSTGRES_URL})
    monkeypatch.setitem(sys.modules, "psycopg", None)

    result = runner.invoke(app, ["config", "check", str(path)])

    assert result.exit_code == 0, result.output  # the file is valid; a pipeline-only node needs no driver
    assert "OK" in result.output
    assert "warning" in result.output and "pip install -e '.[postgres]'" in result.output
    assert "s3cret-pw" not in result.output


def test_db_downgrade_takes_the_schema_back_for_an_older_anjian_and_refuses_without_yes(
    tmp_path: Path,
) -> None:
    from anjian.service.database import head_revision

    site = str(_site(tmp_path))
    assert runner.invoke(app, ["db", "upgrade", "--config", site]).exit_code == 0

    refused = runner.invoke(app, ["db", "downgrade", "0004", "--config", site])
    unknown = runner.invoke(app, ["db", "downgrade", "9999", "--config", site, "--yes"])
    done = runner.invoke(app, ["db", "downgrade", "0004", "--config", site, "--yes"])

    assert refused.exit_code == 2 and "pass --yes" in refused.output
    assert unknown.exit_code == 2 and "no schema revision '9999'" in unknown.output
    assert done.exit_code == 0 and f"schema {head_revision()} -> 0004" in done.output, done.output
    with sqlite3.connect(tmp_path / "data" / "anjian.db") as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [("0004",)]


@pytest.mark.parametrize("command", [["demo"], ["bench", "decode"]], ids=["demo", "bench-decode"])
def test_a_file_given_as_the_output_folder_is_named_not_a_traceback(
    tmp_path: Path, command: list[str]
) -> None:
    a_file = tmp_path / "site.yaml"
    a_file.write_text("site: {id: s}\n")
    result = runner.invoke(app, [*command, "--dir", str(a_file)])
    assert result.exit_code == 2
    assert f"--dir {a_file} is a file; give a folder" in result.output and "Traceback" not in result.output
