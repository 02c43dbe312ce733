"""``anjian models list | promote | rollback`` and ``eval --record`` on a site registry of their own."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from anjian.models.registry import SHIPPED_DIR, register_version, resolve_model_path
from anjian.service.cli import app

runner = CliRunner()


def _text(output: str) -> str:
    """CLI output with rich's line wrapping undone."""
    return " ".join(output.split())


@pytest.fixture
def registry(tmp_path: Path) -> Path:
    """A site registry with model 'det' versions 1 and 2 (the demo model's two versions), nothing promoted.

    Real models: a promotion loads the version and runs a test detection first.
    """
    root = tmp_path / "registry"
    for version, map50 in (("1", 0.41), ("2", 0.57)):
        source = resolve_model_path(f"builtin:anjian-demo/{version}")
        register_version(
            "det", source, {"map50": map50, "data_hash": "sha256:feedbeef"}, "# card\n", root=root
        )
    return root


def test_list_promote_rollback(registry: Path) -> None:
    reg = ["--registry", str(registry)]

    listed = runner.invoke(app, ["models", "list", "det", *reg], env={"COLUMNS": "250"})
    assert listed.exit_code == 0, listed.output
    assert "0.570" in listed.output and "sha256:feedbeef" in listed.output and "site" in listed.output

    promoted = runner.invoke(app, ["models", "promote", "det", "1", *reg])
    assert promoted.exit_code == 0 and "(none) -> 1" in promoted.output
    assert resolve_model_path("builtin:det", root=registry).parent.name == "1"

    again = runner.invoke(app, ["models", "promote", "det", "1", *reg])
    assert again.exit_code == 0, again.output
    assert "promoted already; nothing changed" in _text(again.output) and "1 -> 1" not in again.output

    scoped = runner.invoke(app, ["models", "promote", "det", "2", "--scope", "line-3", *reg])
    assert scoped.exit_code == 0 and "1 -> 2" in scoped.output
    assert resolve_model_path("builtin:det@line-3", root=registry).parent.name == "2"
    listed = runner.invoke(app, ["models", "list", "det", *reg], env={"COLUMNS": "250"})
    rows = {line.split("│")[3].strip(): line for line in listed.output.splitlines() if line.count("│") > 5}
    assert "line-3" in rows["2"] and "line-3" not in rows["1"] and "*" in rows["1"].split("│")[1]

    promoted = runner.invoke(app, ["models", "promote", "det", "2", *reg])
    back = runner.invoke(app, ["models", "rollback", "det", *reg])
    assert back.exit_code == 0 and "rolled back to 1 (from 2)" in back.output
    assert resolve_model_path("builtin:det", root=registry).parent.name == "1"


def test_list_shows_the_shipped_models_after_the_sites(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["models", "list", "--registry", str(tmp_path / "empty")], env={"COLUMNS": "250"}
    )
    assert result.exit_code == 0, result.output
    assert "anjian-n" in result.output and "shipped" in result.output
    assert "fall_hospital 0.663" in result.output  # the release's per-source figures


def test_errors_are_clean(tmp_path: Path) -> None:
    registry = tmp_path / "registry"
    (registry / "det").mkdir(parents=True)
    reg = ["--registry", str(registry)]
    assert runner.invoke(app, ["models", "promote", "det", "9", *reg]).exit_code == 2
    result = runner.invoke(app, ["models", "rollback", "det", *reg])
    assert result.exit_code == 2 and "no earlier promoted version" in _text(result.output)
    assert runner.invoke(app, ["models", "list", "nope", *reg]).exit_code == 2


def test_a_registry_that_is_a_file_is_refused_not_listed_as_empty(tmp_path: Path) -> None:
    mistaken = tmp_path / "model.onnx"  # the model's path given where the registry goes
    mistaken.write_bytes(b"onnx")
    result = runner.invoke(app, ["models", "list", "--registry", str(mistaken)])
    assert result.exit_code == 2
    assert "is a file, not a folder" in _text(result.output)


def test_the_site_config_names_the_registry(tmp_path: Path, registry: Path) -> None:
    site = tmp_path / "conf" / "site.yaml"
    site.parent.mkdir()
    site.write_text(f"model:\n  path: builtin:det\n  registry: ../{registry.name}\n")
    result = runner.invoke(app, ["models", "promote", "det", "2", "--config", str(site)])
    assert result.exit_code == 0, result.output
    assert resolve_model_path("builtin:det", root=registry).parent.name == "2"
    site.write_text("model:\n  registry: 5\n  typo: 1\n")
    result = runner.invoke(app, ["models", "list", "--config", str(site)])
    assert result.exit_code == 2 and "model.typo" in _text(result.output)


def _tiny_yolo_set(root: Path) -> Path:
    """A labelled val split of one synthetic image with one 'fire' box."""
    import cv2
    import numpy as np

    (root / "images" / "val").mkdir(parents=True)
    (root / "labels" / "val").mkdir(parents=True)
    image = np.full((240, 320, 3), 90, np.uint8)
    cv2.rectangle(image, (120, 80), (200, 180), (0, 140, 255), -1)
    cv2.imwrite(str(root / "images" / "val" / "a.jpg"), image)
    (root / "labels" / "val" / "a.txt").write_text("0 0.5 0.54 0.25 0.42\n")
    (root / "data.yaml").write_text("train: images/val\nval: images/val\nnames: [fire]\n")
    return root / "data.yaml"


def test_eval_record_puts_the_figures_into_the_versions_meta_card_and_list(tmp_path: Path) -> None:
    demo = resolve_model_path("builtin:anjian-demo")
    registry = tmp_path / "registry"
    entry = register_version("flame", demo, {}, "# flame\n", root=registry)
    data = _tiny_yolo_set(tmp_path / "set")
    reg = ["--registry", str(registry)]
    args = ["eval", "--model", f"builtin:flame/{entry.version}", "--data", str(data)]

    result = runner.invoke(app, [*args, "--record", f"flame/{entry.version}", *reg])

    assert result.exit_code == 0, result.output
    meta = json.loads((entry.directory / "meta.json").read_text())
    [evaluation] = meta["evals"]
    assert evaluation["data"] and evaluation["map50"] is not None and evaluation["classes"]
    card = (entry.directory / "card.md").read_text()
    assert card.startswith("# flame") and "## Evaluations" in card and evaluation["data"] in card
    listed = runner.invoke(app, ["models", "list", "flame", *reg], env={"COLUMNS": "250"})
    assert f"{evaluation['data']} {evaluation['map50']:.3f}" in listed.output
    assert f"{evaluation['map50']:.3f}" in listed.output.split(evaluation["data"])[0]  # the mAP50 column

    again = runner.invoke(app, [*args, "--record", f"flame/{entry.version}", *reg])
    assert again.exit_code == 0
    assert len(json.loads((entry.directory / "meta.json").read_text())["evals"]) == 1  # replaced, not added


def test_eval_record_of_a_shipped_version_goes_to_the_site_registry(tmp_path: Path) -> None:
    demo = resolve_model_path("builtin:anjian-demo")
    before = (demo.parent / "meta.json").read_text()
    site = tmp_path / "site"
    args = ["eval", "--model", str(demo), "--data", str(_tiny_yolo_set(tmp_path / "set"))]
    result = runner.invoke(
        app, [*args, "--record", f"anjian-demo/{demo.parent.name}", "--registry", str(site)]
    )
    assert result.exit_code == 0, result.output
    assert (demo.parent / "meta.json").read_text() == before and demo.is_relative_to(SHIPPED_DIR)
    overlay = json.loads((site / "anjian-demo" / demo.parent.name / "meta.json").read_text())
    assert len(overlay["evals"]) == 1


def test_eval_record_refuses_another_model(tmp_path: Path) -> None:
    demo = resolve_model_path("builtin:anjian-demo")
    registry = tmp_path / "registry"
    other = tmp_path / "other.onnx"
    other.write_bytes(b"another model")
    register_version("flame", other, {}, "# flame\n", root=registry)
    args = ["eval", "--model", str(demo), "--data", str(_tiny_yolo_set(tmp_path / "set"))]
    result = runner.invoke(app, [*args, "--record", "flame/1", "--registry", str(registry)])
    assert result.exit_code == 2 and "nothing recorded" in _text(result.output)
    bad = runner.invoke(app, [*args, "--record", "flame", "--registry", str(registry)])
    assert bad.exit_code == 2 and "NAME/VERSION" in _text(bad.output)


def test_the_cards_evaluations_name_false_alarms_of_a_class_without_boxes() -> None:
    """A class with no box in the set left the card's row: its false alarms showed nowhere."""
    from anjian.training.eval_record import evals_markdown

    record = {
        "data": "fire/val",
        "images": 10,
        "map50": 0.8,
        "map50_95": 0.5,
        "classes": [
            {"name": "fire", "instances": 12, "ap50": 0.8, "false_alarms": 1},
            {"name": "smoke", "instances": 0, "ap50": None, "false_alarms": 3},
            {"name": "person", "instances": 0, "ap50": None, "false_alarms": 0},
        ],
        "model": "m@1",
    }
    [row] = [line for line in evals_markdown([record]).splitlines() if line.startswith("| fire/val")]
    assert "fire 0.800, smoke no boxes, 3 false alarm(s) |" in row and "person" not in row
