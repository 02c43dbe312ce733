"""``anjian train --resume`` continues in the folder it is given and never starts over; a start that cannot train is refused first.

Real tiny trainings (64-pixel input, batch 2, a few real images): a run moved to another
folder after its first epoch, a run stopped in ultralytics' closing validation, and a set
ultralytics refuses. The rest needs no training.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from anjian.datasets.classmap import load_class_map
from anjian.datasets.merge import merge_sets
from anjian.datasets.yolo import load_yolo_set, write_yolo_set
from anjian.service.cli import app
from anjian.training.train import TrainConfig, check_training_set, prepare_new_run, train_detector
from tests.support.real_data import copy_yolo_sample
from tests.training.conftest import tiny_train_config

ANJIAN_MAP = Path(__file__).resolve().parents[2] / "datasets" / "maps" / "anjian.yaml"


class _Interrupted(Exception):
    """Stands for Ctrl-C (or the session ending) in the middle of training."""


def _text(output: str) -> str:
    """CLI output with rich's line wrapping undone."""
    return " ".join(output.split())


def _sample_set(tmp_path: Path, out: Path) -> tuple[Path, tuple[str, ...]]:
    """A few real images merged as ``anjian train`` gets them; returns its data.yaml and class names."""
    sample = load_yolo_set(copy_yolo_sample("forklift_person", tmp_path / "sample", per_split=2))
    merged, _ = merge_sets([sample], load_class_map(ANJIAN_MAP))
    return write_yolo_set(merged, out, by_source=True), merged.class_names


def _sample_run(
    tmp_path: Path, coco_weights: Path, folder: Path, project: Path, **overrides: object
) -> TrainConfig:
    """A tiny run ``site`` in ``project`` from the COCO weights, on ``_sample_set`` (its set and init in ``folder``)."""
    from anjian.training.finetune_init import build_finetune_checkpoint

    data, names = _sample_set(tmp_path, folder / "data")
    init = build_finetune_checkpoint(coco_weights, names, folder / "init.pt")
    return tiny_train_config(data, init, project, "site", **overrides)


def _train_until_interrupted(config: TrainConfig, at_epoch: int) -> None:
    """Train ``config`` and stop it as Ctrl-C would once ultralytics reports epoch ``at_epoch`` ended."""

    def stop(epoch: int) -> None:
        if epoch == at_epoch:
            raise _Interrupted

    with pytest.raises(_Interrupted):
        train_detector(config, on_epoch_end=stop)


def _empty_val_set(root: Path) -> Path:
    """A set with two train images and an empty val folder (what a split of too few groups writes)."""
    for split, stems in (("train", ("a", "b")), ("val", ())):
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        for stem in stems:
            (root / "images" / split / f"{stem}.jpg").write_bytes(b"\xff\xd8\xff")
            (root / "labels" / split / f"{stem}.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    (root / "data.yaml").write_text("train: images/train\nval: images/val\nnames: [person]\n")
    return root / "data.yaml"


@pytest.mark.slow
def test_resume_of_a_moved_run_trains_in_the_folder_it_is_given(
    tmp_path: Path, coco_weights: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run copied off a GPU machine or renamed: ultralytics kept training in the old path (recreating it)."""
    monkeypatch.chdir(tmp_path)
    old = tmp_path / "gpu-box" / "runs" / "site"
    # the set lies inside the run folder, as the teacher-completed copy `anjian train` writes does
    config = _sample_run(tmp_path, coco_weights, old, old.parent, close_mosaic=0)
    _train_until_interrupted(config, at_epoch=1)  # stopped after the first epoch
    new = tmp_path / "analyst" / "runs" / "site-copy"
    new.parent.mkdir(parents=True)
    shutil.move(old, new)
    shutil.rmtree(tmp_path / "gpu-box")

    run = train_detector(
        TrainConfig(data=Path("unused"), model="unused", project=new.parent, name=new.name), resume=True
    )

    assert not (tmp_path / "gpu-box").exists(), "ultralytics trained in the folder the run was started in"
    assert run.run_dir == new.resolve() and run.best.is_file() and run.note is None
    record = json.loads(run.record.read_text())
    assert record["is_finished"] and [int(e["epoch"]) for e in record["epochs"]] == [1, 2]
    assert any("started in" in note and "gpu-box" in note for note in record["notes"])
    import torch

    args = torch.load(run.last, map_location="cpu", weights_only=False)["train_args"]
    assert (args["project"], args["name"]) == (str(new.parent.resolve()), new.name)
    assert args["data"] == str(new.resolve() / "data" / "data.yaml")


@pytest.mark.slow
def test_resume_of_a_run_stopped_in_its_final_validation_says_it_finished_and_starts_nothing(
    tmp_path: Path, coco_weights: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ultralytics strips last.pt before its closing validation: resuming it started a new 100-epoch run on coco8."""
    monkeypatch.chdir(tmp_path)
    config = _sample_run(tmp_path, coco_weights, tmp_path, tmp_path / "runs", epochs=1, close_mosaic=0)
    # stopped in its final validation: ultralytics' validation of best.pt after the last epoch
    # reports as epoch epochs + 1
    _train_until_interrupted(config, at_epoch=2)
    record_path = tmp_path / "runs" / "site" / "anjian_train.json"
    assert not json.loads(record_path.read_text())["is_finished"]
    last_pt = (tmp_path / "runs" / "site" / "weights" / "last.pt").read_bytes()

    result = CliRunner().invoke(
        app, ["train", "--project", str(tmp_path / "runs"), "--name", "site", "--resume"]
    )

    assert result.exit_code == 0, result.output
    text = _text(result.output)
    assert "nothing to resume" in text and "trained its last epoch" in text
    assert str(tmp_path / "runs" / "site" / "weights" / "best.pt") in result.output.replace("\n", "")
    record = json.loads(record_path.read_text())
    assert record["is_finished"] and len(record["epochs"]) == 1
    assert (tmp_path / "runs" / "site" / "weights" / "last.pt").read_bytes() == last_pt
    assert not (tmp_path / "datasets").exists(), "ultralytics looked for coco8 (a new run on its defaults)"
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["site"], "no new run was started"


@pytest.mark.slow
def test_a_set_ultralytics_refuses_is_named_and_the_failed_start_does_not_hold_the_name(
    tmp_path: Path, coco_weights: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ultralytics wraps what its own dataset check finds in a RuntimeError: a traceback, and the name was taken."""
    from anjian.training.ultralytics_env import offline_ultralytics

    monkeypatch.chdir(tmp_path)
    config = _sample_run(tmp_path, coco_weights, tmp_path, tmp_path / "runs")
    offline_ultralytics()
    from ultralytics.engine import trainer

    def refuse(path: object, **_: object) -> None:
        raise SyntaxError(f"{path} 'names' length 7 and 'nc: 8' must match.")

    monkeypatch.setattr(trainer, "check_det_dataset", refuse)  # what ultralytics finds and anjian does not

    with pytest.raises(
        ValueError, match=r"ultralytics cannot train on the set: Dataset .*'nc: 8' must match"
    ):
        train_detector(config)

    prepare_new_run(tmp_path / "runs" / "site")  # the record of the failed start holds no run


def test_train_refuses_a_set_without_val_images_before_writing_anything(tmp_path: Path) -> None:
    data = _empty_val_set(tmp_path / "set")

    with pytest.raises(ValueError, match=r"the val split holds no image"):
        check_training_set(data)
    result = CliRunner().invoke(
        app,
        ["train", "--data", str(data), "--model", "start.pt", "--no-teacher"]
        + ["--project", str(tmp_path / "runs"), "--name", "noval"],
    )
    assert result.exit_code == 2, result.output
    text = _text(result.output)
    assert "the val split holds no image" in text and "anjian dataset split" in text
    assert "Traceback" not in result.output and not (tmp_path / "runs").exists()

    config = TrainConfig(data=data, model="start.pt", project=tmp_path / "runs", name="noval")
    with pytest.raises(ValueError, match=r"the val split holds no image"):
        train_detector(config)
    assert not (tmp_path / "runs").exists()


def test_a_record_of_a_start_that_never_finished_an_epoch_does_not_hold_the_name(tmp_path: Path) -> None:
    run_dir = tmp_path / "runs" / "noval"
    (run_dir / "weights").mkdir(
        parents=True
    )  # ultralytics makes weights/ and args.yaml before its data check
    (run_dir / "args.yaml").write_text("epochs: 2\n")
    record = {"started_at": "2026-11-20T08:00:00+00:00", "epochs": [], "is_finished": False, "sessions": [{}]}
    (run_dir / "anjian_train.json").write_text(json.dumps(record))

    prepare_new_run(run_dir)  # no FileExistsError: nothing to keep or resume there

    (run_dir / "anjian_train.json").write_text(json.dumps({**record, "epochs": [{"epoch": 1.0}]}))
    with pytest.raises(FileExistsError, match="1 epoch"):
        prepare_new_run(run_dir)


def test_a_last_pt_that_cannot_be_resumed_is_refused_before_ultralytics_sees_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ultralytics turns ``resume=True`` on such a file into a new run on its defaults (coco8, 100 epochs)."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("ultralytics")
    monkeypatch.setenv("YOLO_CONFIG_DIR", str(tmp_path / "yolo-config"))
    monkeypatch.chdir(tmp_path)
    weights = tmp_path / "runs" / "site" / "weights"
    weights.mkdir(parents=True)
    config = TrainConfig(data=Path("unused"), model="unused", project=tmp_path / "runs", name="site")

    torch.save({"epoch": -1, "optimizer": None, "train_args": {"epochs": 3}}, weights / "last.pt")
    with pytest.raises(ValueError, match=r"last\.pt: it holds no epoch or optimizer state"):
        train_detector(config, resume=True)
    (weights / "last.pt").write_text("not a checkpoint\n")
    with pytest.raises(ValueError, match=r"last\.pt: it cannot be read as a checkpoint"):
        train_detector(config, resume=True)
    torch.save({"epoch": 0, "optimizer": {}}, weights / "last.pt")
    with pytest.raises(ValueError, match=r"not a checkpoint of an ultralytics training"):
        train_detector(config, resume=True)
    assert not (tmp_path / "datasets").exists() and [p.name for p in (tmp_path / "runs").iterdir()] == [
        "site"
    ]
