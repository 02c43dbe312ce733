"""The API docs, offline: Swagger UI at ``/docs`` and ReDoc at ``/redoc``, with assets the service ships.

FastAPI's own pages load Swagger UI and ReDoc from a CDN, which a plant network
often cannot reach. These pages load them from ``/docs/assets/`` (the files of
the ``fastapi-offline`` package), and each answers with a Content-Security-Policy
that allows its inline start-up script by hash and nothing from elsewhere.
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse

from anjian.service.api.routing import GuardedRoute
from anjian.service.api.security import csp_with_inline_scripts

__all__ = ["ASSETS_DIR", "ASSETS_PATH", "router"]

ASSETS_DIR = Path(fastapi_offline.__file__).resolve().parent / "static"
"""swagger-ui-bundle.js, swagger-ui.css, redoc.standalone.js, favicon.png."""
ASSETS_PATH = "/docs/assets"

router = APIRouter(include_in_schema=False, route_class=GuardedRoute)

# Swagger UI and ReDoc inject <style> elements and inline styles at run time.
_STYLE_SRC = "'self' 'unsafe-inline'"


def _urls(request: Request) -> tuple[str, str]:
    """The OpenAPI document's URL and the assets' URL prefix, behind any ``root_path``."""
    root = request.scope.get("root_path", "")
    return f"{root}{request.app.openapi_url}", f"{root}{ASSETS_PATH}"


def _page(html: HTMLResponse, *, extra: str = "") -> HTMLResponse:
    """``html`` again, with a policy allowing exactly its inline scripts."""
    body = bytes(html.body).decode("utf-8")
    policy = csp_with_inline_scripts(body, style_src=_STYLE_SRC, extra=extra)
    return HTMLResponse(body, headers={"Content-Security-Policy": policy, "Cache-Control": "no-cache"})


@router.get("/docs", response_class=HTMLResponse)
def swagger_ui(request: Request) -> HTMLResponse:
    """Swagger UI over this service's OpenAPI document."""
    openapi_url, assets = _urls(request)
    html = get_swagger_ui_html(
        openapi_url=openapi_url,
        title=f"{request.app.title} API",
        swagger_js_url=f"{assets}/swagger-ui-bundle.js",
        swagger_css_url=f"{assets}/swagger-ui.css",
        swagger_favicon_url=f"{assets}/favicon.png",
        oauth2_redirect_url=None,
    )
    return _page(html)


@router.get("/redoc", response_class=HTMLResponse)
def redoc(request: Request) -> HTMLResponse:
    """ReDoc over this service's OpenAPI document."""
    openapi_url, assets = _urls(request)
    html = get_redoc_html(
        openapi_url=openapi_url,
        title=f"{request.app.title} API",
        redoc_js_url=f"{assets}/redoc.standalone.js",
        redoc_favicon_url=f"{assets}/favicon.png",
        with_google_fonts=False,
    )
    return _page(html, extra="worker-src 'self' blob:")  # ReDoc's search runs in a blob worker
