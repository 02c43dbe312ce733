"""The model registry: versioned detector files, a promoted version per model, rollback.

Layout (``REGISTRY_DIR`` is ``models/registry/`` of the install; every function takes
another ``root`` for a site's own registry)::

    <root>/<name>/<version>/model.onnx      the detector (ultralytics ONNX export)
    <root>/<name>/<version>/meta.json       metrics, data hash, created_at, recipe ...
    <root>/<name>/<version>/card.md         the model card
    <root>/<name>/promoted                  the promoted version (one line); absent: the latest
    <root>/<name>/promoted@<scope>          a version promoted for one scope (site or camera)
    <root>/<name>/history.jsonl             every promotion, for rollback and audit

``builtin:NAME`` resolves to the promoted version, ``builtin:NAME@SCOPE`` to the one
promoted for that scope (else the promoted one), ``builtin:NAME/VERSION`` to a fixed
version. A running pipeline polls :class:`PromotionWatch` (one ``stat`` per poll) and
swaps its detector when the promoted version changes. This module imports only the
standard library so the runtime can use it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from models.errors import ModelLoadError

__all__ = [
    "REGISTRY_DIR",
    "ModelVersion",
    "PromotionWatch",
    "builtin_model_names",
    "list_versions",
    "promote",
    "promoted_version",
    "register_version",
    "resolve_model_path",
    "rollback",
]

REGISTRY_DIR = Path(__file__).resolve().parent / "registry"

_SCOPE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


@dataclass(frozen=True, slots=True)
class ModelVersion:
    """One registered version of a model.

    Attributes:
        name: Model name (``anjian-n``).
        version: Version folder name (digits).
        directory: The version's folder.
        meta: Parsed ``meta.json`` (empty when missing).
        is_promoted: Whether ``builtin:NAME`` resolves to it.
    """

    name: str
    version: str
    directory: Path
    meta: Mapping[str, Any]
    is_promoted: bool

    @property
    def onnx(self) -> Path:
        """The model file."""
        return self.directory / "model.onnx"

    @property
    def created_at(self) -> str:
        """ISO timestamp from the metadata, or the file's modification time."""
        created = self.meta.get("created_at")
        if created:
            return str(created)
        return datetime.fromtimestamp(self.onnx.stat().st_mtime, UTC).isoformat(timespec="seconds")


def _root(root: Path | None) -> Path:
    """The registry folder to use."""
    return Path(root) if root is not None else REGISTRY_DIR


def builtin_model_names(root: Path | None = None) -> list[str]:
    """Names of the models in the registry."""
    folder = _root(root)
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.is_dir())


def _version_dirs(model_dir: Path) -> list[Path]:
    """Version folders holding a model file, oldest first."""
    if not model_dir.is_dir():
        return []
    found = [
        p for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit() and (p / "model.onnx").is_file()
    ]
    return sorted(found, key=lambda p: int(p.name))


def _pointer(model_dir: Path, scope: str | None) -> Path:
    """The file naming the promoted version (for a scope)."""
    if scope is not None and not _SCOPE.match(scope):
        raise ValueError(f"scope must be 1-64 letters, digits, '_', '.' or '-', got {scope!r}")
    return model_dir / ("promoted" if scope is None else f"promoted@{scope}")


def _read_pointer(path: Path) -> str | None:
    """Version named in a pointer file, or ``None``."""
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return text or None


def promoted_version(name: str, *, scope: str | None = None, root: Path | None = None) -> str | None:
    """The version ``builtin:NAME[@SCOPE]`` resolves to, ``None`` when the model has none.

    The scope's pointer wins, then the model's pointer, then the latest version.
    """
    model_dir = _root(root) / name
    for pointer in ([_pointer(model_dir, scope)] if scope else []) + [_pointer(model_dir, None)]:
        version = _read_pointer(pointer)
        if version and (model_dir / version / "model.onnx").is_file():
            return version
    versions = _version_dirs(model_dir)
    return versions[-1].name if versions else None


def list_versions(name: str, *, root: Path | None = None) -> list[ModelVersion]:
    """Every version of a model, oldest first.

    Raises:
        ModelLoadError: The model does not exist.
    """
    model_dir = _root(root) / name
    if not model_dir.is_dir():
        raise ModelLoadError(
            f"no model {name!r} in {_root(root)}; models: {builtin_model_names(root) or 'none'}"
        )
    promoted = promoted_version(name, root=root)
    out = []
    for folder in _version_dirs(model_dir):
        meta_path = folder / "meta.json"
        try:
            meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
        except (OSError, json.JSONDecodeError):
            meta = {}
        out.append(ModelVersion(name, folder.name, folder, meta, folder.name == promoted))
    return out


def _write_atomic(path: Path, text: str) -> None:
    """Replace a file's content in one rename, so a reader never sees half of it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _history(model_dir: Path) -> list[dict[str, Any]]:
    """Promotion records, oldest first."""
    path = model_dir / "history.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def promote(
    name: str, version: str, *, scope: str | None = None, root: Path | None = None, note: str = ""
) -> str | None:
    """Make ``version`` the one ``builtin:NAME[@SCOPE]`` resolves to; running pipelines pick it up.

    Returns:
        The version promoted before (``None`` when there was none).

    Raises:
        ModelLoadError: The version does not exist.
        ValueError: The scope name is invalid.
    """
    model_dir = _root(root) / name
    if not (model_dir / version / "model.onnx").is_file():
        known = [v.name for v in _version_dirs(model_dir)]
        raise ModelLoadError(
            f"{name} has no version {version!r} with a model.onnx; versions: {known or 'none'}"
        )
    pointer = _pointer(model_dir, scope)
    previous = _read_pointer(pointer) if scope else promoted_version(name, root=root)
    _write_atomic(pointer, version + "\n")
    record = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "scope": scope,
        "version": version,
        "previous": previous,
        "note": note,
    }
    with (model_dir / "history.jsonl").open("a") as fh:
        fh.write(json.dumps(record) + "\n")
    return previous


def rollback(name: str, *, scope: str | None = None, root: Path | None = None) -> str:
    """Promote again the version that was promoted before the current one.

    Returns:
        The version now promoted.

    Raises:
        ModelLoadError: There is no earlier promotion to go back to.
    """
    model_dir = _root(root) / name
    current = promoted_version(name, scope=scope, root=root)
    mine = [r for r in _history(model_dir) if r.get("scope") == scope]
    # walk back over promote/rollback records to the version before the current one
    for record in reversed(mine):
        if record["version"] == current and record.get("previous") and record["previous"] != current:
            target = str(record["previous"])
            if (model_dir / target / "model.onnx").is_file():
                promote(name, target, scope=scope, root=root, note=f"rollback from {current}")
                return target
    raise ModelLoadError(f"{name}{'@' + scope if scope else ''}: no earlier promoted version to roll back to")


def register_version(
    name: str,
    onnx_path: Path,
    meta: Mapping[str, Any],
    card_md: str,
    *,
    version: str | None = None,
    root: Path | None = None,
) -> ModelVersion:
    """Copy a model file into a new registry version with its metadata and card.

    ``meta`` gains ``name``, ``version`` and ``created_at`` when it lacks them. The new
    version is not promoted.

    Args:
        name: Model name.
        onnx_path: The exported model.
        meta: Metrics, data hash, recipe ... (JSON-serialisable).
        card_md: The model card, markdown.
        version: Version folder name; the next free number when ``None``.
        root: Registry folder.

    Returns:
        The registered version.

    Raises:
        FileExistsError: The version exists already.
        ValueError: ``version`` is not made of digits.
    """
    model_dir = _root(root) / name
    existing = _version_dirs(model_dir)
    version = version or str(int(existing[-1].name) + 1 if existing else 1)
    if not version.isdigit():
        raise ValueError(f"versions are numbers, got {version!r}")
    target = model_dir / version
    if (target / "model.onnx").exists():
        raise FileExistsError(f"{target} holds a model already")
    target.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(onnx_path, target / "model.onnx")
    full = {"name": name, "version": version, "created_at": datetime.now(UTC).isoformat(timespec="seconds")}
    full.update(meta)
    (target / "meta.json").write_text(json.dumps(full, indent=2, default=str) + "\n")
    (target / "card.md").write_text(card_md)
    return ModelVersion(name, version, target, full, version == promoted_version(name, root=root))


def resolve_model_path(spec: str, *, root: Path | None = None) -> Path:
    """Turn a model spec into a file path.

    Args:
        spec: A path to a model file; ``builtin:NAME`` (the promoted version, else the
            latest); ``builtin:NAME@SCOPE`` (the version promoted for that scope, else as
            ``builtin:NAME``); or ``builtin:NAME/VERSION``.
        root: Registry folder; the shipped one when ``None``.

    Returns:
        Path of the ONNX file.

    Raises:
        ModelLoadError: The builtin model or version does not exist.
    """
    if not spec.startswith("builtin:"):
        return Path(spec)
    body = spec.removeprefix("builtin:")
    name, _, version = body.partition("/")
    name, _, scope = name.partition("@")
    model_dir = _root(root) / name
    if not name or not model_dir.is_dir():
        raise ModelLoadError(
            f"no builtin model {name!r}; shipped models: {builtin_model_names(root) or 'none'}"
        )
    try:
        chosen = version or promoted_version(name, scope=scope or None, root=root)
    except ValueError as exc:
        raise ModelLoadError(f"{spec!r}: {exc}") from None
    if chosen is None or not (model_dir / chosen / "model.onnx").is_file():
        raise ModelLoadError(f"builtin model {spec!r} has no model.onnx under {model_dir}")
    return model_dir / chosen / "model.onnx"


class PromotionWatch:
    """Tells a running pipeline when ``builtin:NAME[@SCOPE]`` starts resolving to another file.

    ``poll()`` costs a few ``stat`` calls, so a runner may call it every few seconds.

    Example:
        >>> watch = PromotionWatch("builtin:anjian-n")
        >>> path = watch.poll()          # None while nothing changed
        >>> if path: runner.swap_detector(OnnxDetector(path, config))
    """

    def __init__(self, spec: str, *, root: Path | None = None) -> None:
        """Start watching; the current resolution is the baseline.

        Raises:
            ModelLoadError: The spec does not resolve now.
        """
        self.spec = spec
        self._root = root
        self._stamp = self._signature()
        self.current: Path = resolve_model_path(spec, root=root)

    def _signature(self) -> tuple[Any, ...]:
        """Stat of the pointer files and of the model folder: changes when a promotion lands."""
        if not self.spec.startswith("builtin:") or "/" in self.spec:
            return ()
        name, _, scope = self.spec.removeprefix("builtin:").partition("@")
        model_dir = _root(self._root) / name
        stamps: list[Any] = []
        for path in [model_dir, _pointer(model_dir, None)] + ([_pointer(model_dir, scope)] if scope else []):
            try:
                st = path.stat()
                stamps.append((st.st_mtime_ns, st.st_size, st.st_ino))
            except OSError:
                stamps.append(None)
        return tuple(stamps)

    def poll(self) -> Path | None:
        """The newly promoted model file if the resolution changed since the last poll, else ``None``.

        A promotion pointing at a missing file is ignored until it resolves.
        """
        stamp = self._signature()
        if stamp == self._stamp:
            return None
        self._stamp = stamp
        try:
            path = resolve_model_path(self.spec, root=self._root)
        except ModelLoadError:
            return None
        if path == self.current:
            return None
        self.current = path
        return path
