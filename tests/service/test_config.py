"""The site YAML is validated once, and every error names the file, the field and the problem."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from anjian.pipeline.event import RiskLevel
from anjian.service.config import load_config
from anjian.service.errors import ConfigError

VALID = {
    "site": {
        "id": "plant-1",
        "workshops": [
            {
                "id": "ws-1",
                "kind": "freezing",
                "cameras": [
                    {
                        "id": "cam-1",
                        "url": "rtsp://admin:pw@10.0.0.5/stream1",
                        "analysis_fps": 5,
                        "zones": [{"id": "desk", "kind": "post", "polygon": [[0, 0], [1, 0], [1, 1]]}],
                        "behaviours": {"open_flame": {"k": 2, "n": 4, "severity": "orange"}},
                    },
                    {"id": "cam-2", "url": "clips/door.mp4"},
                ],
            }
        ],
    },
    "model": {"path": "models/custom.onnx"},
    "webhooks": [{"url": "http://127.0.0.1:9000/hook", "secret": "s"}],
}


def _write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


def test_valid_config_loads_with_relative_paths_resolved(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, VALID))
    cameras = config.cameras()
    assert [c.id for _, c in cameras] == ["cam-1", "cam-2"]
    assert cameras[0][1].behaviours.open_flame is not None
    assert cameras[0][1].behaviours.open_flame.severity is RiskLevel.ORANGE
    assert cameras[1][1].url.get_secret_value() == str(tmp_path / "clips" / "door.mp4")
    assert config.model.path == str(tmp_path / "models" / "custom.onnx")
    assert "pw" not in repr(config)


def test_a_relative_file_name_with_a_colon_is_resolved_as_a_file(tmp_path: Path) -> None:
    """An NVR export's name is no FFmpeg protocol: it resolves against the YAML's folder like any file."""
    data = _mutated(("site", "workshops", 0, "cameras", 1, "url"), "recording-2024-01-01T10:00:00.mp4")
    camera = load_config(_write(tmp_path, data)).cameras()[1][1]
    assert camera.url.get_secret_value() == str(tmp_path / "recording-2024-01-01T10:00:00.mp4")


def _mutated(path: tuple[object, ...], value: object) -> dict[str, object]:
    data = yaml.safe_load(yaml.safe_dump(VALID))
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return data


CAM = ("site", "workshops", 0, "cameras", 0)


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ((*CAM, "analysis_fpss"), 5, r"site\.workshops\.0\.cameras\.0\.analysis_fpss: Extra inputs"),
        ((*CAM, "analysis_fps"), 0, r"cameras\.0\.analysis_fps: Input should be greater than 0"),
        ((*CAM, "zones", 0, "polygon"), [[0, 0], [2, 0], [1, 1]], r"polygon: .*outside \[0, 1\]"),
        ((*CAM, "zones", 0, "polygon"), [[0, 0], [1, 1]], r"at least 3 points"),
        ((*CAM, "behaviours", "open_flame", "k"), 9, r"k \(9\) must be <= n \(4\)"),
        ((*CAM, "behaviours", "open_flame", "severity"), "purple", r"severity: Input should be 'red'"),
        ((*CAM, "id"), "cam-2", r"camera id 'cam-2' appears twice"),
        (("webhooks", 0, "url"), "ftp://x", r"webhooks\.0\.url: .*expected an http:// or https:// URL"),
        (("webhooks", 0, "url"), "http://a..b/hook", r"webhooks\.0\.url: .*'a\.\.b' .*not a valid host"),
        (("site", "timezone"), "Mars/Olympus", r"site\.timezone: .*unknown time zone 'Mars/Olympus'"),
        (("site", "timezone"), "Asia/" + "x" * 300, r"site\.timezone: .*unknown time zone 'Asia/xxx"),
        (
            (*CAM, "url"),
            "rtsp://admin:pw@10.0.0.5:65536/s",
            r"cameras\.0: .*url 'rtsp://\*\*\*:\*\*\*@10\.0\.0\.5:65536/s': the port is out of range",
        ),
        ((*CAM, "url"), "admin:pw@10.0.0.5/stream1", r"cameras\.0: .*without its scheme: write rtsp://"),
        (
            ("storage",),
            {"database_url": "postgresql+psycopg://u:pw@db:543200/a"},
            r"database_url: .*the port is out of range",
        ),
        (
            ("storage",),
            {"database_url": "postgresql+psycopg://u:pw@db:5432x/a"},
            r"database_url: .*not a SQLAlchemy",
        ),
    ],
    ids=[
        "typo",
        "zero-fps",
        "polygon-range",
        "polygon-short",
        "k-above-n",
        "bad-colour",
        "dup-camera",
        "bad-hook",
        "bad-hook-host",
        "bad-time-zone",
        "time-zone-too-long-for-a-file-name",
        "camera-port-out-of-range",
        "camera-url-without-its-scheme",  # was resolved as a relative file path and failed at start
        "database-port-out-of-range",  # was refused only when the service started
        "database-port-no-number",  # was Python's "invalid literal for int()"
    ],
)
def test_invalid_config_names_field_and_problem(
    tmp_path: Path, path: tuple[object, ...], value: object, expected: str
) -> None:
    config_path = _write(tmp_path, _mutated(path, value))
    with pytest.raises(ConfigError, match=expected) as info:
        load_config(config_path)
    assert str(config_path) in str(info.value)
    assert "pw@" not in str(info.value)


def test_missing_file_and_bad_yaml_give_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the site config"):
        load_config(tmp_path / "absent.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(_write(tmp_path, "site: [unclosed"))
    with pytest.raises(ConfigError, match="expected a mapping at the top level"):
        load_config(_write(tmp_path, "- a list"))


def test_real_sites_default_to_the_real_model(tmp_path: Path) -> None:
    data = yaml.safe_load(yaml.safe_dump(VALID))
    del data["model"]
    config = load_config(_write(tmp_path, data))
    assert config.model.path == "builtin:anjian-n"


def test_demo_site_template_is_valid(tmp_path: Path) -> None:
    template = (Path(__file__).parents[2] / "service" / "demo" / "site.yaml").read_text()
    filled = re.sub(r"\{video:[^}]*\}", "demo.mp4", template).replace("{storage}", "data")
    path = _write(tmp_path, filled)
    config = load_config(path)
    assert config.model.path == "builtin:anjian-demo"


_PASSWORD = "pa/ss@W0rd"


@pytest.mark.parametrize(
    ("url_line", "expected"),
    [
        (f'url: "rtsp://admin:{_PASSWORD}@10.0.0.5/x', r"quoted scalar \(line 8\)"),
        (f"url: rtsp://admin:{_PASSWORD}: x@10.0.0.5/x", r"mapping values are not allowed here"),
        (f'url: "rtsp://admin:{_PASSWORD}"x@10.0.0.5/x"', r"expected <block end>"),
        (f"url: [rtsp://admin:{_PASSWORD}@10.0.0.5/x", r"not valid YAML"),
    ],
    ids=["unclosed-quote", "colon-space-in-password", "quote-in-password", "unclosed-flow"],
)
def test_yaml_syntax_error_on_a_url_line_never_echoes_the_password(
    tmp_path: Path, url_line: str, expected: str
) -> None:
    text = f"""site:
  id: plant-1
  workshops:
    - id: ws-1
      cameras:
        - id: cam-1
          analysis_fps: 5
          {url_line}
"""
    with pytest.raises(ConfigError, match=expected) as info:
        load_config(_write(tmp_path, text))
    message = str(info.value)
    assert "not valid YAML" in message and "W0rd" not in message and "pa/ss" not in message
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_yaml_syntax_error_elsewhere_still_shows_the_line(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError,
        match=r"site\.yaml:3:6: .*flow sequence \(line 2\).*\n    name: \[unclosed\n    model: \{\}",
    ) as info:
        load_config(_write(tmp_path, "site:\n  name: [unclosed\nmodel: {}\n"))
    assert "not valid YAML" in str(info.value)


def test_validation_errors_never_quote_a_url_password(tmp_path: Path) -> None:
    data = _mutated((*CAM, "url"), f"rtsp://admin:{_PASSWORD}@10.0.0.5/x")
    data["site"]["workshops"][0]["cameras"][0]["analysis_fps"] = "fast"
    data["site"]["workshops"][0]["cameras"][0]["reconnect"] = f"rtsp://admin:{_PASSWORD}@h/"
    with pytest.raises(ConfigError, match=r"analysis_fps: Input should be a valid number") as info:
        load_config(_write(tmp_path, data))
    assert "W0rd" not in str(info.value) and info.value.__cause__ is None


def test_a_file_that_is_not_utf8_is_named_with_the_byte(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_bytes(b"site:\n  id: s\xff1\n")
    with pytest.raises(ConfigError, match=r"site\.yaml: not UTF-8 text \(byte 13 is b'\\xff'\)"):
        load_config(path)


@pytest.mark.parametrize(
    ("yaml_text", "field"),
    [
        ('model: {path: "\\0x.onnx"}\nsite: {id: s}\n', "model.path"),
        ('storage: {dir: "\\0"}\nsite: {id: s}\n', "storage.dir"),
        (
            'site: {id: s, workshops: [{id: w, cameras: [{id: c1, url: "\\0x.mp4"}]}]}\n',
            "site.workshops.0.cameras.0.url",
        ),
    ],
    ids=["model", "storage", "camera"],
)
def test_a_nul_in_a_path_is_named_not_a_traceback(tmp_path: Path, yaml_text: str, field: str) -> None:
    with pytest.raises(ConfigError, match=rf"{re.escape(field)}: holds a NUL character"):
        load_config(_write(tmp_path, yaml_text))


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("site: {id: s, workshops: 5}\n", r"site\.workshops: Input should be a valid list"),
        (
            "site: {id: s, workshops: [{id: w, cameras: 7}]}\n",
            r"site\.workshops\.0\.cameras: Input should be a valid list",
        ),
        ("site: " + "[" * 3000 + "]" * 3000 + "\n", r"site\.yaml: lists or mappings nested too deep to read"),
    ],
    ids=["workshops-a-number", "cameras-a-number", "nested-3000-deep"],
)
def test_a_shape_the_paths_step_cannot_walk_is_named_not_a_traceback(
    tmp_path: Path, yaml_text: str, message: str
) -> None:
    """Found by test_config_fuzz.py: a TypeError and a RecursionError before the schema could name the field."""
    with pytest.raises(ConfigError, match=message):
        load_config(_write(tmp_path, yaml_text))


def test_a_key_given_twice_is_refused_with_both_lines(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"site\.yaml:3:3: .*the key 'id' is given twice \(again at line 3\)"
    ):
        load_config(_write(tmp_path, "site:\n  id: s1\n  id: s2\n"))


@pytest.mark.parametrize(
    ("broken", "secret"),
    [
        ('- {url: "https://u:pw1@h/x", secret: TOPSECRET1, kinds: [bogus}', "TOPSECRET1"),
        (
            "robots: [{name: f, kind: feishu, url: https://open.feishu.cn/open-apis/bot/v2/hook/HOOKTOKEN10",
            "HOOKTOKEN10",
        ),
        ('- {id: c, url: "rtsp://admin:my pass@h/x"', "my pass"),
        ('secret: "SECabc\n  TOPSECRET9": x: y', "TOPSECRET9"),
    ],
    ids=["flow-mapping-secret", "feishu-hook", "password-with-space", "continuation-line"],
)
def test_a_broken_line_is_echoed_with_every_secret_on_it_masked(
    tmp_path: Path, broken: str, secret: str
) -> None:
    with pytest.raises(ConfigError, match="not valid YAML") as info:
        load_config(_write(tmp_path, f"site:\n  id: s\nchannels:\n  {broken}\n"))
    assert secret not in str(info.value) and "pw1" not in str(info.value)


def test_storage_deletes_evidence_only_when_the_disk_needs_it_by_default_and_age_is_opt_in(
    tmp_path: Path,
) -> None:
    default = load_config(_write(tmp_path, VALID)).storage
    chosen = load_config(
        _write(
            tmp_path,
            {**VALID, "storage": {"keep_evidence_days": 90, "max_evidence_gb": 20, "reclaim_below_mb": 0}},
        )
    ).storage

    assert (default.keep_evidence_days, default.max_evidence_gb) == (None, None), "no age or size deletion"
    assert (default.min_free_mb, default.reclaim_below_mb) == (500, None), "reclaimed below 2 x min_free_mb"
    assert (chosen.keep_evidence_days, chosen.max_evidence_gb, chosen.reclaim_below_mb) == (90, 20, 0)


@pytest.mark.parametrize(
    ("storage", "expected"),
    [
        (
            {"keep_evidence_days": 0.5},
            r"storage\.keep_evidence_days: Input should be greater than or equal to 1",
        ),
        (
            {"max_evidence_gb": 0},
            r"storage\.max_evidence_gb: Input should be greater than or equal to 0\.001",
        ),
        (
            {"max_evidence_gb": 1e-10},
            r"storage\.max_evidence_gb: Input should be greater than or equal to 0\.001",
        ),
        ({"min_free_mb": -1}, r"storage\.min_free_mb: Input should be greater than or equal to 0"),
        ({"reclaim_below_mb": -1}, r"storage\.reclaim_below_mb: Input should be greater than or equal to 0"),
    ],
    ids=[
        "keep-under-a-day",
        "no-cap-of-zero",
        "a-cap-that-rounds-to-zero-bytes",
        "negative-free",
        "negative-reclaim",
    ],
)
def test_storage_retention_and_free_space_settings_are_bounded(
    tmp_path: Path, storage: dict[str, object], expected: str
) -> None:
    with pytest.raises(ConfigError, match=expected):
        load_config(_write(tmp_path, {**VALID, "storage": storage}))
