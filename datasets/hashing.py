"""A content digest of a YOLO set, recorded next to every model trained or evaluated on it."""

from __future__ import annotations

import hashlib
from pathlib import Path

import yaml

from anjian.datasets.labels import ProgressFn, no_progress
from anjian.datasets.yolo import dataset_root, entry_images, label_path_for

__all__ = ["dataset_digest"]


def dataset_digest(data_yaml: Path, *, progress: ProgressFn = no_progress) -> str:
    """SHA-256 over a YOLO set's class names and, per split, every image's bytes and label text.

    A split's images are found as :func:`anjian.datasets.yolo.load_yolo_set` finds them: under a
    folder (through symlinked sub-folders), or the lines of a ``.txt`` list. Paths enter only
    as named there (relative to their split folder, or as the list writes them), so a moved or
    re-linked copy of the same data has the same digest, and any relabelled box or swapped
    image changes it.

    Args:
        data_yaml: The set's ``data.yaml``.
        progress: Wraps the per-image loop.

    Returns:
        ``sha256:<hex>``.
    """
    data_yaml = Path(data_yaml)
    data = yaml.safe_load(data_yaml.read_text())
    root = dataset_root(data, data_yaml)
    digest = hashlib.sha256()
    digest.update(repr(list(data.get("names", []))).encode())
    for split in ("train", "val", "test"):
        if not data.get(split):
            continue
        entries = data[split] if isinstance(data[split], list) else [data[split]]
        for entry in entries:
            path = root / str(entry)
            is_listed = path.is_dir() or (path.is_file() and path.suffix == ".txt")
            images = entry_images(path, data_yaml) if is_listed else []
            digest.update(f"\n[{split}:{entry}]".encode())
            for image, name in progress(images, f"hash {split}", len(images)):
                digest.update(name.encode())
                # a listed image may be missing (a folder's images exist): it is part of the content
                digest.update(hashlib.sha256(image.read_bytes()).digest() if image.is_file() else b"-")
                label = label_path_for(image)
                digest.update(label.read_bytes() if label.is_file() else b"-")
    return f"sha256:{digest.hexdigest()}"
