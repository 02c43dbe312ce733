"""The anjian-n recipe end to end on a few real images per source: prepare, train, finish."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import yaml

from anjian.models.onnx_detector import OnnxDetector
from anjian.models.registry import card_sections, resolve_model_path, write_card_section
from tests.support.real_data import copy_yolo_sample

pytestmark = pytest.mark.slow


@pytest.fixture
def data_root(tmp_path: Path, coco_weights: Path) -> Path:
    """A data root with three images per split of every recipe source and the COCO teacher."""
    from anjian.training.anjian_n import SOURCES

    data_root = tmp_path / "shared"
    for name in SOURCES:
        copy_yolo_sample(name, data_root / name, per_split=3)
    (data_root / "weights").mkdir()
    (data_root / "weights" / coco_weights.name).symlink_to(coco_weights)
    return data_root


def _toy_recipe(data_root: Path, **changes: object) -> Any:
    """The recipe at toy size (1 epoch at 64 px), anjian-n 2 filling the fire videos' smoke after COCO's people."""
    from anjian.training.anjian_n import AnjianNRecipe, TeacherFill

    smoke = TeacherFill(
        teacher="builtin:anjian-n/2", classes={"smoke": "smoke"}, sources=("fire_continuous",)
    )
    recipe = AnjianNRecipe(
        data_root=data_root, epochs=1, imgsz=64, batch=4, workers=0, close_mosaic=0, teacher_fills=(smoke,)
    )
    return recipe.model_copy(update=changes)


def test_recipe_prepares_trains_and_registers_a_model_with_its_card(tmp_path: Path, data_root: Path) -> None:
    from anjian.training.anjian_n import (
        FIRE_FREE_SOURCES,
        SOURCES,
        add_fire_negatives,
        main,
        prepare,
        train,
        training_set,
    )
    from anjian.training.anjian_n_release import finish

    work = tmp_path / "work"
    recipe = _toy_recipe(data_root)

    data_yaml = prepare(work, recipe)

    data = yaml.safe_load(data_yaml.read_text())
    assert data["names"][:2] == ["person", "fallen_person"] and len(data["names"]) == 7
    assert "person" in data["labelled_classes"]["cigarette"]  # filled in by the teacher
    report = json.loads((work / "merge_report.json").read_text())
    assert {a["source"] for a in report["pseudo_labels"]["added"]} <= {
        "cigarette",
        "fire_smoke_cctv",
        "fire_continuous",
        "pallet",
    }

    # fire look-alikes mined by the shipped model go back into the set the run trains on
    folder = add_fire_negatives(work, "builtin:anjian-n/1", min_score=0.0, limit=4, copies=1)
    mined = json.loads((training_set(work).parent / "hard_negatives.json").read_text())
    assert mined["images"] == 4 == len(list(folder.iterdir()))
    assert set(mined["by_source"]) <= set(FIRE_FREE_SOURCES) | {"fire_smoke_cctv", "fire_continuous"}

    # fires seen filling the view: crops cut by the recipe's command line step, trained on below
    assert main(["zoom", "--work", str(work), "--zoom-fill", "0.5", "0.9"]) == 0
    zoomed = json.loads((training_set(work).parent / "zoom_crops_fire.json").read_text())
    assert zoomed["spec"]["fill"] == [0.5, 0.9] and set(zoomed["by_source"]) <= {
        "fire_smoke_cctv",
        "fire_continuous",
    }
    assert zoomed["images"] >= 1 and len(list(Path(zoomed["folder"]).iterdir())) == zoomed["crops"]

    best = train(work)
    assert best.is_file()
    naive = tmp_path / "naive"  # the ablation: same recipe, no teacher labels
    prepare(naive, recipe.model_copy(update={"is_pseudo_labelled": False}))
    naive_data = yaml.safe_load(training_set(naive).read_text())
    assert "person" not in naive_data["labelled_classes"]["cigarette"]
    train(naive)
    registry = tmp_path / "registry"
    onnx = finish(
        work, version="101", registry=registry, is_quantizing=False
    )  # int8: tests/training/test_quantize.py
    assert "## Ablation" not in (onnx.parent / "card.md").read_text()
    bytes_before = onnx.read_bytes()
    # records other commands made on this file survive an update (eval-events, int8)
    meta_path = onnx.parent / "meta.json"
    recorded = {"spec": "clips.yaml", "clips": 3}
    meta_path.write_text(json.dumps({**json.loads(meta_path.read_text()), "event_evals": [recorded]}))
    write_card_section(onnx.parent / "card.md", "events", "## Events\n3 clips, all caught.")
    assert finish(work, version="101", registry=registry, ablation_work=naive, is_updating=True) == onnx
    assert onnx.read_bytes() == bytes_before
    assert json.loads(meta_path.read_text())["event_evals"] == [recorded]
    assert card_sections(onnx.parent / "card.md") == {"events": "## Events\n3 clips, all caught."}
    # an update that does not give the ablation again keeps the one measured before
    finish(work, version="101", registry=registry, is_updating=True)
    assert set(json.loads(meta_path.read_text())["ablation"]) == set(SOURCES)

    assert resolve_model_path("builtin:anjian-n", root=registry) == onnx
    detector = OnnxDetector(onnx)
    assert detector.version.startswith("anjian-n@") and detector.info.input_hw == (64, 64)
    meta = json.loads((onnx.parent / "meta.json").read_text())
    assert set(meta["val"]) == set(SOURCES) and meta["data_hash"].startswith("sha256:")
    assert set(meta["teacher_person"]) == {"fall_hospital", "forklift_person"}
    card = (onnx.parent / "card.md").read_text()
    assert "CC BY 4.0" in card and "| cigarette | person (pseudo GT) |" in card and "AGPL-3.0" in card
    assert (
        "- `builtin:anjian-n/2` filled `smoke` in `fire_continuous` (score ≥ 0.5; *pseudo GT* below)." in card
    )
    assert meta["pseudo_classes"]["fire_continuous"] == ["person", "smoke"]
    added = json.loads((work / "merge_report.json").read_text())["pseudo_labels"]["added"]
    assert meta["pseudo_person_boxes"] == sum(a["boxes"] for a in added if a["class"] == "person")
    # what the optional steps added to the training set is on the card
    assert "- Augmentation (ultralytics): hsv_h 0.015, hsv_s 0.5, hsv_v 0.4, mosaic 1, scale 0.5." in card
    assert "- `fire_hard_negatives`: 4 hard-negative images" in card
    assert f"- `fire_zoom`: {zoomed['crops']} zoomed crops in which the box fills 50%-90% of the view" in card
    assert meta["derived_sources"]["fire_zoom"]["images"] == zoomed["crops"]
    assert (work / "export" / "model-fp16.onnx").is_file()
    assert "## Ablation: the unlabelled people" in card and set(meta["ablation"]) == set(SOURCES)
    # calibrated operating thresholds travel in the model file (a 1-epoch toy may have none)
    thresholds = {name: c["threshold"] for name, c in meta["thresholds"].items()}
    assert OnnxDetector(onnx).class_thresholds == thresholds


def test_held_out_sources_stay_out_of_training_and_are_scored_whole(tmp_path: Path, data_root: Path) -> None:
    from anjian.training.anjian_n import prepare, train, training_set
    from anjian.training.anjian_n_crosseval import crosseval

    work = tmp_path / "work"
    recipe = _toy_recipe(data_root, holdout=("fall_hospital", "fire_smoke_cctv"))

    prepare(work, recipe)

    trained = yaml.safe_load(training_set(work).read_text())
    assert not {"fall_hospital", "fire_smoke_cctv"} & set(trained["labelled_classes"])
    # the second teacher ran after the people: the fire videos' smoke is labelled, the people still are
    assert training_set(work).parent.name == "data-fill1"
    assert {"person", "fire", "smoke"} <= set(trained["labelled_classes"]["fire_continuous"])
    assert "smoke" not in trained["labelled_classes"]["cigarette"]
    bad_fill = recipe.teacher_fills[0].model_copy(update={"sources": ("no_such_set",)})
    with pytest.raises(ValueError, match="teacher fill names sources"):
        prepare(tmp_path / "bad-fill", recipe.model_copy(update={"teacher_fills": (bad_fill,)}))
    held = yaml.safe_load((work / "holdout" / "data.yaml").read_text())
    assert set(held["labelled_classes"]) == {"fall_hospital", "fire_smoke_cctv"}
    with pytest.raises(ValueError, match="not among the sources"):
        prepare(tmp_path / "bad", recipe.model_copy(update={"holdout": ("no_such_set",)}))

    train(work)
    result = json.loads(crosseval(work, baseline="builtin:anjian-n").read_text())

    run = result["models"]["run"]
    assert set(run) == {"fall_hospital", "fire_smoke_cctv"}
    assert run["fall_hospital"]["images"] == 6  # every image of the source: train and val
    fire_classes = {c["name"] for c in run["fire_smoke_cctv"]["classes"]}
    assert fire_classes == {"fire", "smoke"}  # only what that source labels
    assert set(result["models"]["teacher"]) == {"fall_hospital"}  # the teacher knows no fire
    # and the teacher again at the run's input size (64 here): what of the gap is the input size's
    assert set(result["models"]["teacher_at_run_size"]) == {"fall_hospital"}
    assert result["models"]["teacher_at_run_size"] != result["models"]["teacher"]
    assert "| fall_hospital | person |" in (work / "crosseval.md").read_text()
    # image-level figures at the operating score: every image counts once per class, found <= showing it
    seen = run["fire_smoke_cctv"]["images_at_operating_score"]
    assert seen["score"] == 0.35 and set(seen["classes"]) == {"fire", "smoke"}
    for row in seen["classes"].values():
        assert row["with"] + row["without"] == run["fire_smoke_cctv"]["images"]
        assert 0 <= row["found"] <= row["with"] and 0 <= row["false_alarms"] <= row["without"]
        assert math.isnan(row["image_ap"]) if not row["with"] else 0 <= row["image_ap"] <= 1
    table = (work / "crosseval.md").read_text()
    assert (
        "| COCO teacher | COCO teacher at 64 | image AP: run / builtin:anjian-n | run: found at 0.35 |"
        in table
    )

    # a second variant against the same held-out set pays only for its own model: the references are reused
    cached = sorted((work / "holdout" / ".reference_scores").glob("*.json"))
    assert len(cached) == 3  # the baseline, the teacher, the teacher at the run's input size
    [resized] = (work / "holdout" / ".reference_scores").glob("teacher-*-64.onnx")
    resized_stamp = resized.stat().st_mtime_ns
    stamps = [p.stat().st_mtime_ns for p in cached]
    again = json.loads(crosseval(work, baseline="builtin:anjian-n").read_text())
    assert again["models"]["baseline"] == result["models"]["baseline"]
    assert again["models"]["teacher"] == result["models"]["teacher"]
    assert again["models"]["teacher_at_run_size"] == result["models"]["teacher_at_run_size"]
    assert resized.stat().st_mtime_ns == resized_stamp  # exported once
    assert [p.stat().st_mtime_ns for p in cached] == stamps

    # screening mid-run: the best weights as they are now, scored into W/snapshots/epoch-N; the run's own files stay
    before = (work / "crosseval.json").read_text()
    snapshot = crosseval(work, is_snapshot=True)
    assert snapshot == work / "snapshots" / "epoch-1" / "crosseval.json"
    assert (snapshot.parent / "best.pt").is_file() and (snapshot.parent / "crosseval.md").is_file()
    snap_run = json.loads(snapshot.read_text())["models"]["run"]
    for source, report in again["models"]["run"].items():  # the same weights give the same figures
        assert snap_run[source]["classes"] == report["classes"]
    assert (work / "crosseval.json").read_text() == before
