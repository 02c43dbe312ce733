"""The detector loader runs a version's accepted int8 IR on CPUs without native bf16, fp32 when forced, and refuses bad IR files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from anjian.models.config import DetectorConfig
from anjian.models.errors import ModelLoadError
from anjian.models.int8_ir import INT8_BIN, INT8_XML, accepted_int8, file_sha256
from anjian.models.loader import load_detector
from anjian.models.openvino_detector import cpu_has_native_bf16
from anjian.models.registry import resolve_model_path

ov = pytest.importorskip("openvino")

CPU = {"device": "cpu", "backend": "openvino"}
FLOAT = "bf16" if cpu_has_native_bf16() else "fp32"  # what `auto` runs without an accepted int8 model
INT8 = {"cpu_precision": "int8", **CPU}


@pytest.fixture
def without_native_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    """The loader sees an AVX2-only CPU (where an accepted int8 model is the fastest)."""
    monkeypatch.setattr("anjian.models.loader.cpu_has_native_bf16", lambda: False)


def _version(tmp_path: Path, *, status: str = "accepted") -> Path:
    """A registry-style version folder: the demo model's ONNX, an IR of it standing in for int8, meta.json."""
    folder = tmp_path / "demo" / "1"
    folder.mkdir(parents=True)
    onnx = folder / "model.onnx"
    shutil.copyfile(resolve_model_path("builtin:anjian-demo"), onnx)
    ov.save_model(ov.Core().read_model(str(onnx)), str(folder / INT8_XML))
    record = {
        "status": status,
        "xml_sha256": file_sha256(folder / INT8_XML),
        "bin_sha256": file_sha256(folder / INT8_BIN),
        "onnx_sha256": file_sha256(onnx),
    }
    (folder / "meta.json").write_text(json.dumps({"name": "demo", "version": "1", "int8": record}))
    return onnx


def _frame() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)


def test_loader_runs_the_accepted_int8_model_by_default_on_a_cpu_without_native_bf16(
    tmp_path: Path, without_native_bf16: None
) -> None:
    onnx = _version(tmp_path)
    detector = load_detector(onnx, DetectorConfig(**CPU))  # type: ignore[arg-type]
    assert detector.precision == "int8"  # type: ignore[attr-defined]
    assert detector.version.endswith("+int8")
    # fed the float input it was accepted with, not the bytes the float models take
    assert detector.model_input([_frame()]).dtype == np.float32  # type: ignore[attr-defined]
    assert len(detector.detect([_frame()])) == 1


def test_native_bf16_beats_int8_by_default_and_int8_can_be_forced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where the CPU has native bf16, auto keeps the float file (bf16 there); int8 runs when asked for."""
    onnx = _version(tmp_path)
    monkeypatch.setattr("anjian.models.loader.cpu_has_native_bf16", lambda: True)
    detector = load_detector(onnx, DetectorConfig(**CPU))  # type: ignore[arg-type]
    assert detector.precision == FLOAT  # type: ignore[attr-defined]
    assert not detector.version.endswith("+int8")
    forced = load_detector(onnx, DetectorConfig(**INT8))  # type: ignore[arg-type]
    assert forced.precision == "int8" and forced.version.endswith("+int8")  # type: ignore[attr-defined]


def test_a_site_forces_fp32(tmp_path: Path) -> None:
    onnx = _version(tmp_path)
    detector = load_detector(onnx, DetectorConfig(cpu_precision="fp32", **CPU))  # type: ignore[arg-type]
    assert detector.precision == "fp32"  # type: ignore[attr-defined]
    assert not detector.version.endswith("+int8")


def test_a_rejected_int8_model_is_not_run(tmp_path: Path) -> None:
    onnx = _version(tmp_path, status="rejected")
    detector = load_detector(onnx, DetectorConfig(**CPU))  # type: ignore[arg-type]
    assert detector.precision == FLOAT  # type: ignore[attr-defined]
    with pytest.raises(ModelLoadError, match="has no accepted int8 model"):
        load_detector(onnx, DetectorConfig(cpu_precision="int8", **CPU))  # type: ignore[arg-type]


def test_int8_asked_for_without_one_names_the_folder(tmp_path: Path) -> None:
    onnx = tmp_path / "plain.onnx"
    shutil.copyfile(resolve_model_path("builtin:anjian-demo"), onnx)
    assert load_detector(onnx, DetectorConfig(**CPU)).precision == FLOAT  # type: ignore[arg-type, attr-defined]
    with pytest.raises(ModelLoadError, match=rf"{tmp_path}.* has no accepted int8 model"):
        load_detector(onnx, DetectorConfig(cpu_precision="int8", **CPU))  # type: ignore[arg-type]


def test_int8_on_onnx_runtime_is_refused(tmp_path: Path) -> None:
    onnx = _version(tmp_path)
    with pytest.raises(ModelLoadError, match="runs with OpenVINO on the CPU"):
        load_detector(onnx, DetectorConfig(cpu_precision="int8", device="cpu", backend="onnxruntime"))
    # auto on ONNX Runtime simply runs the ONNX
    assert (
        load_detector(onnx, DetectorConfig(device="cpu", backend="onnxruntime")).version.count("+int8") == 0
    )


@pytest.mark.parametrize("precision", ["int8", "auto"])
def test_damaged_weights_are_refused_with_the_file_named(
    tmp_path: Path, without_native_bf16: None, precision: str
) -> None:
    onnx = _version(tmp_path)
    weights = onnx.parent / INT8_BIN
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(
        ModelLoadError, match=r"model\.int8\.bin: sha256 .* is not the accepted .*damaged or replaced.*fp32"
    ):
        load_detector(onnx, DetectorConfig(cpu_precision=precision, **CPU))  # type: ignore[arg-type]


def test_missing_weights_are_refused(tmp_path: Path) -> None:
    onnx = _version(tmp_path)
    (onnx.parent / INT8_BIN).unlink()
    with pytest.raises(ModelLoadError, match=r"accepted int8 model, but model\.int8\.bin is missing"):
        load_detector(onnx, DetectorConfig(**INT8))  # type: ignore[arg-type]


def test_an_ir_openvino_cannot_read_is_refused(tmp_path: Path) -> None:
    """Corrupt from the start (the record was written over a broken file): OpenVINO's reason, the file, the fix."""
    onnx = _version(tmp_path)
    xml = onnx.parent / INT8_XML
    xml.write_text(xml.read_text()[:500])
    meta = json.loads((onnx.parent / "meta.json").read_text())
    meta["int8"]["xml_sha256"] = file_sha256(xml)
    (onnx.parent / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(
        ModelLoadError, match=r"cannot read the int8 model .*model\.int8\.xml.*cpu_precision: fp32"
    ):
        load_detector(onnx, DetectorConfig(**INT8))  # type: ignore[arg-type]


def test_an_ir_of_another_model_is_refused(tmp_path: Path) -> None:
    """An IR whose output does not fit the ONNX's classes would decode garbage: refused at load."""
    onnx = _version(tmp_path)
    other = tmp_path / "other.onnx"
    shutil.copyfile(resolve_model_path("builtin:anjian-n/1"), other)
    ov.save_model(ov.Core().read_model(str(other)), str(onnx.parent / INT8_XML))
    meta = json.loads((onnx.parent / "meta.json").read_text())
    meta["int8"].update(
        xml_sha256=file_sha256(onnx.parent / INT8_XML), bin_sha256=file_sha256(onnx.parent / INT8_BIN)
    )
    (onnx.parent / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ModelLoadError, match=r"output shape .* does not fit the ONNX's"):
        load_detector(onnx, DetectorConfig(**INT8))  # type: ignore[arg-type]


def test_an_ir_made_from_another_onnx_is_refused(tmp_path: Path) -> None:
    onnx = _version(tmp_path)
    meta = json.loads((onnx.parent / "meta.json").read_text())
    meta["int8"]["onnx_sha256"] = "0" * 64
    (onnx.parent / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ModelLoadError, match="the model it was quantised from has changed"):
        accepted_int8(onnx)


@pytest.mark.parametrize("cap", ["AVX2", "avx512_core_vnni"])
def test_an_isa_cap_below_bf16_means_no_native_bf16(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cap: str
) -> None:
    """A site (or a bench emulating an AVX2 box) that caps oneDNN below AVX512-BF16 gets fp32, or its int8."""
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", cap)
    assert not cpu_has_native_bf16()
    onnx = _version(tmp_path)
    assert load_detector(onnx, DetectorConfig(**CPU)).precision == "int8"  # type: ignore[arg-type, attr-defined]
    plain = tmp_path / "plain.onnx"
    shutil.copyfile(onnx, plain)
    assert load_detector(plain, DetectorConfig(**CPU)).precision == "fp32"  # type: ignore[arg-type, attr-defined]
    with pytest.raises(ModelLoadError, match="needs a CPU with native bf16"):
        load_detector(plain, DetectorConfig(cpu_precision="bf16", **CPU))  # type: ignore[arg-type]
