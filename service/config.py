"""The site YAML: one file composing every package's config section, validated once at startup."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from models.config import DetectorConfig
from pipeline.config import CameraPipelineConfig
from service.errors import ConfigError

__all__ = [
    "AnjianConfig",
    "ServerConfig",
    "SiteConfig",
    "StorageConfig",
    "WebhookConfig",
    "WorkshopConfig",
    "load_config",
]


class _ServiceModel(BaseModel):
    """Base of the service config models: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class WorkshopConfig(_ServiceModel):
    """A workshop (a polishing hall, a freezing room, a duty room) and its cameras."""

    id: str = Field(..., min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    name: str = Field("", max_length=200, description="Shown in the control room.")
    kind: Literal["polishing", "freezing", "other"] = Field("other", description="Kind of workshop.")
    cameras: list[CameraPipelineConfig] = Field(default_factory=list)


class SiteConfig(_ServiceModel):
    """One plant."""

    id: str = Field(..., min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    name: str = Field("", max_length=200, description="Shown in the control room.")
    timezone: str = Field("UTC", description="IANA time zone of the site, for schedules.")
    workshops: list[WorkshopConfig] = Field(..., min_length=1)


class WebhookConfig(_ServiceModel):
    """A control-room endpoint that receives every event as JSON."""

    url: str = Field(..., pattern=r"^https?://", description="http(s) URL the events are POSTed to.")
    secret: SecretStr | None = Field(None, description="Shared secret for the signature header.")
    timeout_s: float = Field(5.0, gt=0, le=120, description="Per-request timeout.")
    max_attempts: int = Field(5, ge=1, le=1000, description="Delivery attempts before giving up.")


class StorageConfig(_ServiceModel):
    """Where events and evidence live."""

    dir: Path = Field(Path("data"), description="Folder for the database and evidence files.")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL; default: a SQLite file in `dir`."
    )


class ServerConfig(_ServiceModel):
    """Where the HTTP API listens."""

    host: str = Field("127.0.0.1", description="Bind address.")
    port: int = Field(8000, ge=1, le=65535, description="TCP port; ANJIAN_PORT overrides it.")


class AnjianConfig(_ServiceModel):
    """Everything one anjian deployment needs, as read from the site YAML."""

    site: SiteConfig
    model: DetectorConfig = Field(default_factory=DetectorConfig)
    webhooks: list[WebhookConfig] = Field(default_factory=list)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)

    @model_validator(mode="after")
    def _unique_ids(self) -> AnjianConfig:
        workshops: set[str] = set()
        cameras: set[str] = set()
        for workshop in self.site.workshops:
            if workshop.id in workshops:
                raise ValueError(f"workshop id {workshop.id!r} appears twice")
            workshops.add(workshop.id)
            for camera in workshop.cameras:
                if camera.id in cameras:
                    raise ValueError(f"camera id {camera.id!r} appears twice")
                cameras.add(camera.id)
        return self

    def cameras(self) -> list[tuple[WorkshopConfig, CameraPipelineConfig]]:
        """Every configured camera with its workshop, in file order."""
        return [(w, c) for w in self.site.workshops for c in w.cameras]


def _format_validation_error(path: Path, error: ValidationError) -> str:
    lines = [f"{path}: {error.error_count()} error(s) in the site config"]
    for item in error.errors():
        location = ".".join(str(part) for part in item["loc"]) or "(top level)"
        lines.append(f"  {location}: {item['msg']}")
    return "\n".join(lines)


def _resolve_relative_paths(raw: dict[str, Any], base: Path) -> dict[str, Any]:
    """Make file paths in the YAML relative to the YAML's own folder, as a reader expects."""
    model = raw.get("model")
    if isinstance(model, dict) and isinstance(model.get("path"), str):
        model_path = model["path"]
        if not model_path.startswith("builtin:") and not os.path.isabs(model_path):
            model["path"] = str((base / model_path).resolve())
    storage = raw.get("storage")
    if isinstance(storage, dict) and isinstance(storage.get("dir"), str) and not os.path.isabs(storage["dir"]):
        storage["dir"] = str((base / storage["dir"]).resolve())
    site = raw.get("site")
    for workshop in site.get("workshops", []) if isinstance(site, dict) else []:
        for camera in workshop.get("cameras", []) if isinstance(workshop, dict) else []:
            url = camera.get("url") if isinstance(camera, dict) else None
            is_relative_file = isinstance(url, str) and "://" not in url and not os.path.isabs(url)
            if is_relative_file:
                camera["url"] = str((base / url).resolve())
    return raw


def load_config(path: str | Path) -> AnjianConfig:
    """Read and validate a site YAML.

    Args:
        path: The YAML file. Relative paths inside it (model, storage dir, file
            cameras) resolve against its folder.

    Returns:
        The validated configuration.

    Raises:
        ConfigError: The file is missing, is not YAML, or breaks the schema; the
            message names the file, each field path and what was expected.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the site config: {exc.strerror or exc}") from exc
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
    raw = _resolve_relative_paths(raw, path.resolve().parent)
    try:
        return AnjianConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(path, exc)) from exc
