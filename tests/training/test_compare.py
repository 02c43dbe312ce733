"""Side-by-side comparison of two models: pairing, signs, the registry record, promote, the CLI."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from anjian.models.registry import SHIPPED_DIR, list_versions, register_version, resolve_model_path
from anjian.service.cli import app
from anjian.training.compare import Comparison, DataComparison, ModelRef, compare_reports
from anjian.training.comparison_record import (
    comparison_for_promotion,
    find_comparison,
    record_comparison,
    registry_version_of,
)
from anjian.training.evaluate import ClassResult, EvalReport
from tests.support.real_data import copy_yolo_sample

runner = CliRunner()


def _row(name: str, ap50: float, *, instances: int = 10, p: float = 0.5) -> ClassResult:
    return ClassResult(name, (name,), 5, instances, p, 0.4, ap50, ap50 / 2, 0.3)


def _report(model: str, *rows: ClassResult, data: str = "site/val", images: int = 20) -> EvalReport:
    return EvalReport(model=model, data=data, images=images, classes=rows)


def _comparison(a: ModelRef, b: ModelRef, *data: DataComparison) -> Comparison:
    return Comparison(a, b, data, "2026-01-01T00:00:00+00:00", {"split": "val"})


NEW = ModelRef("builtin:det/2", "det@2222", "det", "2")
OLD = ModelRef("builtin:det/1", "det@1111", "det", "1")


def test_rows_pair_by_class_and_differences_are_this_minus_other() -> None:
    a = _report("det@2", _row("fire", 0.8), _row("smoke", 0.5), _row("person", 0.7, instances=0))
    b = _report("det@1", _row("fire", 0.6), _row("smoke", 0.55), _row("forklift", 0.4))

    d = compare_reports(a, b, path="site/data.yaml", data_hash="sha256:ab", data_version="site-1")

    rows = {c.name: c for c in d.classes}
    assert [c.name for c in d.classes] == ["fire", "smoke", "person", "forklift"]
    assert rows["fire"].delta("ap50") == pytest.approx(0.2)
    assert rows["smoke"].delta("ap50") == pytest.approx(-0.05)
    assert rows["forklift"].a is None and math.isnan(rows["forklift"].delta("ap50"))
    # the means only cover classes both models score and that have ground truth (fire, smoke)
    assert d.common_mean("ap50", "a") == pytest.approx(0.65)
    assert d.common_mean("ap50", "b") == pytest.approx(0.575)
    back = d.swapped()
    assert {c.name: c for c in back.classes}["fire"].delta("ap50") == pytest.approx(-0.2)
    assert DataComparison.from_dict(json.loads(json.dumps(d.to_dict()))) == d


def test_reports_of_different_data_are_not_compared() -> None:
    with pytest.raises(ValueError, match="different data"):
        compare_reports(_report("a", _row("fire", 0.5)), _report("b", _row("fire", 0.5), data="other/val"))
    with pytest.raises(ValueError, match="neither model"):
        compare_reports(None, None)


def test_a_model_without_the_data_classes_shows_as_missing() -> None:
    d = compare_reports(None, _report("det@1", _row("cigarette", 0.3)))
    [row] = d.classes
    assert row.a is None and row.b is not None and row.b.ap50 == 0.3


def _version(registry: Path, name: str, source: Path, card: str = "# card\n") -> Path:
    return register_version(name, source, {"map50": 0.5}, card, root=registry).directory


def test_a_recorded_comparison_lands_in_meta_and_card_and_a_rerun_replaces_it(tmp_path: Path) -> None:
    model = tmp_path / "m.onnx"
    model.write_bytes(b"not really a model")
    registry = tmp_path / "registry"
    _version(registry, "det", model, "# det 1\n\nHand-written notes.\n")
    v2 = _version(registry, "det", model, "# det 2\n\nHand-written notes.\n")
    first = compare_reports(_report("det@2", _row("fire", 0.8)), _report("det@1", _row("fire", 0.6)))
    assert record_comparison("det", "2", _comparison(NEW, OLD, first), root=registry) == v2
    second = compare_reports(_report("det@2", _row("fire", 0.9)), _report("det@1", _row("fire", 0.6)))
    record_comparison("det", "2", _comparison(NEW, OLD, second), root=registry)

    meta = json.loads((v2 / "meta.json").read_text())
    assert meta["map50"] == 0.5  # the rest of the meta is kept
    [stored] = meta["comparisons"]  # the rerun replaced the first record
    assert stored["against"]["registry_version"] == "1"
    assert stored["data"][0]["classes"][0]["delta"]["ap50"] == pytest.approx(0.3)
    card = (v2 / "card.md").read_text()
    assert card.startswith("# det 2\n\nHand-written notes.\n")
    assert card.count("## Comparisons") == 1 and "### vs det/1" in card
    assert "| fire | 10 | 0.900 | 0.600 | +0.300 |" in card

    found = find_comparison(meta, "det", "1")
    assert found is not None and found.data[0].classes[0].delta("ap50") == pytest.approx(0.3)
    assert find_comparison(meta, "det", "3") is None
    promoted = comparison_for_promotion("det", "2", "1", root=registry)
    assert promoted is not None and promoted.b.label == "det/1"
    assert comparison_for_promotion("det", "2", None, root=registry) is None
    assert comparison_for_promotion("det", "1", "2", root=registry) is None  # never recorded on 1


def test_registry_versions_are_recognised_from_builtin_specs_and_paths(tmp_path: Path) -> None:
    model = tmp_path / "m.onnx"
    model.write_bytes(b"x")
    registry = tmp_path / "registry"
    folder = _version(registry, "det", model)
    assert registry_version_of("builtin:det/1", root=registry) == ("det", "1", folder.resolve())
    assert registry_version_of(str(folder / "model.onnx"), root=registry) == ("det", "1", folder.resolve())
    assert registry_version_of(str(model), root=registry) is None
    assert registry_version_of("builtin:nope", root=registry) is None


@pytest.mark.slow
def test_compare_cli_scores_both_models_on_two_sets_records_and_promote_shows_it(tmp_path: Path) -> None:
    """Two real registry versions (the demo model and anjian-n) on real fire and cigarette images."""
    fire = copy_yolo_sample("fire_smoke_cctv", tmp_path / "fire", per_split=4)
    cigarette = copy_yolo_sample("cigarette", tmp_path / "cig", per_split=4)
    registry = tmp_path / "registry"
    _version(registry, "det", resolve_model_path("builtin:anjian-demo/1"))
    _version(registry, "det", resolve_model_path("builtin:anjian-n"))
    reg = ["--registry", str(registry)]
    assert runner.invoke(app, ["models", "promote", "det", "1", *reg]).exit_code == 0
    out = tmp_path / "cmp.json"

    result = runner.invoke(
        app,
        ["models", "compare", "builtin:det/2", "builtin:det/1", "--data", str(fire)]
        + ["--data", str(cigarette), "--json", str(out), *reg],
        env={"COLUMNS": "120", "ANJIAN_DATASET_VERSIONS": str(tmp_path / "versions.json")},
    )

    assert result.exit_code == 0, result.output
    assert "A = det/2, B = det/1 on fire/val (4 images)" in result.output
    assert "cigarette" in result.output and "recorded with det/2" in result.output
    payload = json.loads(out.read_text())
    fire_rows = {c["name"]: c for c in payload["data"][0]["classes"]}
    assert set(fire_rows) == {"fire", "smoke"}
    assert fire_rows["fire"]["delta"]["ap50"] == pytest.approx(
        fire_rows["fire"]["self"]["ap50"] - fire_rows["fire"]["other"]["ap50"], abs=2e-4
    )
    cig_rows = {c["name"]: c for c in payload["data"][1]["classes"]}
    assert cig_rows["cigarette"]["other"] is None  # the demo model has no cigarette class
    v1_meta = json.loads((registry / "det" / "1" / "meta.json").read_text())
    [seen_from_v1] = v1_meta["comparisons"]
    assert seen_from_v1["against"]["registry_version"] == "2"
    assert seen_from_v1["data"][0]["classes"][0]["delta"]["ap50"] == pytest.approx(
        -fire_rows["fire"]["delta"]["ap50"], abs=2e-4
    )
    assert "### vs det/1" in (registry / "det" / "2" / "card.md").read_text()

    promoted = runner.invoke(app, ["models", "promote", "det", "2", *reg], env={"COLUMNS": "120"})
    assert promoted.exit_code == 0, promoted.output
    assert "A = det/2, B = det/1 on fire/val" in promoted.output and "A - B" in promoted.output


def test_promote_without_a_comparison_says_how_to_make_one(tmp_path: Path) -> None:
    model = resolve_model_path("builtin:anjian-demo")  # a real model: promote loads and tries it first
    registry = tmp_path / "registry"
    _version(registry, "det", model)
    _version(registry, "det", model)
    reg = ["--registry", str(registry)]
    assert runner.invoke(app, ["models", "promote", "det", "1", *reg]).exit_code == 0
    result = runner.invoke(app, ["models", "promote", "det", "2", *reg], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "never compared" in result.output
    assert "anjian models compare builtin:det/2 builtin:det/1" in result.output


def test_compare_cli_errors_are_clean(tmp_path: Path) -> None:
    registry = tmp_path / "registry"
    _version(registry, "det", resolve_model_path("builtin:anjian-demo/1"))
    reg = ["--registry", str(registry)]
    same = runner.invoke(app, ["models", "compare", "builtin:det/1", "builtin:det/1", "--data", "x", *reg])
    assert same.exit_code == 2 and "same registry version" in same.output
    missing = runner.invoke(
        app, ["models", "compare", "builtin:det/1", "builtin:nope", "--data", os.devnull, *reg]
    )
    assert missing.exit_code == 2 and "nope" in missing.output


def test_a_comparison_with_a_shipped_version_is_kept_in_the_site_registry(tmp_path: Path) -> None:
    registry = tmp_path / "site"
    shipped_meta = (SHIPPED_DIR / "anjian-n" / "1" / "meta.json").read_bytes()
    shipped_card = (SHIPPED_DIR / "anjian-n" / "1" / "card.md").read_bytes()
    mine = ModelRef("builtin:anjian-n/1", "anjian-n@1", "anjian-n", "1")
    other = ModelRef("coco.onnx", "coco@83de", None, None)
    data = compare_reports(
        _report("anjian-n@1", _row("person", 0.69)), _report("coco@83de", _row("person", 0.40))
    )

    folder = record_comparison("anjian-n", "1", _comparison(mine, other, data), root=registry)

    assert folder == registry / "anjian-n" / "1"
    assert (SHIPPED_DIR / "anjian-n" / "1" / "meta.json").read_bytes() == shipped_meta
    assert (SHIPPED_DIR / "anjian-n" / "1" / "card.md").read_bytes() == shipped_card
    assert "### vs coco.onnx" in (folder / "card.md").read_text()
    [version] = [v for v in list_versions("anjian-n", root=registry) if v.version == "1"]
    assert version.meta["comparisons"][0]["against"]["spec"] == "coco.onnx"  # merged into the version's meta
    assert version.meta["val"]  # the shipped figures are still there
