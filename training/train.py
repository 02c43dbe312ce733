"""Train a YOLO detector with ultralytics, offline and resumable, and record how.

:func:`train_detector` wraps ``YOLO.train`` with the offline settings of
:mod:`anjian.training.ultralytics_env` and writes ``anjian_train.json`` into the run folder next
to ``weights/``: the config, the data digest, the hardware, the wall time (summed over
resumed sessions) and the metrics of every epoch, rewritten after each epoch so that an
interrupted run still says how far it got. ``weights/last.pt`` is saved every epoch;
:func:`train_detector` with ``resume=True`` continues from it.

A new run never lands on an old one: when ``project/name`` already holds a run (its record,
weights or ``results.csv``), :func:`train_detector` refuses unless told to replace it
(``overwrite=True``, ``anjian train --overwrite``), which deletes the old run folder first.
Runs are reproducible: ultralytics seeds every generator from ``seed`` and runs
deterministic kernels (``deterministic=True``).

A new run starts only on a set ultralytics can train and validate on: :func:`check_training_set`
refuses one whose train or val split holds no image, before anything is written. A start that
failed before its first epoch ended leaves a record counting no epoch and no weights; that does
not hold the name (:func:`existing_run_files`).

A resume continues in the folder it is given, wherever the run started: ultralytics keeps the
run's absolute paths in ``last.pt`` (``train_args``: ``save_dir``, ``project``, ``name``, and
``data`` when the set was written inside the run), so a run folder copied off a GPU machine or
renamed would otherwise be trained on in its old place. Those paths are pointed at the folder
first. A ``last.pt`` that is the final checkpoint (every epoch ran; the run was stopped in
ultralytics' closing validation) has nothing to resume: the record is marked finished and the
weights are returned, never handed to ultralytics, which would start a new run on its defaults.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import platform
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field

from anjian.datasets.hashing import dataset_digest
from anjian.datasets.versions import version_of_data
from anjian.training.cctv_augment import CctvDegradation
from anjian.training.ultralytics_env import OFFLINE_TRAIN_ARGS, offline_ultralytics, use_all_cores

__all__ = [
    "RECORD_NAME",
    "TrainConfig",
    "TrainRun",
    "check_training_set",
    "degrading_trainer",
    "existing_run_files",
    "hardware_summary",
    "prepare_new_run",
    "read_epoch_metrics",
    "train_detector",
]

logger = logging.getLogger(__name__)

RECORD_NAME = "anjian_train.json"


class TrainConfig(BaseModel):
    """What to train on and how; recorded with the weights."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    data: Path = Field(..., description="YOLO data.yaml to train on.")
    model: str = Field(
        ..., min_length=1, description="Starting point: an ultralytics .pt checkpoint or a model .yaml."
    )
    project: Path = Field(Path("runs"), description="Folder holding training runs.")
    name: str = Field("train", min_length=1, description="Run name: the run folder is project/name.")
    epochs: int = Field(30, ge=1, le=10000, description="Training epochs.")
    imgsz: int = Field(416, ge=32, le=4096, multiple_of=32, description="Square input size, pixels.")
    batch: int = Field(16, ge=1, le=1024, description="Images per batch.")
    workers: int = Field(2, ge=0, le=32, description="Dataloader worker processes.")
    seed: int = Field(0, ge=0, description="Seed of the run.")
    patience: int = Field(100, ge=0, description="Stop after this many epochs without improvement.")
    close_mosaic: int = Field(3, ge=0, description="Turn mosaic augmentation off for the last epochs.")
    cache: bool = Field(False, description="Cache decoded images in RAM.")
    fraction: float = Field(1.0, gt=0, le=1, description="Share of the train split to use.")
    extra: dict[str, float | int | str | bool] = Field(
        default_factory=dict, description="More ultralytics train arguments (lr0, mosaic, freeze, ...)."
    )
    cctv_degradation: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Share of training images made to look as CCTV delivers them (low resolution, blur, "
        "noise, clipped exposure, faded colour, JPEG): see anjian.training.cctv_augment. 0: off.",
    )

    @property
    def run_dir(self) -> Path:
        """Folder of this run."""
        return self.project / self.name


_TRAINER_ARGS: Final[set[str]] = {
    "epochs",
    "imgsz",
    "batch",
    "workers",
    "seed",
    "patience",
    "close_mosaic",
    "fraction",
    "name",
}
"""The fields of ``TrainConfig`` that ultralytics' ``YOLO.train`` takes as they are, under the same name."""


@dataclass(frozen=True, slots=True)
class TrainRun:
    """Where a training run left its results.

    Attributes:
        run_dir: The run folder.
        best: ``weights/best.pt``.
        last: ``weights/last.pt`` (resume from it).
        record: ``anjian_train.json``.
        is_finished: Whether every epoch ran.
        note: Why this call trained nothing, when it did not (a resume of a run that had
            finished already): one sentence naming the weights; ``None`` otherwise.
    """

    run_dir: Path
    best: Path
    last: Path
    record: Path
    is_finished: bool
    note: str | None = None


def hardware_summary() -> str:
    """One line naming the machine: GPU if torch sees one, else the CPU."""
    import torch

    if torch.cuda.is_available():
        return f"GPU: {torch.cuda.get_device_name(0)}, torch {torch.__version__}"
    try:
        from ultralytics.utils.torch_utils import get_cpu_info

        cpu = get_cpu_info()
    except ImportError:
        cpu = platform.processor() or platform.machine()
    return f"CPU only: {cpu}, {len(os.sched_getaffinity(0))} cores, torch {torch.__version__}"


def read_epoch_metrics(run_dir: Path) -> list[dict[str, float]]:
    """Rows of ultralytics' ``results.csv`` (one per finished epoch), keys stripped."""
    path = Path(run_dir) / "results.csv"
    if not path.is_file():
        return []
    with path.open() as fh:
        return [
            {k.strip(): float(v) for k, v in row.items() if v not in (None, "")} for row in csv.DictReader(fh)
        ]


def _load_record(path: Path) -> dict[str, Any]:
    """The run's record so far, empty when there is none."""
    return json.loads(path.read_text()) if path.is_file() else {}


def _is_failed_start(record_path: Path) -> bool:
    """Whether a record counts no finished epoch: a start that failed (or was stopped) before one ended."""
    try:
        record = _load_record(record_path)
    except (OSError, UnicodeDecodeError, ValueError):
        return False  # unreadable: keep treating it as a run, never delete what cannot be read
    return isinstance(record, dict) and not record.get("epochs") and not record.get("is_finished")


def existing_run_files(run_dir: Path) -> list[Path]:
    """The files showing that ``run_dir`` holds a training run: record, weights, ``results.csv``.

    A record alone that counts no finished epoch is a start that failed (ultralytics refused
    the set, or the run was stopped in its first epoch): there is nothing to keep or resume
    (``--resume`` needs ``weights/last.pt``), so it does not hold the name. anjian does not
    lock run folders: a run still in its first epoch in another process looks the same.
    """
    run_dir = Path(run_dir)
    candidates = (
        run_dir / RECORD_NAME,
        run_dir / "weights" / "last.pt",
        run_dir / "weights" / "best.pt",
        run_dir / "results.csv",
    )
    found = [path for path in candidates if path.is_file()]
    if found == [run_dir / RECORD_NAME] and _is_failed_start(found[0]):
        return []
    return found


def check_training_set(data: Path) -> None:
    """Refuse a set ultralytics cannot train on: one whose train or val split holds no image.

    ultralytics validates on the val split after every epoch and stops with a traceback
    when it has none (``'val:' key missing``, or an empty folder); checking first names the
    split and the fix before a record, a teacher pass or a run folder is made.

    Args:
        data: The set's ``data.yaml``.

    Raises:
        ValueError: A split is missing or empty.
        anjian.datasets.errors.DatasetFormatError: The ``data.yaml`` cannot be read.
    """
    from anjian.datasets.yolo import load_yolo_set

    dataset = load_yolo_set(Path(data))
    for split in ("train", "val"):
        if not dataset.in_split(split):
            raise ValueError(
                f"{data}: the {split} split holds no image (ultralytics trains on train and validates "
                f"on val after every epoch): give the set both splits, e.g. anjian dataset split "
                f"{Path(data).parent} --out SPLIT_SET --val 0.2, and train on SPLIT_SET/data.yaml"
            )


def prepare_new_run(run_dir: Path, *, overwrite: bool = False) -> None:
    """Make sure a new run does not land on an old one.

    A folder without a run (absent, empty, or holding only a starting checkpoint) is
    fine. One holding a run is refused, or deleted when ``overwrite`` says so.

    Args:
        run_dir: The new run's folder (``project/name``).
        overwrite: Delete an existing run there instead of refusing.

    Raises:
        FileExistsError: ``run_dir`` holds a run and ``overwrite`` is false.
    """
    found = existing_run_files(run_dir)
    if not found:
        return
    if not overwrite:
        record = _load_record(Path(run_dir) / RECORD_NAME) if found[0].name == RECORD_NAME else {}
        started = f", started {record['started_at']}" if record.get("started_at") else ""
        epochs = f", {len(record.get('epochs', []))} epoch(s) done" if record else ""
        names = ", ".join(str(p.relative_to(run_dir)) for p in found)
        raise FileExistsError(
            f"{run_dir} holds a training run already ({names}{started}{epochs}): give another --name, "
            "continue it with --resume, or replace it with --overwrite"
        )
    logger.warning("replacing the training run in %s", run_dir)
    shutil.rmtree(run_dir)


def _record_workers(record: dict[str, Any], trainer: Any) -> None:
    """Record the dataloader workers the trainer really uses (ultralytics forces 0 on a CPU)."""
    loader = getattr(trainer, "train_loader", None)
    used = getattr(loader, "num_workers", None)
    if used is None:
        return
    record["sessions"][-1]["dataloader_workers"] = int(used)
    requested = record.get("config", {}).get("workers")
    if requested is not None and requested != used:
        record["config"]["workers"] = int(used)
        note = (
            f"workers: {requested} requested, {used} used (ultralytics loads data in the training "
            "process when it trains on the CPU)"
        )
        if note not in record.setdefault("notes", []):
            record["notes"].append(note)
        logger.warning("%s", note)


def degrading_trainer(p: float, *, seed: int = 0) -> type[Any]:
    """An ultralytics ``DetectionTrainer`` whose training images pass through :class:`CctvDegradation`.

    The transform goes last before the tensors are made (after mosaic, perspective and colour
    jitter), and again when the last epochs rebuild the pipeline without mosaic. Validation
    images stay clean.
    """
    from ultralytics.models.yolo.detect import DetectionTrainer

    def _add(dataset: Any) -> None:
        transforms = getattr(dataset, "transforms", None)
        if transforms is None or not getattr(dataset, "augment", False):
            return
        if not any(isinstance(t, CctvDegradation) for t in transforms.transforms):
            transforms.insert(-1, CctvDegradation(p, seed=seed))

    class CctvDegradingTrainer(DetectionTrainer):
        def build_dataset(self, img_path: str, mode: str = "train", batch: int | None = None) -> Any:
            dataset = super().build_dataset(img_path, mode, batch)
            if mode == "train":
                _add(dataset)
            return dataset

        def _close_dataloader_mosaic(self) -> None:
            super()._close_dataloader_mosaic()  # type: ignore[no-untyped-call]  # rebuilds the transforms without ours
            _add(self.train_loader.dataset)

    return CctvDegradingTrainer


def _read_checkpoint(last: Path) -> dict[str, Any]:
    """The training checkpoint ``last`` as ultralytics saved it (call after :func:`offline_ultralytics`).

    Raises:
        ValueError: It cannot be read, or it is not a checkpoint of an ultralytics training.
    """
    import torch

    try:
        ckpt: dict[str, Any] = torch.load(last, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - pickle, zip and torch raise many kinds for a file that is no checkpoint
        raise ValueError(f"cannot resume from {last}: it cannot be read as a checkpoint ({exc})") from None
    if not (ckpt.get("train_args") if isinstance(ckpt, dict) else None):
        raise ValueError(
            f"cannot resume from {last}: it is not a checkpoint of an ultralytics training (no train_args)"
        )
    return ckpt


def _is_final_checkpoint(ckpt: dict[str, Any]) -> bool:
    """Whether a training checkpoint is the run's last word: every epoch ran, nothing is left to resume.

    Once training ends (every epoch, or an early stop), ultralytics strips ``last.pt`` to the
    weights (``epoch`` -1, no optimizer, ``train_results`` kept) and then validates
    ``best.pt``; a run stopped in that validation leaves this. A ``last.pt`` saved after the
    final epoch, before the strip, has ``epoch + 1 == epochs``.
    """
    epoch = -1 if ckpt.get("epoch") is None else int(ckpt["epoch"])
    if epoch < 0:
        return ckpt.get("train_results") is not None or ckpt.get("train_metrics") is not None
    return epoch + 1 >= int(ckpt["train_args"].get("epochs") or 0)


def _moved_path(value: object, old_dir: Path, run_dir: Path) -> str | None:
    """``value`` (a saved path) inside ``run_dir`` when it lay inside ``old_dir`` and is there now."""
    if not isinstance(value, str) or not value:
        return None
    path = Path(value).resolve()
    if not path.is_relative_to(old_dir):
        return None
    moved = run_dir / path.relative_to(old_dir)
    return str(moved) if moved.exists() or not path.exists() else None


def _point_checkpoint_at(last: Path, ckpt: dict[str, Any], run_dir: Path) -> Path | None:
    """Point the saved paths of ``last`` at ``run_dir`` when the run was started elsewhere.

    ultralytics resumes into the ``save_dir`` its checkpoint names (an absolute path), not into
    the folder the checkpoint lies in. ``save_dir``, ``project`` and ``name`` become
    ``run_dir``'s; ``data`` and ``model`` move too when they lay inside the old run folder
    (the teacher-completed copy of the set, ``init.pt``). The checkpoint is rewritten
    through a temporary file, so an interrupt leaves the old one whole.

    Returns:
        The folder the run was started in, or ``None`` when that is ``run_dir`` (or unknown).

    Raises:
        OSError: The checkpoint cannot be rewritten (a read-only folder): ultralytics would
            train in the old folder, so the resume stops.
    """
    import torch

    args = ckpt["train_args"]
    saved = args.get("save_dir") or (
        Path(str(args["project"])) / str(args["name"]) if args.get("project") and args.get("name") else None
    )
    old_dir = Path(str(saved)).resolve() if saved else None
    if old_dir == run_dir:
        return None
    if old_dir is not None:
        for key in ("data", "model"):
            if (moved := _moved_path(args.get(key), old_dir, run_dir)) is not None:
                args[key] = moved
    args.update(save_dir=str(run_dir), project=str(run_dir.parent), name=run_dir.name)
    partial = last.with_name(f".{last.name}.relocating")
    try:
        torch.save(ckpt, partial)
        os.replace(partial, last)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise OSError(
            f"cannot resume in {run_dir}: {last} names {old_dir or 'another folder'} as its run folder, and "
            f"pointing it here failed ({exc}); make the folder writable, or resume where the run started"
        ) from None
    return old_dir


def _check_resumable(last: Path, ckpt: dict[str, Any]) -> None:
    """Refuse a checkpoint ultralytics cannot continue: it would start a new run on its defaults instead.

    Raises:
        ValueError: No optimizer state or epoch to continue from.
    """
    epoch = ckpt.get("epoch")
    if epoch is None or int(epoch) < 0 or ckpt.get("optimizer") is None:
        raise ValueError(
            f"cannot resume from {last}: it holds no epoch or optimizer state to continue from (not a "
            f"checkpoint saved during training); start the run again with --overwrite"
        )


def _finish_record(record: dict[str, Any], record_path: Path, run_dir: Path, note: str) -> None:
    """Mark an existing record finished, with its epochs and ``note`` (a run stopped after its last epoch)."""
    if not record:
        return
    record["epochs"] = read_epoch_metrics(run_dir)
    record["is_finished"] = True
    if note not in record.setdefault("notes", []):
        record["notes"].append(note)
    record_path.write_text(json.dumps(record, indent=2) + "\n")


def train_detector(
    config: TrainConfig,
    *,
    resume: bool = False,
    overwrite: bool = False,
    on_epoch_end: Callable[[int], None] | None = None,
) -> TrainRun:
    """Train (or resume training) and record config, data digest, metrics and time.

    Args:
        config: The run's settings. With ``resume``, only ``project`` and ``name`` matter:
            the rest comes from the checkpoint.
        resume: Continue ``project/name/weights/last.pt``.
        overwrite: A new run (not ``resume``) replaces a run already in ``project/name``
            instead of refusing (see :func:`prepare_new_run`).
        on_epoch_end: Called with the number of the epoch just finished (1-based), after
            its checkpoint and record were written.

    Returns:
        Where the weights and the record are. A resume of a run that trained its last epoch
        already trains nothing: its ``note`` says so and names the weights.

    Raises:
        FileNotFoundError: ``resume`` without a ``last.pt`` to resume from, or the set the
            checkpoint trains on is not there.
        FileExistsError: A new run where a run exists already, without ``overwrite``.
        ValueError: A new run on a set without a train or val image (:func:`check_training_set`),
            a set ultralytics refuses, or a ``last.pt`` that cannot be resumed.
    """
    run_dir = config.run_dir.resolve()
    record_path = run_dir / RECORD_NAME
    last = run_dir / "weights" / "last.pt"
    best = run_dir / "weights" / "best.pt"
    if not resume:
        prepare_new_run(run_dir, overwrite=overwrite)
        check_training_set(config.data)
    record = _load_record(record_path)
    if resume:
        if not last.is_file():
            raise FileNotFoundError(f"nothing to resume: {last} does not exist")
        weights = best if best.is_file() else last
        if record.get("is_finished"):
            note = f"nothing to resume: {run_dir} finished training already; its weights: {weights}"
            logger.info("%s", note)
            return TrainRun(run_dir, best, last, record_path, True, note)
        offline_ultralytics()
        ckpt = _read_checkpoint(last)
        if _is_final_checkpoint(ckpt):
            note = (
                f"nothing to resume: {run_dir} trained its last epoch (weights/last.pt is the final checkpoint) "
                f"and was stopped before ultralytics' closing validation of best.pt ended; its record now says "
                f"finished; its weights: {weights}"
            )
            _finish_record(record, record_path, run_dir, note)
            logger.warning("%s", note)
            return TrainRun(run_dir, best, last, record_path, True, note)
        _check_resumable(last, ckpt)
        moved_from = _point_checkpoint_at(last, ckpt, run_dir)
        data = ckpt["train_args"].get("data")
        if not data or not Path(str(data)).is_file():
            raise FileNotFoundError(
                f"cannot resume {run_dir}: its checkpoint trains on {data}, which does not exist here; put "
                "the set back at that path"
            )
        if moved_from is not None:
            note = f"resumed in {run_dir}, started in {moved_from}: the checkpoint's paths were pointed here"
            logger.warning("%s", note)
            if note not in record.setdefault("notes", []):
                record["notes"].append(note)
    else:
        digest = dataset_digest(config.data)
        record = {
            "config": json.loads(config.model_dump_json()),
            "data_hash": digest,
            "data_version": version_of_data(config.data, digest),  # a named dataset version, if one matches
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "training_seconds": 0.0,
            "sessions": [],
        }
    offline_ultralytics()
    from ultralytics.models.yolo.model import YOLO

    # the share recorded when the run started wins on resume: a resumed run keeps its augmentation
    degradation = (
        float(record.get("config", {}).get("cctv_degradation", 0.0)) if resume else config.cctv_degradation
    )
    trainer_args = {"trainer": degrading_trainer(degradation, seed=config.seed)} if degradation > 0 else {}

    model = YOLO(str(last) if resume else config.model, task="detect")
    threads = use_all_cores(model)
    session_start = time.perf_counter()
    seconds_before = float(record.get("training_seconds", 0.0))
    record.setdefault("sessions", []).append(
        {
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "hardware": hardware_summary(),
            "threads": threads,
            "resumed": resume,
        }
    )

    def _write(is_finished: bool = False) -> None:
        record["training_seconds"] = round(seconds_before + time.perf_counter() - session_start, 1)
        record["epochs"] = read_epoch_metrics(run_dir)
        record["is_finished"] = is_finished
        record_path.parent.mkdir(parents=True, exist_ok=True)
        record_path.write_text(json.dumps(record, indent=2) + "\n")

    def _epoch_end(trainer: Any) -> None:
        _write()
        if on_epoch_end is not None:
            on_epoch_end(int(trainer.epoch) + 1)

    def _train_start(trainer: Any) -> None:
        _record_workers(record, trainer)
        _write()

    def _in_run_dir(trainer: Any) -> None:
        # the first callback, before any epoch: a run is never trained into another folder
        if Path(trainer.save_dir).resolve() != run_dir:
            raise ValueError(
                f"ultralytics would train this run in {trainer.save_dir}, not in {run_dir}: stopped before "
                "the first epoch"
            )

    model.add_callback("on_pretrain_routine_start", _in_run_dir)
    model.add_callback("on_train_start", _train_start)
    model.add_callback("on_fit_epoch_end", _epoch_end)
    _write()
    try:
        _fit(model, config, resume=resume, trainer_args=trainer_args)
    except RuntimeError as exc:  # ultralytics wraps every problem of its dataset check in one
        if not str(exc).startswith("Dataset "):
            raise
        raise ValueError(f"ultralytics cannot train on the set: {exc}") from None
    _write(is_finished=True)
    logger.info("training finished in %s", run_dir)
    return TrainRun(run_dir, best, last, record_path, True)


def _fit(model: Any, config: TrainConfig, *, resume: bool, trainer_args: dict[str, Any]) -> None:
    """Run ultralytics' training: a resume from the model's checkpoint, or a new run of ``config``."""
    if resume:
        model.train(resume=True, **trainer_args, **OFFLINE_TRAIN_ARGS)
    else:
        model.train(
            data=str(config.data.resolve()),
            cache="ram" if config.cache else False,
            project=str(config.project.resolve()),
            **config.model_dump(include=_TRAINER_ARGS),
            exist_ok=True,
            deterministic=True,
            verbose=True,
            **trainer_args,
            **{**OFFLINE_TRAIN_ARGS, **config.extra},
        )
