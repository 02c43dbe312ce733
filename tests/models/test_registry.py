"""The model registry: a site layer over the shipped models, promotion, scopes, rollback, change detection."""

from __future__ import annotations

import errno
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from anjian.models.errors import ModelLoadError
from anjian.models.registry import (
    SHIPPED_DIR,
    SITE_VERSION_START,
    PromotionWatch,
    default_registry,
    earlier_promotions,
    list_versions,
    promote,
    promoted_version,
    register_version,
    resolve_model_path,
    rollback,
    version_record_dir,
    write_card_section,
)
from tests.models.conftest import stand_in_model


def _served(spec: str, root: Path) -> str:
    """The version folder a spec resolves to."""
    return resolve_model_path(spec, root=root).parent.name


def test_registering_never_puts_a_version_live(registry: Path) -> None:
    assert promoted_version("det", root=registry) is None
    with pytest.raises(ModelLoadError, match=r"no version of det is promoted .*anjian models promote det"):
        resolve_model_path("builtin:det", root=registry)
    assert resolve_model_path("builtin:det/1", root=registry).read_bytes() == b"model 1"
    promote("det", "2", root=registry)
    register_version("det", stand_in_model(registry.parent, "model 4"), {}, "# det 4\n", root=registry)
    assert _served("builtin:det", registry) == "2"


def test_a_site_version_of_a_shipped_model_does_not_replace_the_shipped_one(tmp_path: Path) -> None:
    site = tmp_path / "site"
    shipped = resolve_model_path("builtin:anjian-n", root=site)
    assert shipped.is_relative_to(SHIPPED_DIR)

    entry = register_version("anjian-n", stand_in_model(tmp_path, "site model"), {}, "# site\n", root=site)

    assert entry.version == str(SITE_VERSION_START) and entry.directory.is_relative_to(site)
    assert resolve_model_path("builtin:anjian-n", root=site) == shipped  # not live before a promote
    assert not (SHIPPED_DIR / "anjian-n" / entry.version).exists()  # shipped files untouched
    second = register_version("anjian-n", stand_in_model(tmp_path, "site model 2"), {}, "", root=site)
    assert second.version == str(SITE_VERSION_START + 1)
    with pytest.raises(FileExistsError, match="shipped version"):
        register_version("anjian-n", stand_in_model(tmp_path, "clash"), {}, "", version="1", root=site)


def test_a_site_promotion_may_name_a_shipped_version(tmp_path: Path) -> None:
    site = tmp_path / "site"
    shipped = resolve_model_path("builtin:anjian-n", root=site)
    entry = register_version("anjian-n", stand_in_model(tmp_path, "site model"), {}, "# site\n", root=site)
    promote("anjian-n", entry.version, root=site)
    assert resolve_model_path("builtin:anjian-n", root=site) == entry.onnx
    promote("anjian-n", shipped.parent.name, scope="line-2", root=site)
    assert resolve_model_path("builtin:anjian-n@line-2", root=site) == shipped

    listed = {v.version: v for v in list_versions("anjian-n", root=site)}
    assert listed[shipped.parent.name].is_shipped and listed[shipped.parent.name].scopes == ("line-2",)
    assert listed[entry.version].is_promoted and not listed[entry.version].is_shipped


def test_rollback_walks_back_through_the_history(registry: Path) -> None:
    for version in ("1", "2", "3"):
        assert promote("det", version, root=registry).is_changed
    assert _served("builtin:det", registry) == "3"

    assert rollback("det", root=registry) == "2"
    assert rollback("det", root=registry) == "1"  # back again, not back and forth between 2 and 3
    assert [v.version for v in list_versions("det", root=registry) if v.is_promoted] == ["1"]
    with pytest.raises(ModelLoadError, match="no earlier promoted version"):
        rollback("det", root=registry)  # a site-only model: nothing served before the first promotion
    history = [json.loads(line) for line in (registry / "det" / "history.jsonl").read_text().splitlines()]
    assert [(h["action"], h["version"]) for h in history] == [
        ("promote", "1"),
        ("promote", "2"),
        ("promote", "3"),
        ("rollback", "2"),
        ("rollback", "1"),
    ]
    assert history[-1]["note"] == "rollback from 2 to 1"


def test_promoting_again_after_a_rollback_pushes_on_the_stack(registry: Path) -> None:
    promote("det", "1", root=registry)
    promote("det", "2", root=registry)
    rollback("det", root=registry)
    promote("det", "3", root=registry)
    assert rollback("det", root=registry) == "1"


def test_rolling_back_the_sites_first_promotion_serves_the_shipped_version(tmp_path: Path) -> None:
    site = tmp_path / "site"
    shipped = resolve_model_path("builtin:anjian-n", root=site)
    entry = register_version("anjian-n", stand_in_model(tmp_path, "site model"), {}, "", root=site)
    promote("anjian-n", entry.version, root=site)

    assert rollback("anjian-n", root=site) == shipped.parent.name
    assert resolve_model_path("builtin:anjian-n", root=site) == shipped
    assert not (site / "anjian-n" / "promoted").exists()


def test_promoting_the_promoted_version_changes_nothing(registry: Path) -> None:
    promote("det", "2", root=registry)
    history = (registry / "det" / "history.jsonl").read_text()
    again = promote("det", "2", root=registry)
    assert not again.is_changed and again.previous == "2"
    assert (registry / "det" / "history.jsonl").read_text() == history


def test_rollback_without_a_promotion_fails(registry: Path) -> None:
    with pytest.raises(ModelLoadError, match="no earlier promoted version"):
        rollback("det", root=registry)


def test_scope_promotion_overrides_only_that_scope_and_rolls_back_to_following_the_model(
    registry: Path,
) -> None:
    promote("det", "2", root=registry)
    pinned = promote("det", "1", scope="site-a", root=registry)
    assert pinned.previous == "2" and pinned.is_changed

    assert _served("builtin:det@site-a", registry) == "1"
    assert _served("builtin:det@site-b", registry) == "2"
    assert _served("builtin:det", registry) == "2"
    assert list_versions("det", root=registry)[0].scopes == ("site-a",)
    with pytest.raises(ValueError, match="scope must be"):
        promote("det", "1", scope="../etc", root=registry)

    assert rollback("det", scope="site-a", root=registry) == "2"
    assert _served("builtin:det@site-a", registry) == "2" and _served("builtin:det", registry) == "2"


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


def test_a_registration_that_dies_mid_copy_leaves_no_version(
    registry: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def copy_half_then_die(source: Path, target: Path) -> None:
        Path(target).write_bytes(Path(source).read_bytes()[:3])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("anjian.models.registry.shutil.copyfile", copy_half_then_die)
    with pytest.raises(OSError, match="No space left"):
        register_version("det", stand_in_model(tmp_path, "model 4"), {}, "# det 4\n", root=registry)

    assert [v.version for v in list_versions("det", root=registry)] == ["1", "2", "3"]
    assert sorted(p.name for p in (registry / "det").iterdir()) == ["1", "2", "3"]  # nothing half-made left


def test_a_number_taken_by_another_registration_meanwhile_goes_to_the_next(
    registry: Path, tmp_path: Path
) -> None:
    taken = registry / "det" / "4"
    taken.mkdir()
    (taken / "meta.json").write_text("{}")  # another analyst's registration, its model still being copied

    version = register_version("det", stand_in_model(tmp_path, "model 5"), {}, "# det 5\n", root=registry)

    assert version.version == "5" and version.meta["version"] == "5"
    assert (taken / "meta.json").read_text() == "{}"  # theirs, untouched
    assert resolve_model_path("builtin:det/5", root=registry).read_bytes() == b"model 5"


@pytest.fixture
def promoted(registry: Path) -> Path:
    """The registry with det's versions 1, 2 and 3 promoted in turn: 3 in force, 2 and then 1 before it."""
    for version in ("1", "2", "3"):
        promote("det", version, root=registry)
    return registry


def test_a_promotion_recorded_but_never_put_in_force_is_not_rolled_back_to(promoted: Path) -> None:
    history = promoted / "det" / "history.jsonl"
    with history.open("a") as fh:  # promote 1 again: the process died after the record, before the pointer
        fh.write(json.dumps({"action": "promote", "scope": None, "version": "1", "previous": "3"}) + "\n")

    assert rollback("det", root=promoted) == "2"  # what served before 3


def _disk_full(*args: object, **kwargs: object) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


@contextmanager
def _disk_full_in(monkeypatch: pytest.MonkeyPatch, name: str) -> Iterator[None]:
    """``anjian.models.registry.<name>`` fails as on a full disk; the block must raise that error."""
    with monkeypatch.context() as patched, pytest.raises(OSError, match="No space left"):
        patched.setattr(f"anjian.models.registry.{name}", _disk_full)
        yield


def _history_of(registry: Path) -> list[tuple[str, str | None]]:
    lines = (registry / "det" / "history.jsonl").read_text().splitlines()
    return [(record["action"], record["version"]) for record in map(json.loads, lines)]


def test_a_rollback_that_cannot_record_itself_leaves_the_promoted_version_in_force(
    promoted: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pointer was written first: with the disk full, a rollback was in force that the history lacked."""
    with _disk_full_in(monkeypatch, "_append_history"):
        rollback("det", root=promoted)

    assert _served("builtin:det", promoted) == "3"
    assert _history_of(promoted) == [("promote", "1"), ("promote", "2"), ("promote", "3")]
    assert rollback("det", root=promoted) == "2"


def test_a_rollback_recorded_but_never_put_in_force_is_finished_by_the_next(
    promoted: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _disk_full_in(monkeypatch, "write_atomic"):
        rollback("det", root=promoted)
    assert _served("builtin:det", promoted) == "3" and _history_of(promoted)[-1] == ("rollback", "2")
    assert earlier_promotions("det", root=promoted) == ["2", "1"]

    assert rollback("det", root=promoted) == "2"  # finishes the recorded one, not back to 1
    assert rollback("det", root=promoted) == "1"


def test_a_promotion_recorded_twice_after_its_pointer_failed_is_rolled_back_past(
    registry: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    promote("det", "1", root=registry)
    promote("det", "2", root=registry)
    with _disk_full_in(monkeypatch, "write_atomic"):
        promote("det", "3", root=registry)
    promote("det", "3", root=registry)  # tried again once there was room

    assert rollback("det", root=registry) == "2"  # not "back" to 3 itself


def test_the_default_site_registry_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ANJIAN_REGISTRY", str(tmp_path / "from-env"))
    assert default_registry() == tmp_path / "from-env"
    entry = register_version("det", stand_in_model(tmp_path, "env model"), {}, "")
    assert entry.directory == tmp_path / "from-env" / "det" / "1"
    monkeypatch.delenv("ANJIAN_REGISTRY")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert default_registry() == tmp_path / "data" / "anjian" / "registry"


def test_records_about_a_shipped_version_stay_in_the_site_registry(tmp_path: Path) -> None:
    site = tmp_path / "site"
    shipped = resolve_model_path("builtin:anjian-n", root=site)
    version = shipped.parent.name
    folder = version_record_dir("anjian-n", version, root=site)
    assert folder == site / "anjian-n" / version and not folder.is_relative_to(SHIPPED_DIR)

    meta = json.loads((folder / "meta.json").read_text())
    meta["evals"] = [{"data": "site/val", "map50": 0.5}]
    (folder / "meta.json").write_text(json.dumps(meta))
    write_card_section(folder / "card.md", "evals", "## Site evaluations\n\none table")
    write_card_section(folder / "card.md", "evals", "## Site evaluations\n\nnewer table")

    [listed] = [v for v in list_versions("anjian-n", root=site) if v.version == version]
    assert listed.meta["evals"] == [{"data": "site/val", "map50": 0.5}]
    assert listed.meta["classes"]  # the shipped meta is still there
    card = (folder / "card.md").read_text()
    assert "newer table" in card and "one table" not in card
    assert resolve_model_path("builtin:anjian-n", root=site) == shipped  # the record folder is no version


def test_watch_reports_each_promotion_once(registry: Path) -> None:
    promote("det", "3", root=registry)
    watch = PromotionWatch("builtin:det", root=registry)
    assert watch.current.parent.name == "3" and watch.poll() is None

    promote("det", "1", root=registry)
    assert watch.poll() == registry / "det" / "1" / "model.onnx"
    assert watch.poll() is None
    assert watch.current.parent.name == "3"  # until the caller has it running
    watch.accept(registry / "det" / "1" / "model.onnx")

    rollback("det", root=registry)
    assert watch.poll() == registry / "det" / "3" / "model.onnx"


def test_watch_sees_the_sites_first_promotion_over_a_shipped_model(tmp_path: Path) -> None:
    site = tmp_path / "site"  # not created yet: the site has never registered anything
    watch = PromotionWatch("builtin:anjian-n", root=site)
    assert watch.current.is_relative_to(SHIPPED_DIR)
    entry = register_version("anjian-n", stand_in_model(tmp_path, "site model"), {}, "", root=site)
    assert watch.poll() is None  # registered, not promoted
    promote("anjian-n", entry.version, root=site)
    assert watch.poll() == entry.onnx


def test_watch_of_a_fixed_version_never_changes(registry: Path) -> None:
    watch = PromotionWatch("builtin:det/2", root=registry)
    promote("det", "1", root=registry)
    assert watch.poll() is None and watch.current.parent.name == "2"


@pytest.mark.parametrize("version", ["../det/1", "²", "1 "])
def test_a_version_that_is_no_version_number_is_never_promoted(registry: Path, version: str) -> None:
    """'../det/1' named an existing folder and was written into the pointer; '²' passes str.isdigit()."""
    with pytest.raises(ModelLoadError, match="has no version"):
        promote("det", version, root=registry)
    assert not (registry / "det" / "promoted").exists()
    (registry / "det" / "²").mkdir()
    (registry / "det" / "²" / "model.onnx").write_bytes(b"x")
    assert [v.version for v in list_versions("det", root=registry)] == ["1", "2", "3"]


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("garbage", r"history\.jsonl:2: not a JSON record"),
        ("[1, 2]", r"history\.jsonl:2: expected a JSON object"),
    ],
)
def test_a_damaged_history_line_is_named_by_file_and_line(registry: Path, line: str, says: str) -> None:
    promote("det", "2", root=registry)
    with (registry / "det" / "history.jsonl").open("a") as history:
        history.write(line + "\n")
    with pytest.raises(ModelLoadError, match=says):
        rollback("det", root=registry)
