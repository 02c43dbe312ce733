"""Quantising a registered version: an int8 model that loses accuracy is rejected, one that keeps it is run.

Real NNCF quantisation of the shipped anjian-n detector, calibrated and judged on a
sample of the real fire_smoke_cctv set; slow (tens of seconds), skips without nncf or the data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import pytest

from anjian.models.config import DetectorConfig
from anjian.models.int8_ir import INT8_BIN, INT8_XML, accepted_int8, int8_record
from anjian.models.loader import load_detector
from anjian.models.openvino_detector import cpu_has_native_bf16
from anjian.models.registry import read_meta, register_version, resolve_model_path
from anjian.training.int8_gate import Int8Verdict
from anjian.training.quantize import (
    FLOAT_LADDER,
    Int8Attempt,
    Int8Outcome,
    calibration_images,
    load_sources,
    quantize_and_record,
    record_int8,
)
from tests.support.real_data import copy_yolo_sample

pytest.importorskip("nncf", reason="nncf (the train extra) quantises")
pytestmark = pytest.mark.slow


@pytest.fixture
def site(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A site registry with anjian-n 5 (input size free, as exports are) as demo-q/1, a real sample, a class map."""
    registry = tmp_path / "registry"
    register_version("demo-q", resolve_model_path("builtin:anjian-n/5"), {}, "# demo-q 1\n", root=registry)
    data = copy_yolo_sample("fire_smoke_cctv", tmp_path / "fire_smoke_cctv", per_split=16)
    class_map = tmp_path / "map.yaml"
    class_map.write_text(
        "classes: [person, fallen_person, fire, smoke, cigarette, pallet, forklift]\n"
        "map: {Fire: fire, default: null, Wooden-Pallet: pallet}\n"
    )
    return registry, data, class_map


def _cpu(registry: Path, **fields: object) -> DetectorConfig:
    return DetectorConfig(registry=registry, device="cpu", backend="openvino", **fields)  # type: ignore[arg-type]


def _quantize(site: tuple[Path, Path, Path], **options: Any) -> dict[str, Any]:
    """Quantise demo-q/1 on the sample: 16 calibration images, the sample's val split."""
    registry, data, class_map = site
    return quantize_and_record(
        "demo-q", "1", [data], class_map=class_map, root=registry, calibration_count=16, **options
    )


def test_an_int8_model_that_loses_accuracy_is_rejected_and_never_run(site: tuple[Path, Path, Path]) -> None:
    """Calibrated on blank frames, the activation ranges miss every real scene: the gate refuses it, CPUs keep fp32."""
    registry, data, _ = site
    for image in (data.parent / "images" / "train").iterdir():
        cv2.imwrite(str(image), cv2.imread(str(image)) * 0)
    lines: list[str] = []
    record = _quantize(site, ladder=FLOAT_LADDER[:1], report=lines.append)
    folder = registry / "demo-q" / "1"
    assert record["status"] == "rejected"
    assert record["gate"]["failures"][0].startswith("fire_smoke_cctv/val: AP50")
    assert not (folder / INT8_XML).exists() and not (folder / INT8_BIN).exists()
    assert read_meta(folder)["int8"]["status"] == "rejected"
    card = (folder / "card.md").read_text()
    assert (
        "## int8 (CPU)" in card and "No int8 model" in card and "| fire_smoke_cctv/val | **mean** |" in card
    )
    assert any("rejected" in line for line in lines)
    detector = load_detector("builtin:demo-q/1", _cpu(registry))
    float_precision = "bf16" if cpu_has_native_bf16() else "fp32"
    assert detector.precision == float_precision  # type: ignore[attr-defined]

    # A later run that starts further up the ladder (--start-at) keeps this one's try on record.
    later = Int8Outcome(
        attempts=[Int8Attempt(FLOAT_LADDER[1], Int8Verdict.from_dict(record["gate"]), 1.0)],
        calibration=record["calibration"],
    )
    again = record_int8(folder / "model.onnx", later)
    assert [a["float_scope"] for a in again["attempts"]] == ["decode", "head"]
    assert read_meta(folder)["int8"]["attempts"] == again["attempts"]


def test_an_accepted_int8_model_is_registered_and_run_by_default(
    site: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    """With the head in fp32 the model keeps its accuracy (a loose tolerance: 16 val images are noisy).

    A source given as never trained on (a pallet sample) is judged on every image and calibrates nothing.
    """
    registry, data, _ = site
    pallet = copy_yolo_sample("pallet", tmp_path / "pallet", per_split=5)
    record = _quantize(
        site, ladder=FLOAT_LADDER[:2], max_source_drop=0.25, max_cross_drop=0.25, cross_data=[pallet]
    )
    onnx = registry / "demo-q" / "1" / "model.onnx"
    assert record["status"] == "accepted"
    assert record["calibration"]["sources"] == ["fire_smoke_cctv"]
    assert record["calibration"]["cross_sources"] == ["pallet"]
    rows = {row["source"]: row for row in record["gate"]["sources"]}
    assert rows["pallet/all"]["is_cross_source"] and rows["pallet/all"]["images"] == 10  # train and val
    assert not rows["fire_smoke_cctv/val"]["is_cross_source"]
    card = (registry / "demo-q" / "1" / "card.md").read_text()
    assert "on every image of `pallet` (never trained on, tolerance 25.0 points)" in card
    assert record["attempts"][-1]["is_accepted"] and record["float_scope"]["name"] in ("decode", "head")
    files = accepted_int8(onnx)  # the digests in meta.json match the files beside the ONNX
    assert files is not None and int8_record(onnx) == record
    assert record["bytes"] < onnx.stat().st_size  # int8 weights: smaller than the fp32 file

    auto = load_detector(
        "builtin:demo-q/1", _cpu(registry)
    )  # native bf16 is faster than int8 where there is one
    assert auto.precision == ("bf16" if cpu_has_native_bf16() else "int8")  # type: ignore[attr-defined]
    int8 = load_detector("builtin:demo-q/1", _cpu(registry, cpu_precision="int8"))
    fp32 = load_detector("builtin:demo-q/1", _cpu(registry, cpu_precision="fp32"))
    assert int8.precision == "int8" and fp32.precision == "fp32"  # type: ignore[attr-defined]
    image = cv2.imread(str(next((data.parent / "images" / "val").iterdir())))
    [a], [b] = int8.detect([image]), fp32.detect([image])
    assert len(a) > 0 and abs(len(a) - len(b)) <= max(2, len(b) // 3)
    # quantised from a free ONNX, the IR's input is free too: a 16:9 band runs at 320x256 (one cell of grey each side)
    wide = image[: image.shape[0] * 9 // 16]
    assert int8.input_hw_for((wide.shape[1], wide.shape[0])) == (256, 320)  # type: ignore[attr-defined]
    [c], [d] = int8.detect([wide]), fp32.detect([wide])
    assert abs(len(c) - len(d)) <= max(2, len(d) // 3)


def test_calibration_draws_evenly_from_each_source(tmp_path: Path) -> None:
    sets = []
    for name in ("fire_smoke_cctv", "pallet"):
        sets.append(copy_yolo_sample(name, tmp_path / name, per_split=6))
    sources = load_sources(sets)
    chosen = calibration_images(sources, 7, seed=1)
    assert len(chosen) == 7
    assert sum("fire_smoke_cctv" in str(p) for p in chosen) == 4  # the remainder goes to the first source
    assert chosen == calibration_images(sources, 7, seed=1)
    assert len(calibration_images(sources, 100)) == 12  # no more than they have
    with pytest.raises(ValueError, match="at least one image"):
        calibration_images(sources, 0)


def test_a_source_never_trained_on_calibrates_nothing_and_is_judged_whole(tmp_path: Path) -> None:
    fire = copy_yolo_sample("fire_smoke_cctv", tmp_path / "fire", per_split=6)
    pallet = copy_yolo_sample("pallet", tmp_path / "pallet", per_split=6)
    trained, unseen = load_sources([fire], cross_data=[pallet])
    assert not trained.is_cross_source and unseen.is_cross_source
    chosen = calibration_images([trained, unseen], 10)
    assert len(chosen) == 6 and not any("pallet" in str(p) for p in chosen)
    dataset, split = unseen.judged
    assert split == "all" and len(dataset.in_split(split)) == 12
    assert trained.judged[1] == "val"
    with pytest.raises(ValueError, match=r"no train images to calibrate on in \[\]"):
        calibration_images([unseen], 4)
