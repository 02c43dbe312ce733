"""Find the model files shipped with anjian (``builtin:NAME``) under ``models/registry/``."""

from __future__ import annotations

from pathlib import Path

from models.errors import ModelLoadError

__all__ = ["REGISTRY_DIR", "builtin_model_names", "resolve_model_path"]

REGISTRY_DIR = Path(__file__).resolve().parent / "registry"


def builtin_model_names() -> list[str]:
    """Names of the models shipped in the registry."""
    if not REGISTRY_DIR.is_dir():
        return []
    return sorted(p.name for p in REGISTRY_DIR.iterdir() if p.is_dir())


def _latest_version_dir(model_dir: Path) -> Path | None:
    versions = [p for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit() and (p / "model.onnx").is_file()]
    return max(versions, key=lambda p: int(p.name)) if versions else None


def resolve_model_path(spec: str) -> Path:
    """Turn a model spec into a file path.

    Args:
        spec: A path to an ONNX file, or ``builtin:NAME`` (latest version of a shipped
            model), or ``builtin:NAME/VERSION``.

    Returns:
        Path of the ONNX file.

    Raises:
        ModelLoadError: The builtin model or version does not exist.
    """
    if not spec.startswith("builtin:"):
        return Path(spec)
    name, _, version = spec.removeprefix("builtin:").partition("/")
    model_dir = REGISTRY_DIR / name
    if not name or not model_dir.is_dir():
        raise ModelLoadError(f"no builtin model {name!r}; shipped models: {builtin_model_names() or 'none'}")
    version_dir = model_dir / version if version else _latest_version_dir(model_dir)
    if version_dir is None or not (version_dir / "model.onnx").is_file():
        raise ModelLoadError(f"builtin model {spec!r} has no model.onnx under {model_dir}")
    return version_dir / "model.onnx"
