"""The model registry: versions, promotion, scopes, rollback, change detection."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from models.errors import ModelLoadError
from models.registry import (
    PromotionWatch,
    list_versions,
    promote,
    promoted_version,
    register_version,
    resolve_model_path,
    rollback,
)


@pytest.fixture
def registry(tmp_path: Path) -> Path:
    """A registry with model 'det' versions 1, 2 and 3 (distinct bytes), nothing promoted."""
    root = tmp_path / "registry"
    for version in ("1", "2", "3"):
        source = tmp_path / f"m{version}.onnx"
        source.write_bytes(f"model {version}".encode())
        register_version(
            "det",
            source,
            {"map50": 0.1 * int(version), "data_hash": "sha256:abc"},
            f"# det {version}\n",
            root=root,
        )
    return root


def test_without_promotion_builtin_resolves_to_the_latest(registry: Path) -> None:
    assert promoted_version("det", root=registry) == "3"
    assert resolve_model_path("builtin:det", root=registry) == registry / "det" / "3" / "model.onnx"
    assert resolve_model_path("builtin:det/1", root=registry).read_bytes() == b"model 1"


def test_promote_then_rollback_walks_back_through_promotions(registry: Path) -> None:
    assert promote("det", "1", root=registry) == "3"
    assert promote("det", "2", root=registry) == "1"
    assert resolve_model_path("builtin:det", root=registry).parent.name == "2"

    assert rollback("det", root=registry) == "1"
    assert resolve_model_path("builtin:det", root=registry).parent.name == "1"
    assert [v.version for v in list_versions("det", root=registry) if v.is_promoted] == ["1"]
    history = [json.loads(line) for line in (registry / "det" / "history.jsonl").read_text().splitlines()]
    assert [h["version"] for h in history] == ["1", "2", "1"] and history[-1]["note"] == "rollback from 2"


def test_rollback_without_an_earlier_promotion_fails(registry: Path) -> None:
    with pytest.raises(ModelLoadError, match="no earlier promoted version"):
        rollback("det", root=registry)


def test_scope_promotion_overrides_only_that_scope(registry: Path) -> None:
    promote("det", "2", root=registry)
    promote("det", "1", scope="site-a", root=registry)

    assert resolve_model_path("builtin:det@site-a", root=registry).parent.name == "1"
    assert resolve_model_path("builtin:det@site-b", root=registry).parent.name == "2"
    assert resolve_model_path("builtin:det", root=registry).parent.name == "2"
    with pytest.raises(ValueError, match="scope must be"):
        promote("det", "1", scope="../etc", root=registry)


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("builtin:nope", "no builtin model 'nope'"),
        ("builtin:det/9", "has no model.onnx"),
        ("builtin:det@a/b", "has no model.onnx"),
    ],
    ids=["unknown-model", "unknown-version", "scope-with-version"],
)
def test_bad_specs_raise_model_load_error(registry: Path, spec: str, match: str) -> None:
    with pytest.raises(ModelLoadError, match=match):
        resolve_model_path(spec, root=registry)


def test_promoting_a_missing_version_fails_and_changes_nothing(registry: Path) -> None:
    with pytest.raises(ModelLoadError, match="no version '7'"):
        promote("det", "7", root=registry)
    assert not (registry / "det" / "promoted").exists()


def test_register_writes_meta_card_and_refuses_to_overwrite(registry: Path, tmp_path: Path) -> None:
    [*_, latest] = list_versions("det", root=registry)
    assert latest.meta["map50"] == pytest.approx(0.3) and latest.meta["name"] == "det" and latest.created_at
    assert (latest.directory / "card.md").read_text() == "# det 3\n"
    with pytest.raises(FileExistsError):
        register_version("det", tmp_path / "m1.onnx", {}, "", version="3", root=registry)


def test_watch_reports_each_promotion_once(registry: Path) -> None:
    watch = PromotionWatch("builtin:det", root=registry)
    assert watch.current.parent.name == "3" and watch.poll() is None

    promote("det", "1", root=registry)
    assert watch.poll() == registry / "det" / "1" / "model.onnx"
    assert watch.poll() is None

    rollback("det", root=registry)
    assert watch.poll() == registry / "det" / "3" / "model.onnx"


def test_watch_of_a_fixed_version_never_changes(registry: Path) -> None:
    watch = PromotionWatch("builtin:det/2", root=registry)
    promote("det", "1", root=registry)
    assert watch.poll() is None and watch.current.parent.name == "2"
