"""A real (tiny) training run: merge real samples, start from COCO, interrupt, resume, export, evaluate, register.

Seconds of CPU: a few real images at a 64-pixel input, two epochs. It proves the whole
analysts' loop runs offline end to end, not that the model is any good.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import pytest

from anjian.datasets.classmap import ClassMap, load_class_map
from anjian.datasets.merge import merge_sets
from anjian.datasets.yolo import load_yolo_set, write_yolo_set
from anjian.models.config import DetectorConfig
from anjian.models.onnx_detector import OnnxDetector
from anjian.models.registry import promote, register_version, resolve_model_path
from tests.support.real_data import copy_yolo_sample
from tests.training.conftest import tiny_train_config

pytestmark = pytest.mark.slow

ANJIAN_MAP = Path(__file__).resolve().parents[2] / "datasets" / "maps" / "anjian.yaml"


class _Interrupted(Exception):
    """Stands for the session ending in the middle of training."""


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to open a network connection fails the test."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"training tried to reach the network: {args!r}")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


def test_tiny_real_training_resumes_exports_and_loads_in_the_onnx_backend(
    tmp_path: Path, no_network: None, coco_weights: Path
) -> None:
    from anjian.training.export import export_onnx, to_fp16
    from anjian.training.finetune_init import build_finetune_checkpoint
    from anjian.training.train import train_detector

    sets = [
        load_yolo_set(copy_yolo_sample(name, tmp_path / name, per_split=3))
        for name in ("forklift_person", "fire_smoke_cctv")
    ]
    merged, _ = merge_sets(sets, load_class_map(ANJIAN_MAP))
    data_yaml = write_yolo_set(merged, tmp_path / "data", by_source=True)
    init = build_finetune_checkpoint(coco_weights, merged.class_names, tmp_path / "init.pt")
    config = tiny_train_config(data_yaml, init, tmp_path / "runs", "tiny", close_mosaic=0)

    def stop_after_first(epoch: int) -> None:
        if epoch == 1:
            raise _Interrupted

    with pytest.raises(_Interrupted):
        train_detector(config, on_epoch_end=stop_after_first)
    record = json.loads((tmp_path / "runs" / "tiny" / "anjian_train.json").read_text())
    assert not record["is_finished"] and len(record["epochs"]) == 1
    assert record["data_hash"].startswith("sha256:")

    run = train_detector(config, resume=True)

    record = json.loads(run.record.read_text())
    assert record["is_finished"] and [int(e["epoch"]) for e in record["epochs"]] == [1, 2]
    assert [s["resumed"] for s in record["sessions"]] == [False, True]
    assert run.best.is_file()

    onnx = export_onnx(
        run.best, tmp_path / "export" / "model.onnx", imgsz=64, name="tiny", version="1", free_input=True
    )
    detector = OnnxDetector(onnx, DetectorConfig(path=str(onnx), confidence_threshold=0.001, device="cpu"))
    assert list(detector.class_names.values()) == list(merged.class_names)
    assert detector.info.input_hw == (64, 64) and detector.version.startswith("tiny@")
    image = cv2.imread(str(merged.in_split("val")[0].image))
    assert image is not None
    first, second = detector.detect([image, image[:, ::-1].copy()])  # one batch of two: dynamic batch axis
    assert len(first) > 0 and len(second) > 0  # the COCO start still proposes boxes after one epoch
    # exported with the input size free: the graph runs a 4:1 strip at 32x64 (the detector pads a strip for a
    # 64-px model to the square: one stride-32 cell of grey on each side already fills it)
    strip = cv2.resize(image, (256, 64))
    assert detector.input_hw_for((256, 64)) == (64, 64)
    [on_strip] = detector.detect([strip])
    assert on_strip.xyxy.size == 0 or (on_strip.xyxy[:, [1, 3]].max() <= 64 + 1e-3)
    session = ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])
    [out] = session.run(None, {session.get_inputs()[0].name: np.zeros((1, 3, 32, 64), np.float32)})
    assert out.shape[2] == 4 * 8 + 2 * 4 + 1 * 2  # the three strides' anchors at 32x64
    half = to_fp16(onnx, tmp_path / "export" / "model-fp16.onnx")
    half_detector = OnnxDetector(
        half, DetectorConfig(path=str(half), confidence_threshold=0.001, device="cpu")
    )
    [half_dets] = half_detector.detect([image])
    assert half.stat().st_size < onnx.stat().st_size * 0.6
    assert abs(len(half_dets) - len(first)) <= max(3, len(first) // 10)  # same model, fp16 rounding

    from anjian.training.evaluate import evaluate_detector

    report = evaluate_detector(
        detector,
        load_yolo_set(data_yaml),
        class_map=ClassMap(classes=("person", "forklift", "fire", "smoke")),
    )
    assert {c.name for c in report.classes} == {"person", "forklift", "fire", "smoke"}
    assert all(0.0 <= c.ap50 <= 1.0 for c in report.classes if c.instances)

    registry = tmp_path / "registry"
    entry = register_version(
        "tiny", onnx, {"data_hash": record["data_hash"], **report.to_dict()}, "# tiny\n", root=registry
    )
    promote("tiny", entry.version, root=registry)
    assert resolve_model_path("builtin:tiny", root=registry) == entry.onnx


def test_two_runs_with_the_same_seed_train_alike_and_record_the_workers_used(
    tmp_path: Path, no_network: None, coco_weights: Path
) -> None:
    from anjian.training.finetune_init import build_finetune_checkpoint
    from anjian.training.train import train_detector

    sample = load_yolo_set(copy_yolo_sample("forklift_person", tmp_path / "sample", per_split=4))
    merged, _ = merge_sets([sample], load_class_map(ANJIAN_MAP))
    data_yaml = write_yolo_set(merged, tmp_path / "data", by_source=True)
    first_epochs, records = [], []
    for run in ("a", "b"):
        init = build_finetune_checkpoint(coco_weights, merged.class_names, tmp_path / run / "init.pt", seed=7)
        config = tiny_train_config(
            data_yaml, init, tmp_path / "runs", run, epochs=1, workers=2, close_mosaic=0, seed=7
        )
        record = json.loads(train_detector(config).record.read_text())
        records.append(record)
        first_epochs.append({k: v for k, v in record["epochs"][0].items() if k.startswith("train/")})

    assert first_epochs[0] and first_epochs[0] == first_epochs[1]
    # ultralytics loads data in the training process on a CPU: the record says so, not "2 workers"
    [session] = records[0]["sessions"]
    assert session["dataloader_workers"] == 0 and records[0]["config"]["workers"] == 0
    assert any("2 requested, 0 used" in note for note in records[0]["notes"])


def test_a_run_with_the_cctv_look_degrades_every_epoch_and_keeps_it_on_resume(
    tmp_path: Path, no_network: None, coco_weights: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The look reaches the images of both epochs: before and after the resume, and after mosaic closes."""
    from anjian.training import cctv_augment
    from anjian.training.finetune_init import build_finetune_checkpoint
    from anjian.training.train import train_detector

    degraded: list[tuple[int, int]] = []  # (epoch, image height) of each degraded training image
    epoch = [1]
    real_degrade = cctv_augment.degrade_like_cctv

    def counting(image: np.ndarray, rng: np.random.Generator, look: object = None) -> np.ndarray:
        degraded.append((epoch[0], image.shape[0]))
        return real_degrade(image, rng, look)  # type: ignore[arg-type]

    monkeypatch.setattr(cctv_augment, "degrade_like_cctv", counting)
    sample = load_yolo_set(copy_yolo_sample("fire_smoke_cctv", tmp_path / "sample", per_split=3))
    merged, _ = merge_sets([sample], load_class_map(ANJIAN_MAP))
    data_yaml = write_yolo_set(merged, tmp_path / "data", by_source=True)
    init = build_finetune_checkpoint(coco_weights, merged.class_names, tmp_path / "init.pt")
    config = tiny_train_config(
        data_yaml, init, tmp_path / "runs", "cctv", close_mosaic=1, cctv_degradation=1.0
    )

    def stop_after_first(done: int) -> None:
        if done == 1:
            raise _Interrupted

    with pytest.raises(_Interrupted):
        train_detector(config, on_epoch_end=stop_after_first)
    epoch[0] = 2
    # the resumed run is given no share: the one recorded when the run started applies
    run = train_detector(config.model_copy(update={"cctv_degradation": 0.0}), resume=True)

    record = json.loads(run.record.read_text())
    assert record["is_finished"] and record["config"]["cctv_degradation"] == 1.0
    train_images = len(merged.in_split("train"))
    by_epoch = [sum(1 for e, _ in degraded if e == n) for n in (1, 2)]
    assert by_epoch == [
        train_images,
        train_images,
    ]  # every training image, both epochs (epoch 2 without mosaic)
    assert {h for _, h in degraded} == {64}  # after letterbox / mosaic: the training input size
