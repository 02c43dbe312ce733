"""``anjian dataset harvest``: judged alerts in the service's store become a dataset."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from anjian.service.cli import app
from anjian.service.config import load_config
from anjian.service.lifecycle import Action
from anjian.service.store import EventStore
from tests.factories import make_event, make_jpeg


def test_false_alarms_and_resolved_alerts_are_harvested_open_ones_are_not(tmp_path: Path) -> None:
    data = tmp_path / "data"
    site = {
        "site": {
            "id": "plant",
            "timezone": "UTC",
            "workshops": [{"id": "ws", "name": "WS", "cameras": [{"id": "cam-1", "url": "x.mp4"}]}],
        },
        "model": {"path": "builtin:anjian-demo"},
        "storage": {"dir": str(data)},
    }
    (tmp_path / "site.yaml").write_text(yaml.safe_dump(site))
    store = EventStore.from_config(load_config(tmp_path / "site.yaml").storage)
    actions = {
        "lamp": [Action.ACKNOWLEDGE, Action.FALSE_ALARM],
        "lamp-closed": [Action.ACKNOWLEDGE, Action.FALSE_ALARM, Action.CLOSE],
        "fire": [Action.ACKNOWLEDGE, Action.RESOLVE, Action.CLOSE],
        "open": [],
        "no-snapshot": [Action.ACKNOWLEDGE, Action.RESOLVE],
    }
    ids = {}
    try:
        for name, steps in actions.items():
            event = make_event()
            snapshot = None
            if name != "no-snapshot":
                snapshot = f"snapshots/{event.id}.jpg"
                (data / "snapshots").mkdir(parents=True, exist_ok=True)
                (data / snapshot).write_bytes(make_jpeg())
            store.upsert_event(event, snapshot_path=snapshot)
            for action in steps:
                store.transition(event.id, action, actor="op", note="checked")
            ids[name] = event.id
    finally:
        store.close()

    result = CliRunner().invoke(
        app,
        ["dataset", "harvest", "--config", str(tmp_path / "site.yaml"), "--out", str(tmp_path / "harvest")],
    )

    assert result.exit_code == 0, result.output
    assert "2 hard negative(s), 1 image(s) to label" in result.output
    out = tmp_path / "harvest"
    negatives = {p.stem for p in (out / "hard_negatives" / "images").iterdir()}
    assert negatives == {ids["lamp"], ids["lamp-closed"]}
    assert {p.stem for p in (out / "to_label" / "images").iterdir()} == {ids["fire"]}
    # the demo model's classes are fire, smoke: the alert's fire box is a pre-label of class 0
    assert (out / "to_label" / "labels" / f"{ids['fire']}.txt").read_text().startswith("0 0.200000 0.300000")
    manifest = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert len(manifest) == 3 and all(m["camera_id"] == "cam-1" for m in manifest)


def test_a_mistyped_storage_dir_is_an_error_and_creates_nothing(tmp_path: Path) -> None:
    typo = tmp_path / "dtaa"
    site = {
        "site": {"id": "plant", "workshops": [{"id": "ws", "cameras": [{"id": "cam-1", "url": "x.mp4"}]}]},
        "model": {"path": "builtin:anjian-demo"},
        "storage": {"dir": str(typo)},
    }
    (tmp_path / "site.yaml").write_text(yaml.safe_dump(site))
    args = ["dataset", "harvest", "--config", str(tmp_path / "site.yaml"), "--out", str(tmp_path / "harvest")]

    result = CliRunner().invoke(app, args)

    assert result.exit_code == 2
    assert f"no event database at {typo / 'anjian.db'}" in " ".join(result.output.split()).replace("\n", "")
    assert not typo.exists() and not (tmp_path / "harvest").exists()
