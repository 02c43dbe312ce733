"""Named dataset versions: recorded once per content, found by digest, listed, cited by derived sets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from anjian.datasets.errors import DatasetError
from anjian.datasets.hashing import dataset_digest
from anjian.datasets.versions import create_version, find_version, load_versions, version_of_data
from anjian.service.cli import app
from tests.support.real_data import copy_yolo_sample

runner = CliRunner()


def test_a_name_is_recorded_once_and_never_moves_to_other_content(tmp_path: Path) -> None:
    data = copy_yolo_sample("fire_smoke_cctv", tmp_path / "fire", per_split=3)
    versions = tmp_path / "versions.json"

    first, is_new = create_version("fire-v1", data, path=versions, note="three frames")
    again, is_new_again = create_version("fire-v1", data.parent, path=versions)

    assert is_new and not is_new_again and again == first
    assert first.data_hash == dataset_digest(data)
    assert first.images == {"train": 3, "val": 3} and first.sources == ("fire",)
    assert first.classes == ("Fire", "default", "smoke") and first.note == "three frames"
    assert find_version(first.data_hash, versions) == first
    label = next((tmp_path / "fire" / "labels" / "val").iterdir())
    label.write_text(label.read_text() + "2 0.5 0.5 0.1 0.1\n")  # one more box: new content
    with pytest.raises(DatasetError, match="already names other content"):
        create_version("fire-v1", data, path=versions)
    second, _ = create_version("fire-v2", data, path=versions)
    assert [v.name for v in load_versions(versions)] == ["fire-v1", "fire-v2"]
    assert find_version(dataset_digest(data), versions) == second
    assert find_version("sha256:unknown", versions) is None


def test_bad_names_and_files_are_refused_clearly(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="a version name is"):
        create_version("site 2025/03", tmp_path / "data.yaml", path=tmp_path / "v.json")
    with pytest.raises(DatasetError, match="does not exist"):
        create_version("site-1", tmp_path / "data.yaml", path=tmp_path / "v.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(DatasetError, match="not a dataset versions file"):
        load_versions(broken)
    assert find_version("sha256:x", broken) is None  # training never fails over a name


def test_a_teacher_completed_copy_cites_the_version_it_was_made_from(tmp_path: Path) -> None:
    data = copy_yolo_sample("fire_smoke_cctv", tmp_path / "fire", per_split=2)
    versions = tmp_path / "versions.json"
    create_version("fire-v1", data, path=versions)
    exact = version_of_data(data, dataset_digest(data), path=versions)
    assert exact == {"name": "fire-v1", "data_hash": dataset_digest(data), "is_exact": True}

    copy = tmp_path / "completed"
    copy.mkdir()
    (copy / "images").symlink_to(tmp_path / "fire" / "images")
    (copy / "labels").symlink_to(tmp_path / "fire" / "labels")
    raw = yaml.safe_load(data.read_text())
    raw.update(completed_from=str(data.resolve()), names=["Fire", "default", "smoke", "person"])
    (copy / "data.yaml").write_text(yaml.safe_dump(raw))
    derived = version_of_data(copy / "data.yaml", dataset_digest(copy / "data.yaml"), path=versions)
    assert derived is not None and derived["name"] == "fire-v1" and derived["is_exact"] is False
    assert version_of_data(copy / "data.yaml", "sha256:x", path=tmp_path / "none.json") is None


def test_version_create_and_list_on_the_cli(tmp_path: Path) -> None:
    data = copy_yolo_sample("fire_smoke_cctv", tmp_path / "fire", per_split=2)
    versions = ["--versions-file", str(tmp_path / "v.json")]
    empty = runner.invoke(app, ["dataset", "version", "list", *versions])
    assert empty.exit_code == 0 and "no dataset versions" in empty.output
    created = runner.invoke(app, ["dataset", "version", "create", "fire-v1", "--data", str(data), *versions])
    assert created.exit_code == 0, created.output
    assert "fire-v1: sha256:" in created.output
    same = runner.invoke(app, ["dataset", "version", "create", "fire-v1", "--data", str(data), *versions])
    assert same.exit_code == 0 and "nothing changed" in same.output
    out = tmp_path / "list.json"
    listed = runner.invoke(
        app, ["dataset", "version", "list", "--json", str(out), *versions], env={"COLUMNS": "200"}
    )
    assert listed.exit_code == 0 and "fire-v1" in listed.output
    assert [v["name"] for v in json.loads(out.read_text())] == ["fire-v1"]
    bad = runner.invoke(app, ["dataset", "version", "create", "bad name", "--data", str(data), *versions])
    assert bad.exit_code == 2 and "a version name is" in bad.output
