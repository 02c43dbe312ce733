"""A site runs ``builtin:`` models from the registry its YAML names (``model.registry``)."""

from __future__ import annotations

from pathlib import Path

import yaml

from anjian.models.loader import load_detector
from anjian.models.registry import promote, register_version, resolve_model_path
from anjian.service.config import load_config

SITE = {
    "site": {"id": "plant-1", "workshops": [{"id": "ws-1", "cameras": [{"id": "cam-1", "url": "clip.mp4"}]}]},
    "model": {"path": "builtin:flame", "registry": "models/registry"},
}


def test_the_registry_path_is_relative_to_the_site_yaml(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "site.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump(SITE))
    assert load_config(path).model.registry == tmp_path / "conf" / "models" / "registry"


def test_the_site_loads_the_version_promoted_in_its_registry(tmp_path: Path) -> None:
    registry = tmp_path / "models" / "registry"
    entry = register_version(
        "flame", resolve_model_path("builtin:anjian-demo/1"), {}, "# flame\n", root=registry
    )
    promote("flame", entry.version, root=registry)
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(SITE))
    config = load_config(path)

    detector = load_detector(config.model.path, config.model)  # flame exists only in the site registry

    assert list(detector.class_names.values()) == ["fire", "smoke"]
