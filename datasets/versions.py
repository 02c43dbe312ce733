"""Named dataset versions: a name an analyst can cite for a set's exact content.

A content digest (:func:`anjian.datasets.hashing.dataset_digest`) tells whether two copies hold the
same images and labels, but nobody remembers ``sha256:3d43…``. ``anjian dataset version
create site-2025-03 --data sets/site/data.yaml`` records a name with the set's digest, the
sources it merges, its classes, its images per split and the time; the training record
(``anjian_train.json``) and the model card then cite the name whenever the data they used
has that digest.

The versions file is JSON (``{"versions": [...]}``), one per analyst machine or team share:
``$ANJIAN_DATASET_VERSIONS`` when set, else ``$XDG_DATA_HOME/anjian/dataset_versions.json``
(``~/.local/share/anjian/…``). A version never changes: the same name with other content is
refused, so a name always means one content.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from platformdirs import user_data_path

from anjian.datasets.errors import DatasetError, DatasetFormatError
from anjian.datasets.hashing import dataset_digest
from anjian.datasets.labels import ProgressFn, no_progress
from anjian.datasets.yolo import load_yolo_set

__all__ = [
    "VERSIONS_ENV",
    "DatasetVersion",
    "create_version",
    "default_versions_path",
    "find_version",
    "load_versions",
    "version_of_data",
]

VERSIONS_ENV = "ANJIAN_DATASET_VERSIONS"
"""Environment variable naming the versions file."""

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_DERIVED_FROM = "completed_from"  # written by training.complete_labels into the completed copy's data.yaml


@dataclass(frozen=True, slots=True)
class DatasetVersion:
    """One named content of a labelled set.

    Attributes:
        name: The version's name (``site-2025-03``).
        data: Absolute path of the ``data.yaml`` it was recorded from.
        data_hash: Its content digest, ``sha256:…``.
        created_at: ISO time it was recorded.
        sources: The source sets it holds (a merged set lists each).
        classes: Class names, in id order.
        images: Images per split.
        note: Free text from the analyst.
    """

    name: str
    data: str
    data_hash: str
    created_at: str
    sources: tuple[str, ...] = ()
    classes: tuple[str, ...] = ()
    images: dict[str, int] = field(default_factory=dict)
    note: str = ""

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {
            "name": self.name,
            "data": self.data,
            "data_hash": self.data_hash,
            "created_at": self.created_at,
            "sources": list(self.sources),
            "classes": list(self.classes),
            "images": dict(self.images),
            "note": self.note,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DatasetVersion:
        """Read back :meth:`to_dict`."""
        return cls(
            name=str(data["name"]),
            data=str(data["data"]),
            data_hash=str(data["data_hash"]),
            created_at=str(data.get("created_at", "")),
            sources=tuple(str(s) for s in data.get("sources", [])),
            classes=tuple(str(c) for c in data.get("classes", [])),
            images={str(k): int(v) for k, v in dict(data.get("images", {})).items()},
            note=str(data.get("note", "")),
        )


def default_versions_path() -> Path:
    """The versions file: ``$ANJIAN_DATASET_VERSIONS``, else in the user's data folder (``$XDG_DATA_HOME/anjian``)."""
    configured = os.environ.get(VERSIONS_ENV)
    return Path(configured).expanduser() if configured else user_data_path("anjian") / "dataset_versions.json"


def load_versions(path: Path | None = None) -> list[DatasetVersion]:
    """Every recorded version, oldest first (none when the file does not exist yet).

    Raises:
        DatasetFormatError: The file exists but is not a versions file.
    """
    path = path or default_versions_path()
    if not path.is_file():
        return []
    try:
        data = json.loads(path.read_text())
        return [DatasetVersion.from_dict(v) for v in data["versions"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DatasetFormatError(f"{path} is not a dataset versions file: {exc}") from exc


def find_version(data_hash: str, path: Path | None = None) -> DatasetVersion | None:
    """The latest version recorded with this digest, ``None`` when the content was never named.

    A versions file that cannot be read counts as holding no version, so that training or
    evaluation never fails over a name.
    """
    try:
        versions = load_versions(path)
    except DatasetFormatError:
        return None
    matches = [v for v in versions if v.data_hash == data_hash]
    return matches[-1] if matches else None


def version_of_data(data_yaml: Path, data_hash: str, *, path: Path | None = None) -> dict[str, object] | None:
    """The named version a set is, or was made from, for training records and model cards.

    A set ``anjian train`` completed with teacher labels is a copy of the analyst's set
    (its ``data.yaml`` says ``completed_from``): it names the version of that set, with
    ``is_exact`` false.

    Args:
        data_yaml: The set trained or evaluated on.
        data_hash: Its digest.
        path: The versions file.

    Returns:
        ``{"name", "data_hash", "is_exact"}`` (plus ``"derived_by"`` when not exact), or ``None``.
    """
    exact = find_version(data_hash, path)
    if exact is not None:
        return {"name": exact.name, "data_hash": exact.data_hash, "is_exact": True}
    try:
        raw = yaml.safe_load(Path(data_yaml).read_text())
    except (OSError, yaml.YAMLError):
        return None
    origin = (
        Path(str(raw.get(_DERIVED_FROM, ""))) if isinstance(raw, dict) and raw.get(_DERIVED_FROM) else None
    )
    try:
        if origin is None or not origin.is_file() or not load_versions(path):
            return None
    except DatasetFormatError:
        return None
    found = find_version(dataset_digest(origin), path)
    if found is None:
        return None
    return {
        "name": found.name,
        "data_hash": found.data_hash,
        "is_exact": False,
        "derived_by": "teacher labels added",
    }


def _sources_and_counts(data_yaml: Path) -> tuple[tuple[str, ...], tuple[str, ...], dict[str, int]]:
    """Sources (from ``labelled_classes`` of a merged set, else the set itself), classes, images per split."""
    dataset = load_yolo_set(data_yaml)
    raw = yaml.safe_load(data_yaml.read_text())
    labelled = raw.get("labelled_classes") if isinstance(raw, dict) else None
    sources = tuple(labelled) if isinstance(labelled, dict) and labelled else (dataset.name,)
    counts = Counter(im.split for im in dataset.images)
    return sources, dataset.class_names, {s: counts[s] for s in dataset.splits}


def create_version(
    name: str,
    data_yaml: Path,
    *,
    path: Path | None = None,
    note: str = "",
    progress: ProgressFn = no_progress,
) -> tuple[DatasetVersion, bool]:
    """Record ``name`` for the current content of a YOLO set.

    Args:
        name: 1-64 letters, digits, ``.``, ``_`` or ``-``, starting with a letter or digit.
        data_yaml: The set's ``data.yaml`` (or its folder).
        path: The versions file (default: :func:`default_versions_path`).
        note: Free text kept with the version.
        progress: Wraps the hashing loop.

    Returns:
        The version, and whether it was new (``False``: the name already held this content).

    Raises:
        ValueError: The name is not a valid version name.
        DatasetError: The name is taken by another content, or the set cannot be read.
    """
    if not _NAME.match(name):
        raise ValueError(
            f"a version name is 1-64 letters, digits, '.', '_' or '-' starting with a letter or digit, got {name!r}"
        )
    data_yaml = Path(data_yaml)
    data_yaml = (data_yaml / "data.yaml" if data_yaml.is_dir() else data_yaml).resolve()
    if not data_yaml.is_file():
        raise DatasetFormatError(f"{data_yaml} does not exist")
    path = path or default_versions_path()
    versions = load_versions(path)
    digest = dataset_digest(data_yaml, progress=progress)
    for existing in versions:
        if existing.name == name:
            if existing.data_hash == digest:
                return existing, False
            raise DatasetError(
                f"version {name!r} already names other content ({existing.data_hash[:19]}…, "
                f"recorded {existing.created_at} from {existing.data}); the data changed since: "
                "choose a new name"
            )
    sources, classes, images = _sources_and_counts(data_yaml)
    version = DatasetVersion(
        name=name,
        data=str(data_yaml),
        data_hash=digest,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        sources=sources,
        classes=classes,
        images=images,
        note=note,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"versions": [v.to_dict() for v in [*versions, version]]}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    os.replace(tmp, path)
    return version, True
