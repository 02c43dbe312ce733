"""``anjian eval-events``: replay clips with known incidents and score the alerts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from anjian.datasets.synthetic import write_demo_video
from anjian.service.cli import app

pytestmark = pytest.mark.slow


def test_eval_events_scores_alerts_against_expected_incidents(tmp_path: Path) -> None:
    clip = write_demo_video(tmp_path / "clips" / "fire.mp4", seconds=12, fps=10, size_wh=(480, 270))
    camera = {
        "id": "cam-1",
        "url": str(clip),
        "analysis_fps": 5,
        "behaviours": {
            "open_flame": {"classes": ["fire"], "min_confidence": 0.4, "k": 3, "n": 5, "clear_after_s": 2}
        },
    }
    site = {
        "site": {
            "id": "plant",
            "timezone": "UTC",
            "workshops": [{"id": "ws", "name": "WS", "cameras": [camera]}],
        },
        "model": {"path": "builtin:anjian-demo/1"},
        "storage": {"dir": str(tmp_path / "data")},
    }
    (tmp_path / "site.yaml").write_text(yaml.safe_dump(site))
    spec = {
        "tolerance_s": 1.0,
        "clips": [
            {
                "video": "clips/fire.mp4",
                "camera": "cam-1",
                "expected": [{"behaviour": "open_flame", "start_s": 5, "end_s": 7}],
            },
            {
                "video": "clips/fire.mp4",
                "camera": "cam-1",
                "expected": [],
            },  # told it is quiet: an alert is false
            {
                "video": "clips/fire.mp4",
                "camera": "cam-1",
                "until_s": 4,
                "expected": [{"behaviour": "smoking", "start_s": 1, "end_s": 3}],
            },  # missed: no such alert
        ],
    }
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))

    result = CliRunner().invoke(
        app,
        [
            "eval-events",
            str(tmp_path / "spec.yaml"),
            "--config",
            str(tmp_path / "site.yaml"),
            "--json",
            str(tmp_path / "out.json"),
            "--record",
            "anjian-demo/1",
            "--registry",
            str(tmp_path / "site"),
        ],
    )

    assert result.exit_code == 0, result.output
    rows = {r["behaviour"]: r for r in json.loads((tmp_path / "out.json").read_text())["behaviours"]}
    flame = rows["open_flame"]
    assert (flame["expected"], flame["raised"], flame["true_positives"]) == (1, 2, 1)
    assert flame["precision"] == 0.5 and flame["recall"] == 1.0
    assert 0.0 <= flame["median_time_to_alert_s"] <= 2.0  # k=3 of n=5 frames at 5 fps
    assert rows["smoking"]["recall"] == 0.0 and rows["all"]["expected"] == 2
    assert "nan" not in result.output.lower()  # undefined figures print as dashes

    record_dir = (
        tmp_path / "site" / "anjian-demo" / "1"
    )  # a shipped version's records live in the site's registry
    (kept,) = json.loads((record_dir / "meta.json").read_text())["event_evals"]
    assert (kept["spec"], kept["model_spec"], kept["clips"], kept["quiet_clips"]) == (
        str(tmp_path / "spec.yaml"),
        "builtin:anjian-demo/1",
        3,
        1,
    )
    assert kept["missed"] == ["fire.mp4 (smoking)"] and kept["false_alerts"] == ["fire.mp4 (open_flame)"]
    assert kept["spec_path"] == str((tmp_path / "spec.yaml").resolve())
    card = (record_dir / "card.md").read_text()
    assert "## Real clips through the whole pipeline" in card
    assert "| open_flame | 1 | 2 | 1 | 0.500 | 1.000 |" in card
    assert "False alerts: fire.mp4 (open_flame)." in card
    assert "camera cam-1 does not run the smoking rule" in result.output  # why the smoking clip is missed
    clips = json.loads((tmp_path / "out.json").read_text())["clips"]
    [incident] = clips[0]["incidents"]
    assert incident["time_to_alert_s"] == pytest.approx(flame["median_time_to_alert_s"], abs=0.01)
    assert clips[0]["first_alert_s"] is not None and clips[0]["first_alert_s"] <= incident["alert_s"]
    assert [a["matched"] for a in clips[1]["alerts"]] == [False] and clips[2]["hints"]


def test_eval_events_rejects_an_unknown_camera(tmp_path: Path) -> None:
    site = {
        "site": {
            "id": "p",
            "timezone": "UTC",
            "workshops": [{"id": "ws", "name": "WS", "cameras": [{"id": "cam-1", "url": "x.mp4"}]}],
        },
        "storage": {"dir": str(tmp_path / "data")},
    }
    (tmp_path / "site.yaml").write_text(yaml.safe_dump(site))
    (tmp_path / "spec.yaml").write_text("clips: [{video: a.mp4, camera: nope}]\n")
    result = CliRunner().invoke(
        app, ["eval-events", str(tmp_path / "spec.yaml"), "--config", str(tmp_path / "site.yaml")]
    )
    assert result.exit_code == 2 and "no camera 'nope'" in result.output


def test_eval_events_records_only_the_version_that_ran(tmp_path: Path) -> None:
    site = {
        "site": {
            "id": "p",
            "timezone": "UTC",
            "workshops": [{"id": "ws", "name": "WS", "cameras": [{"id": "cam-1", "url": "x.mp4"}]}],
        },
        "model": {"path": "builtin:anjian-demo/1"},
        "storage": {"dir": str(tmp_path / "data")},
    }
    (tmp_path / "site.yaml").write_text(yaml.safe_dump(site))
    (tmp_path / "spec.yaml").write_text("clips: [{video: a.mp4, camera: cam-1}]\n")
    args = ["eval-events", str(tmp_path / "spec.yaml"), "--config", str(tmp_path / "site.yaml")]
    result = CliRunner().invoke(
        app, [*args, "--record", "anjian-demo/2", "--registry", str(tmp_path / "reg")]
    )
    assert result.exit_code == 2
    output = " ".join(result.output.split())
    assert "--model builtin:anjian-demo/1 is" in output and "not anjian-demo/2" in output, output
    assert not (tmp_path / "reg").exists()  # nothing replayed, nothing recorded


def test_records_of_two_spec_files_of_one_name_are_both_kept(tmp_path: Path) -> None:
    from anjian.training.eval_record import record_event_evaluation

    report = {
        "behaviours": [{"behaviour": "all", "expected": 0, "raised": 0, "true_positives": 0}],
        "clips": [],
    }
    site = tmp_path / "site"
    for folder in ("fire", "val", "fire"):  # the last one runs the first spec again: it replaces its record
        (tmp_path / folder).mkdir(exist_ok=True)
        spec = tmp_path / folder / "clips.yaml"
        record_event_evaluation(
            "anjian-demo", "1", report, spec=str(spec), model_spec="builtin:anjian-demo/1", root=site
        )
    kept = json.loads((site / "anjian-demo" / "1" / "meta.json").read_text())["event_evals"]
    assert [Path(r["spec"]).parent.name for r in kept] == ["val", "fire"]
