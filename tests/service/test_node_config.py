"""The site YAML's ``nodes:`` section: each camera's preferred node, lease timing, and clear errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from anjian.service.cli import app
from anjian.service.config import load_config
from anjian.service.errors import ConfigError
from anjian.service.nodes import CameraNode

SITE = {
    "site": {
        "id": "plant-1",
        "workshops": [
            {
                "id": "ws-1",
                "cameras": [
                    {"id": "cam-1", "url": "rtsp://127.0.0.1:9/1"},
                    {"id": "cam-2", "url": "rtsp://127.0.0.1:9/2"},
                    {"id": "cam-3", "url": "rtsp://127.0.0.1:9/3"},
                ],
            }
        ],
    },
    "bus": {"url": "nats://127.0.0.1:4222"},
    "nodes": {
        "members": [
            {"name": "line-a", "cameras": ["cam-1", "cam-2"]},
            {"name": "line-b", "cameras": ["cam-3"]},
        ]
    },
}


def _write(tmp_path: Path, **changes: object) -> Path:
    data = yaml.safe_load(yaml.safe_dump(SITE))
    data.update(changes)
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _members(*members: dict[str, object], **timing: float) -> dict[str, object]:
    return {"members": list(members), **timing}


def test_nodes_section_gives_each_camera_its_preferred_node(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path))

    assert config.nodes is not None
    assert config.nodes.preferred_nodes() == {"cam-1": "line-a", "cam-2": "line-a", "cam-3": "line-b"}
    assert (
        config.nodes.lease_ttl_s + config.nodes.renew_interval_s < 60
    )  # a dead node's cameras within a minute


A = {"name": "line-a", "cameras": ["cam-1", "cam-2"]}
B = {"name": "line-b", "cameras": ["cam-3"]}


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            {"nodes": _members(A, {"name": "line-b", "cameras": ["cam-3", "cam-9"]})},
            r"node 'line-b': camera\(s\) \['cam-9'\] are not cameras of the site",
        ),
        (
            {"nodes": _members(A, {"name": "line-b", "cameras": ["cam-3", "cam-2"]})},
            r"camera 'cam-2' is in nodes 'line-a' and 'line-b'",
        ),
        ({"nodes": _members(A, B, {"name": "line-c", "cameras": []})}, r"node 'line-c' has no cameras"),
        ({"nodes": _members(A)}, r"camera\(s\) \['cam-3'\] are in no node"),
        (
            {"nodes": _members(A, {"name": "line-a", "cameras": ["cam-3"]})},
            r"node name 'line-a' appears twice",
        ),
        (
            {"nodes": _members(A, {"name": "line.b", "cameras": ["cam-3"]})},
            r"nodes\.members\.1\.name: String should match",
        ),
        (
            {"nodes": _members(A, B, lease_ttl_s=6, renew_interval_s=3)},
            r"renew_interval_s \(3\) must be at most a third",
        ),
        ({"nodes": _members()}, r"nodes\.members: List should have at least 1 item"),
        ({"bus": None}, r"nodes: needs a bus: section"),
    ],
    ids=[
        "unknown-camera",
        "camera-in-two-nodes",
        "node-without-cameras",
        "camera-in-no-node",
        "duplicate-node",
        "bad-name",
        "renew-too-slow",
        "no-members",
        "no-bus",
    ],
)
def test_bad_nodes_section_names_what_is_wrong(
    tmp_path: Path, changes: dict[str, object], expected: str
) -> None:
    path = _write(tmp_path, **changes)

    with pytest.raises(ConfigError, match=expected):
        load_config(path)


def test_a_node_name_the_site_lacks_is_refused_with_the_names_it_has(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path))

    with pytest.raises(
        ValueError, match=r"no node 'line-z' in nodes.members; the nodes are \['line-a', 'line-b'\]"
    ):
        CameraNode.from_config(config, "line-z")
    without = config.model_copy(update={"nodes": None})
    with pytest.raises(ValueError, match="the site YAML has no nodes: section"):
        CameraNode.from_config(without, "line-a")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], r"runs several pipeline nodes \['line-a', 'line-b'\]; choose one with --node NAME"),
        (["--node", "line-z"], r"no node 'line-z' in nodes.members; the nodes are \['line-a', 'line-b'\]"),
    ],
    ids=["no-node", "unknown-node"],
)
def test_anjian_run_refuses_a_missing_or_unknown_node_clearly(
    tmp_path: Path, args: list[str], expected: str
) -> None:
    result = CliRunner().invoke(app, ["run", "--config", str(_write(tmp_path)), *args])

    assert result.exit_code == 2
    assert re.search(expected, result.output.replace("\n", "")), result.output
    assert "Traceback" not in result.output
