"""Class maps and merging: real hospital labels onto anjian's taxonomy, overlap rules, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from anjian.datasets.classmap import ClassMap, OverlapPolicy, load_class_map
from anjian.datasets.errors import ClassMapError
from anjian.datasets.labels import DetectionSet, LabelledImage
from anjian.datasets.merge import merge_sets, resolve_overlaps
from anjian.datasets.yolo import load_yolo_set
from tests.support.real_data import copy_yolo_sample, require_shared_data

ANJIAN_MAP = Path(__file__).resolve().parents[2] / "datasets" / "maps" / "anjian.yaml"


def _set(name: str, classes: tuple[str, ...], rows: list[list[float]]) -> DetectionSet:
    image = LabelledImage(Path(f"/x/{name}.jpg"), "train", np.array(rows, np.float32).reshape(-1, 5), name)
    return DetectionSet(name=name, class_names=classes, images=[image], labelled_classes={name: classes})


def test_real_fallen_patient_becomes_one_fallen_person_box(tmp_path: Path) -> None:
    sample = load_yolo_set(copy_yolo_sample("fall_hospital", tmp_path / "fall_hospital", per_split=40))
    fall_id = sample.class_names.index("fall")
    with_fall = [im for im in sample if (im.class_ids == fall_id).any()]
    if not with_fall:
        pytest.skip("no 'fall' box among the first sample images")

    merged, report = merge_sets([sample], load_class_map(ANJIAN_MAP))

    index = {im.image: im for im in merged}
    for item in with_fall:
        out = index[item.image]
        names = [merged.class_names[c] for c in out.class_ids]
        assert names.count("fallen_person") == int((item.class_ids == fall_id).sum())
        assert "bed" not in names
    rows = {r.source_class: r for r in report.rows}
    assert rows["bed"].target is None and rows["bed"].kept == 0
    assert rows["fall"].target == "fallen_person" and rows["fall"].kept == rows["fall"].boxes
    assert rows["patient"].kept < rows["patient"].boxes  # the patient boxes under 'fall' were dropped
    assert merged.labelled_classes == {"fall_hospital": ("person", "fallen_person")}


def test_real_patients_lying_in_bed_stay_people() -> None:
    sample = load_yolo_set(require_shared_data("fall_hospital") / "data.yaml")
    lie_id, fall_id = sample.class_names.index("lie"), sample.class_names.index("fall")
    in_bed = [im for im in sample if (im.class_ids == lie_id).any() and not (im.class_ids == fall_id).any()]
    assert len(in_bed) > 100  # every 'lie' box of the set is a patient on a bed

    merged, _ = merge_sets([sample], load_class_map(ANJIAN_MAP))

    index = {im.image: im for im in merged}
    for item in in_bed:
        names = [merged.class_names[c] for c in index[item.image].class_ids]
        assert "fallen_person" not in names
        assert names.count("person") >= int((item.class_ids == lie_id).sum())


@pytest.mark.parametrize(
    ("rows", "kept"),
    [
        ([[0, 0.5, 0.5, 0.2, 0.4], [1, 0.5, 0.5, 0.2, 0.41]], [1]),
        ([[0, 0.5, 0.5, 0.2, 0.4], [0, 0.5, 0.5, 0.2, 0.41]], [0]),
        ([[0, 0.2, 0.5, 0.2, 0.4], [1, 0.7, 0.5, 0.2, 0.4]], [0, 1]),
        ([[2, 0.5, 0.5, 0.2, 0.4], [0, 0.5, 0.5, 0.2, 0.4]], [2, 0]),
    ],
    ids=["priority-wins", "same-class-merged", "apart-kept", "outside-policy-kept"],
)
def test_overlapping_labels_of_one_object_resolve_by_priority(
    rows: list[list[float]], kept: list[int]
) -> None:
    policy = OverlapPolicy(iou=0.7, priority=("fallen_person", "person"))
    out = resolve_overlaps(np.array(rows, np.float32), ("person", "fallen_person", "fire"), policy)
    assert out[:, 0].astype(int).tolist() == kept


def test_merge_maps_names_drops_default_and_records_what_each_set_labels() -> None:
    fire = _set(
        "fire_smoke_cctv", ("Fire", "default", "smoke"), [[0, 0.5, 0.5, 0.1, 0.1], [1, 0.2, 0.2, 0.1, 0.1]]
    )
    cig = _set("cigarette", ("cigarette",), [[0, 0.5, 0.5, 0.05, 0.05]])

    merged, report = merge_sets([fire, cig], load_class_map(ANJIAN_MAP))

    assert merged.class_names[:5] == ("person", "fallen_person", "fire", "smoke", "cigarette")
    by_source = {im.source: [merged.class_names[c] for c in im.class_ids] for im in merged}
    assert by_source == {"fire_smoke_cctv": ["fire"], "cigarette": ["cigarette"]}
    assert merged.labelled_classes["cigarette"] == ("cigarette",)  # persons there are unlabelled
    assert {r.source_class: r.target for r in report.rows if r.set_name == "fire_smoke_cctv"} == {
        "Fire": "fire",
        "default": None,
        "smoke": "smoke",
    }


def test_unmapped_class_is_an_error_when_the_map_says_so() -> None:
    strict = ClassMap(classes=("fire",), unmapped="error")
    with pytest.raises(ClassMapError, match="'flame' is not in the class map"):
        merge_sets([_set("s", ("flame",), [])], strict)


def test_sets_need_distinct_names() -> None:
    with pytest.raises(ValueError, match="distinct names"):
        merge_sets([_set("s", ("fire",), []), _set("s", ("fire",), [])], ClassMap(classes=("fire",)))


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("classes: [fire]\nmap: {Flame: flame}\n", "not in classes"),
        ("classes: [fire, fire]\n", "repeat"),
        ("classes: [fire]\nunmaped: drop\n", "unmaped"),
        ("classes: []\n", "classes"),
        ("classes: [fire]\noverlap: {priority: [smoke]}\n", "priority"),
    ],
    ids=["unknown-target", "repeated", "typo-key", "no-classes", "bad-priority"],
)
def test_invalid_class_map_file_is_rejected_with_its_path(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "map.yaml"
    path.write_text(text)
    with pytest.raises(ClassMapError, match=match):
        load_class_map(path)


def test_shipped_anjian_map_covers_every_public_set_class() -> None:
    mapping = load_class_map(ANJIAN_MAP)
    expected = {
        ("fall_hospital", "fall"): "fallen_person",
        ("fall_hospital", "lie"): "person",  # a patient lying in bed has not fallen
        ("fall_hospital", "wheelchair"): None,
        ("forklift_person", "person"): "person",
        ("pallet", "Wooden-Pallet"): "pallet",
        ("fire_smoke_cctv", "Fire"): "fire",
    }
    assert {k: mapping.target_of(*k) for k in expected} == expected


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (
            "classes: [pallet]\nmap: {Wooden-Palet: pallet}\n",
            r"map keys \['Wooden-Palet'\].*misspelt: map key 'Wooden-Palet' for class 'Wooden-Pallet'\?",
        ),
        (
            "classes: [pallet]\nsets: {palet: {Wooden-Pallet: pallet}}\n",
            r"sets \['palet'\].*'palet' for set 'pallet'",
        ),
    ],
    ids=["misspelt-class-key", "misspelt-set-name"],
)
def test_a_misspelt_class_map_name_is_refused_not_a_silently_dropped_class(
    tmp_path: Path, text: str, match: str
) -> None:
    path = tmp_path / "map.yaml"
    path.write_text(text)
    pallet = _set("pallet", ("Wooden-Pallet",), [[0, 0.5, 0.5, 0.2, 0.2]])

    with pytest.raises(ClassMapError, match=match) as raised:
        merge_sets([pallet], load_class_map(path))

    assert "'Wooden-Pallet' of set 'pallet'" in str(raised.value) and "null" in str(raised.value)


def test_a_per_set_entry_naming_a_class_the_set_lacks_is_refused_listing_its_classes() -> None:
    mapping = ClassMap(classes=("pallet",), sets={"pallet": {"Wooden-Palet": "pallet"}})
    with pytest.raises(ClassMapError, match=r"sets\.pallet names \['Wooden-Palet'\].*\['Wooden-Pallet'\]"):
        merge_sets([_set("pallet", ("Wooden-Pallet",), [])], mapping)


def test_deliberate_drops_and_entries_for_other_sets_are_still_accepted() -> None:
    pallet = _set("pallet", ("Wooden-Pallet", "box"), [[0, 0.5, 0.5, 0.2, 0.2], [1, 0.1, 0.1, 0.1, 0.1]])
    # a shared map: entries for sets and classes not merged now, and 'box' dropped on purpose
    mapping = ClassMap(
        classes=("pallet", "fire"),
        map={"Fire": "fire", "Wooden-Pallet": "pallet", "box": None},
        sets={"fire_smoke_cctv": {"default": None}},
    )
    merged, report = merge_sets([pallet], mapping)
    assert merged.box_count() == 1 and {r.source_class: r.target for r in report.rows}["box"] is None

    # a class left unnamed with every map entry in use: dropped by `unmapped: drop`, as documented
    unnamed, _ = merge_sets([pallet], ClassMap(classes=("pallet",), map={"Wooden-Pallet": "pallet"}))
    assert unnamed.box_count() == 1


def test_merge_on_the_cli_refuses_a_misspelt_map_before_writing(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from anjian.service.cli import app

    sample = copy_yolo_sample("pallet", tmp_path / "pallet", per_split=2)
    (tmp_path / "typo.yaml").write_text("classes: [pallet]\nmap: {Wooden-Palet: pallet}\n")
    args = ["dataset", "merge", str(sample), "--class-map", str(tmp_path / "typo.yaml")]

    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "out")])

    assert result.exit_code == 2, result.output
    assert "Wooden-Palet" in result.output and not (tmp_path / "out").exists()
