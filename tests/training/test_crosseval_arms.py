"""The card's cross-source section over several held-out arms, and how their files are read."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from anjian.training.anjian_n_release import _crosseval_section, _read_crosseval_arms, crosseval_arms


def _report(**classes: tuple[int, float, float]) -> dict[str, Any]:
    """An evaluation report's dict: class name to (instances, AP50, image AP)."""
    return {
        "images": 10,
        "classes": [
            {"name": n, "images": 10, "instances": k, "ap50": ap} for n, (k, ap, _) in classes.items()
        ],
        "images_at_operating_score": {
            "score": 0.35,
            "classes": {
                n: {"with": 1, "found": 1, "without": 0, "false_alarms": 0, "image_ap": iap}
                for n, (_, _, iap) in classes.items()
            },
        },
    }


def _arm(holdout: list[str], run: dict[str, Any], baseline: dict[str, Any]) -> dict[str, Any]:
    teacher = {s: _report(person=(r["classes"][0]["instances"], 0.6, 0.9)) for s, r in run.items()}
    return {
        "holdout": holdout,
        "imgsz": 320,
        "baseline": "builtin:anjian-n",
        "models": {"run": run, "baseline": baseline, "teacher": teacher, "teacher_at_run_size": teacher},
    }


ARM_A = _arm(
    ["fire_continuous", "cctv_person"],
    {"fire_continuous": _report(fire=(516, 0.054, 0.41)), "cctv_person": _report(person=(4084, 0.42, 0.97))},
    {"fire_continuous": _report(fire=(516, 0.05, 0.4)), "cctv_person": _report(person=(4084, 0.40, 0.96))},
)
ARM_B = _arm(
    ["fire_smoke_cctv"],
    {"fire_smoke_cctv": _report(fire=(349, 0.31, 0.7), smoke=(511, 0.2, 0.5))},
    {"fire_smoke_cctv": _report(fire=(349, 0.6, 0.8), smoke=(511, 0.7, 0.9))},
)


def test_the_summary_lists_each_class_on_every_source_it_was_held_out_from() -> None:
    section = _crosseval_section({"crosseval": [ARM_A, ARM_B]})

    summary = section.split("### Held out")[0]
    fire_rows = [line for line in summary.splitlines() if line.startswith("| fire |")]
    # both fire sources, each scored by the arm that never saw it, the weakest first
    assert fire_rows == [
        "| fire | fire_continuous | 516 | 0.054 | 0.050 | – | 0.410 |",
        "| fire | fire_smoke_cctv | 349 | 0.310 | 0.600 | – | 0.700 |",
    ]
    assert "| person | cctv_person | 4084 | 0.420 | 0.400 | 0.600 | 0.970 |" in summary
    # then each arm's own table under the sources it held out
    assert "### Held out: `fire_continuous`, `cctv_person`" in section
    assert "### Held out: `fire_smoke_cctv`" in section
    assert section.index("| fire_smoke_cctv | smoke | 10 | 511 |") > section.index(
        "### Held out: `fire_smoke_cctv`"
    )


def test_versions_recorded_with_one_arm_still_render() -> None:
    assert crosseval_arms({"crosseval": ARM_A}) == [ARM_A]
    assert crosseval_arms({"crosseval": {}}) == [] and _crosseval_section({}) == ""
    assert "### Held out: `fire_continuous`" in _crosseval_section({"crosseval": ARM_A})


def test_arm_files_are_checked_when_named(tmp_path: Path) -> None:
    good = tmp_path / "a.json"
    good.write_text(json.dumps(ARM_A))
    assert _read_crosseval_arms([good], is_default=False) == [ARM_A]
    # the default (W/crosseval.json) may be absent: a recipe without held-out sources
    assert _read_crosseval_arms([tmp_path / "none.json"], is_default=True) == []
    with pytest.raises(FileNotFoundError, match="none.json: no such file"):
        _read_crosseval_arms([good, tmp_path / "none.json"], is_default=False)
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(ValueError, match="broken.json: not JSON"):
        _read_crosseval_arms([broken], is_default=False)
    other = tmp_path / "meta.json"
    other.write_text(json.dumps({"name": "anjian-n"}))
    with pytest.raises(ValueError, match="meta.json: not a crosseval.json"):
        _read_crosseval_arms([other], is_default=False)


def test_finish_names_a_missing_arm_file_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from anjian.training.anjian_n import main

    missing = tmp_path / "rev10" / "crosseval.json"
    assert main(["finish", "--work", str(tmp_path / "work"), "--crosseval", str(missing)]) == 2
    err = capsys.readouterr().err
    assert f"error: finish: --crosseval {missing}: no such file" in err and "Traceback" not in err
