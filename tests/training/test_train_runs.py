"""``anjian train`` never lands a new run on an old one unless told to; ``--resume`` still continues."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from anjian.service.cli import app
from anjian.training.train import TrainConfig, TrainRun, prepare_new_run, train_detector

runner = CliRunner()


def _text(output: str) -> str:
    """CLI output with rich's line wrapping undone."""
    return " ".join(output.split())


def _old_run(run_dir: Path) -> dict[str, object]:
    """A finished run's files: record, weights, results.csv."""
    record = {"started_at": "2026-11-20T08:00:00+00:00", "epochs": [{"epoch": 1.0}], "is_finished": True}
    (run_dir / "weights").mkdir(parents=True)
    (run_dir / "anjian_train.json").write_text(json.dumps(record))
    for name in ("weights/best.pt", "weights/last.pt", "results.csv"):
        (run_dir / name).write_text(f"old {name}")
    return record


def test_a_new_run_refuses_to_replace_an_existing_one(tmp_path: Path) -> None:
    record = _old_run(tmp_path / "runs" / "site")
    config = TrainConfig(data=tmp_path / "data.yaml", model="init.pt", project=tmp_path / "runs", name="site")

    with pytest.raises(FileExistsError, match=r"holds a training run already .*2026-11-20.*--overwrite"):
        train_detector(config)

    assert json.loads((tmp_path / "runs" / "site" / "anjian_train.json").read_text()) == record
    assert (tmp_path / "runs" / "site" / "weights" / "best.pt").read_text() == "old weights/best.pt"


def test_overwrite_deletes_the_old_run_first(tmp_path: Path) -> None:
    run_dir = tmp_path / "runs" / "site"
    _old_run(run_dir)
    prepare_new_run(run_dir, overwrite=True)
    assert not run_dir.exists()


@pytest.mark.parametrize(
    "files", [(), ("init.pt", "init.yaml")], ids=["no-folder", "only-a-starting-checkpoint"]
)
def test_a_folder_without_a_run_is_free(tmp_path: Path, files: tuple[str, ...]) -> None:
    run_dir = tmp_path / "site"
    for name in files:
        run_dir.mkdir(exist_ok=True)
        (run_dir / name).write_text("x")
    prepare_new_run(run_dir)  # no error
    assert all((run_dir / name).is_file() for name in files)


def test_cli_refuses_a_reused_name_and_says_what_to_do(tmp_path: Path) -> None:
    _old_run(tmp_path / "runs" / "site")
    args = ["train", "--data", str(tmp_path / "data.yaml"), "--model", "start.pt"]
    result = runner.invoke(app, [*args, "--project", str(tmp_path / "runs"), "--name", "site"])
    assert result.exit_code == 2
    text = _text(result.output)
    assert "holds a training run already" in text and "--resume" in text and "--overwrite" in text
    assert (tmp_path / "runs" / "site" / "weights" / "last.pt").read_text() == "old weights/last.pt"


def test_cli_resume_continues_the_existing_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_dir = tmp_path / "runs" / "site"
    _old_run(run_dir)
    calls: list[tuple[TrainConfig, bool]] = []

    def fake_train(config: TrainConfig, *, resume: bool = False, **_: object) -> TrainRun:
        calls.append((config, resume))
        return TrainRun(run_dir, run_dir / "weights/best.pt", run_dir / "weights/last.pt", run_dir, True)

    monkeypatch.setattr("anjian.training.train.train_detector", fake_train)
    result = runner.invoke(app, ["train", "--project", str(tmp_path / "runs"), "--name", "site", "--resume"])
    assert result.exit_code == 0, result.output
    assert [(c.name, r) for c, r in calls] == [("site", True)]


def test_cli_coco_start_without_the_weights_names_the_option(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "coco.onnx"
    args = ["train", "--data", str(tmp_path / "data.yaml"), "--coco", str(missing)]
    result = runner.invoke(app, [*args, "--project", str(tmp_path / "runs")])
    assert result.exit_code == 2
    assert str(missing) in result.output.replace("\n", "") and "--coco PATH" in _text(result.output)


def test_the_default_coco_weights_do_not_depend_on_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from anjian.training.finetune_init import DEFAULT_COCO_ONNX
    from tests.support.real_data import require_shared_data

    shared = require_shared_data("weights", "coco_yolov8n_int8.onnx")
    monkeypatch.chdir(tmp_path)
    assert DEFAULT_COCO_ONNX.is_absolute() and DEFAULT_COCO_ONNX.is_file()
    assert DEFAULT_COCO_ONNX.samefile(shared)
