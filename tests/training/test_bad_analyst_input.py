"""Analysts' commands given broken files (weights, a hand-edited meta.json) answer with a message naming them, not a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from anjian.training.export import export_onnx

pytest.importorskip("ultralytics", reason="exporting needs the train extra")


def test_a_text_file_a_folder_and_a_zero_size_are_named(tmp_path: Path) -> None:
    text = tmp_path / "bad.pt"
    text.write_text("not a checkpoint\n")
    with pytest.raises(ValueError, match=r"bad\.pt: not a loadable ultralytics checkpoint"):
        export_onnx(text, tmp_path / "out" / "model.onnx", imgsz=64, name="m", version="1")
    with pytest.raises(ValueError, match=r"no such weights file \(it is a folder\)"):
        export_onnx(tmp_path, tmp_path / "out" / "model.onnx", imgsz=64, name="m", version="1")
    with pytest.raises(ValueError, match="imgsz must be a positive multiple of 32, got 0"):
        export_onnx(text, tmp_path / "out" / "model.onnx", imgsz=0, name="m", version="1")


def test_a_meta_json_with_evals_null_lists_no_figures_rather_than_failing() -> None:
    """`anjian models list` read every version's meta; a hand-edited ``"evals": null`` was a TypeError."""
    from anjian.training.eval_record import ap50_by_data

    assert ap50_by_data({"evals": None, "val": {"fire_smoke_cctv": {"map50": 0.5}}}) == {
        "fire_smoke_cctv": 0.5
    }
