"""The registry under damage and contention: a promoted folder deleted by hand, promotions at once,
registrations killed mid-way."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import shutil
import time
from pathlib import Path

import pytest

from anjian.models.errors import ModelLoadError
from anjian.models.registry import (
    PromotionWatch,
    dangling_pointers,
    earlier_promotions,
    list_versions,
    promote,
    promoted_version,
    register_version,
    resolve_model_path,
    undo_promotion,
)
from tests.models.conftest import stand_in_model

MISSING = r"promoted version 2 of det is missing \(folder deleted\?\): promote another or restore it"


def test_a_promoted_version_deleted_by_hand_is_an_error_not_a_fall_back(registry: Path) -> None:
    promote("det", "1", root=registry)
    promote("det", "2", root=registry)
    shutil.rmtree(registry / "det" / "2")

    with pytest.raises(ModelLoadError, match=MISSING):
        promoted_version("det", root=registry)
    with pytest.raises(ModelLoadError, match=MISSING):
        resolve_model_path("builtin:det", root=registry)
    with pytest.raises(
        ModelLoadError, match=MISSING
    ):  # a scope following the model does not fall back either
        resolve_model_path("builtin:det@cam-7", root=registry)
    assert (
        resolve_model_path("builtin:det/1", root=registry).parent.name == "1"
    )  # a pinned version still does
    assert dangling_pointers("det", root=registry) == {None: "2"}
    assert not any(v.is_promoted for v in list_versions("det", root=registry))  # no other version "in force"


def test_a_deleted_promoted_version_of_a_shipped_model_does_not_fall_back_to_the_shipped_one(
    tmp_path: Path,
) -> None:
    site = tmp_path / "site"
    entry = register_version("anjian-demo", stand_in_model(tmp_path, "site demo"), {}, "", root=site)
    promote("anjian-demo", entry.version, root=site)
    shutil.rmtree(entry.directory)

    with pytest.raises(ModelLoadError, match=rf"promoted version {entry.version} of anjian-demo is missing"):
        resolve_model_path("builtin:anjian-demo", root=site)
    assert not any(v.is_promoted for v in list_versions("anjian-demo", root=site))


def test_a_scope_pointer_to_a_deleted_version_does_not_follow_the_model(registry: Path) -> None:
    promote("det", "1", root=registry)
    promote("det", "2", scope="cam-7", root=registry)
    shutil.rmtree(registry / "det" / "2")

    with pytest.raises(ModelLoadError, match=r"promoted version 2 of det@cam-7 is missing"):
        resolve_model_path("builtin:det@cam-7", root=registry)
    assert resolve_model_path("builtin:det", root=registry).parent.name == "1"
    assert dangling_pointers("det", root=registry) == {"cam-7": "2"}


def test_promoting_or_rolling_back_repairs_a_dangling_pointer(registry: Path) -> None:
    promote("det", "1", root=registry)
    promote("det", "2", root=registry)
    shutil.rmtree(registry / "det" / "2")

    undone = undo_promotion("det", root=registry)
    assert (undone.version, undone.previous) == ("1", "2")
    with pytest.raises(ModelLoadError, match="has no version '2'"):
        promote("det", "2", root=registry)
    promotion = promote("det", "3", root=registry)
    assert promotion.previous == "1" and resolve_model_path("builtin:det", root=registry).parent.name == "3"


def test_the_watch_keeps_the_model_in_use_and_logs_when_its_promoted_folder_is_deleted(
    registry: Path, caplog: pytest.LogCaptureFixture
) -> None:
    promote("det", "1", root=registry)
    promote("det", "2", root=registry)
    watch = PromotionWatch("builtin:det", root=registry)
    assert watch.current.parent.name == "2"
    shutil.rmtree(registry / "det" / "2")

    with caplog.at_level(logging.ERROR, logger="anjian.models.registry"):
        assert watch.poll() is None  # no swap to version 1 (the old fall-back)
    assert "builtin:det no longer resolves, keeping the model in use" in caplog.text
    assert "promoted version 2 of det is missing" in caplog.text
    assert watch.current.parent.name == "2"

    promote("det", "3", root=registry)
    assert watch.poll() == registry / "det" / "3" / "model.onnx"  # a new promotion is picked up


def _promote_in_rounds(root: str, version: str, rounds: int, barrier: object, results: object) -> None:
    """Worker process: promote ``version`` once per round, at the same time as the other worker."""
    for _ in range(rounds):
        barrier.wait()  # type: ignore[attr-defined]
        done = promote("det", version, root=Path(root))
        results.put((version, done.previous, done.is_changed))  # type: ignore[attr-defined]
        barrier.wait()  # type: ignore[attr-defined]
        barrier.wait()  # type: ignore[attr-defined]  # the parent checks and resets


def test_two_promotions_at_once_end_consistent_and_each_reports_what_it_replaced(registry: Path) -> None:
    rounds = 12
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(3), context.Queue()
    workers = [
        context.Process(target=_promote_in_rounds, args=(str(registry), v, rounds, barrier, results))
        for v in ("2", "3")
    ]
    promote("det", "1", root=registry)
    for worker in workers:
        worker.start()
    try:
        for _ in range(rounds):
            barrier.wait(timeout=60)
            barrier.wait(timeout=60)
            pointer = (registry / "det" / "promoted").read_text().strip()
            history = [
                json.loads(line) for line in (registry / "det" / "history.jsonl").read_text().splitlines()
            ]
            reported = {results.get(timeout=10)[:2], results.get(timeout=10)[:2]}
            assert pointer == history[-1]["version"]  # the pointer is the last promotion recorded
            last, before = history[-1], history[-2]
            assert reported == {(before["version"], "1"), (last["version"], before["version"])}
            assert (last["previous"], before["previous"]) == (before["version"], "1")
            promote("det", "1", root=registry)  # the next round starts from 1 again
            barrier.wait(timeout=60)
    except BaseException:
        barrier.abort()  # a failed round: release the workers waiting for it
        raise
    finally:
        for worker in workers:
            worker.join(timeout=60)
            if worker.is_alive():
                worker.kill()
    assert all(worker.exitcode == 0 for worker in workers)


def _age(path: Path, seconds: float) -> None:
    """Set ``path``'s modification time ``seconds`` into the past."""
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_registering_removes_staging_folders_left_by_a_registration_that_died(
    registry: Path, tmp_path: Path
) -> None:
    model_dir = registry / "det"
    stale, fresh = model_dir / ".tmp-dead1234", model_dir / ".tmp-busy5678"
    for folder in (stale, fresh):
        folder.mkdir()
        (folder / "model.onnx").write_bytes(b"x" * 1000)
    _age(stale, 2 * 3600)
    _age(fresh, 60)  # a registration under way in another process

    register_version("det", stand_in_model(tmp_path, "model 4"), {}, "", root=registry)

    assert not stale.exists()
    assert (fresh / "model.onnx").is_file()
    assert sorted(p.name for p in model_dir.iterdir() if p.is_dir()) == [".tmp-busy5678", "1", "2", "3", "4"]


def test_earlier_promotions_are_what_rollbacks_would_serve_newest_first_and_only_those_still_there(
    registry: Path,
) -> None:
    for version in ("1", "2", "3"):
        promote("det", version, root=registry)
    assert earlier_promotions("det", root=registry) == ["2", "1"]
    shutil.rmtree(registry / "det" / "2")
    assert earlier_promotions("det", root=registry) == ["1"]
