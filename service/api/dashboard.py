"""The control-room dashboard: static files shipped in the package, served at ``/`` (no CDN, works offline)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from anjian.service.api.routing import GuardedRoute

__all__ = ["DASHBOARD_DIR", "router"]

DASHBOARD_DIR = Path(__file__).resolve().parent.parent / "dashboard"

router = APIRouter(tags=["dashboard"], include_in_schema=False, route_class=GuardedRoute)


@router.get("/", response_class=FileResponse)
def index() -> FileResponse:
    """The dashboard page; its script and style load from ``/dashboard/``."""
    return FileResponse(
        DASHBOARD_DIR / "index.html", media_type="text/html", headers={"Cache-Control": "no-cache"}
    )
