"""Run-time control of this process's pipeline: reload cameras from the site YAML, reset zone references."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, status
from fastapi import Path as PathParam

from anjian.service.api.deps import AUTH_RESPONSES, Admin, Operator, PipelineControlDep
from anjian.service.api.models import CameraReloadOut, ReferenceResetOut
from anjian.service.api.routing import GuardedRoute
from anjian.service.control import PipelineControl
from anjian.service.errors import ConfigError

__all__ = ["router"]

logger = logging.getLogger(__name__)

router = APIRouter(tags=["cameras"], responses=AUTH_RESPONSES, route_class=GuardedRoute)

_NO_PIPELINE: dict[int | str, dict[str, Any]] = {
    409: {"description": "This process reads no cameras (`anjian serve`)."}
}
_Id = Annotated[str, PathParam(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]


def _require(control: PipelineControl | None) -> PipelineControl:
    if control is None:
        raise HTTPException(status.HTTP_409_CONFLICT, detail="this process reads no cameras (anjian serve)")
    return control


@router.post(
    "/cameras/reload",
    response_model=CameraReloadOut,
    summary="Reload cameras from the site YAML",
    responses={**_NO_PIPELINE, 422: {"description": "The site YAML is invalid; nothing was changed."}},
)
def reload_cameras(control: PipelineControlDep, _token: Admin) -> CameraReloadOut:
    """Add, remove and update cameras to match the site YAML on disk; other cameras are untouched."""
    try:
        changes = _require(control).reload_cameras()
    except (ConfigError, ValueError) as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(exc)) from None
    return CameraReloadOut(added=changes.added, removed=changes.removed, updated=changes.updated)


@router.post(
    "/cameras/{camera_id}/zones/{zone_id}/reset-reference",
    response_model=ReferenceResetOut,
    summary="Relearn a zone's clear/clean view",
    responses={**_NO_PIPELINE, 404: {"description": "This process does not analyse that camera."}},
)
def reset_reference(
    camera_id: _Id, zone_id: _Id, control: PipelineControlDep, _token: Operator
) -> ReferenceResetOut:
    """Forget the learned reference of an exit or dust zone (after a layout change, say)."""
    try:
        is_reset = _require(control).reset_reference(camera_id, zone_id)
    except KeyError:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, detail=f"camera {camera_id!r} is not analysed"
        ) from None
    return ReferenceResetOut(camera_id=camera_id, zone_id=zone_id, is_reset=is_reset)
