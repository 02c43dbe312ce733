"""Live view: each camera's latest analysed frame, with boxes and zones drawn (``pipeline.live``).

``/cameras/{id}/live.jpg`` answers the latest frame with an ``ETag`` (a wall of cameras
polls it; an unchanged frame costs a 304), ``/cameras/{id}/live.mjpeg`` pushes frames as
they come (one screen watching one camera). Frames are drawn and encoded once per frame
however many screens watch. Both accept the dashboard's session cookie, like snapshots.
An MJPEG stream checks its caller again every few seconds, as ``/stream`` does: it ends
once the token is revoked or the session cookie it came with expires.
Only a process that reads cameras (``anjian run``) has a live view; ``anjian serve``
answers 404 saying so (``GET /site`` tells a screen which, in ``has_live_view``, so that
it does not poll for nothing).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from sqlalchemy.exc import SQLAlchemyError

from anjian.service.api.deps import AUTH_RESPONSES, ViewerByCookie
from anjian.service.api.routing import GuardedRoute
from anjian.service.api.sessions import still_admitted

if TYPE_CHECKING:  # OpenCV loads only where cameras are read
    from anjian.pipeline.live import LiveFrame, LiveView

__all__ = ["router"]

logger = logging.getLogger(__name__)

router = APIRouter(tags=["cameras"], route_class=GuardedRoute)

_CAMERA_ID = Path(..., min_length=1, max_length=64, description="Camera id.")
_BOUNDARY = "anjian-frame"
_RECHECK_S = 5.0  # how often an MJPEG stream's caller (token, session cookie) is checked again
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "This process reads no cameras, or the camera has no frame yet."}
}


def _view(request: Request) -> LiveView:
    view: LiveView | None = getattr(request.app.state, "live_view", None)
    if view is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            detail="this service reads no cameras itself (anjian serve): the live view is where the pipeline runs",
        )
    return view


async def _is_still_admitted(request: Request, token_id: int) -> bool:
    """``still_admitted`` in the thread pool; while the database does not answer, the caller goes on."""
    try:
        return await run_in_threadpool(still_admitted, request, token_id)
    except SQLAlchemyError:
        logger.exception("live view: the database does not answer; the caller is checked later")
        return True


def _latest(view: LiveView, camera_id: str) -> LiveFrame:
    frame = view.frame(camera_id)
    if frame is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, detail=f"no analysed frame from camera {camera_id!r} yet"
        )
    return frame


@router.get(
    "/cameras/{camera_id}/live.jpg",
    response_class=Response,
    response_model=None,
    summary="The camera's latest analysed frame, boxes and zones drawn",
    responses={
        **AUTH_RESPONSES,
        **_NOT_FOUND,
        200: {"content": {"image/jpeg": {}}},
        304: {"description": "Unchanged."},
    },
)
def live_jpeg(request: Request, _token: ViewerByCookie, camera_id: Annotated[str, _CAMERA_ID]) -> Response:
    """The latest frame as JPEG; ``If-None-Match`` with its ``ETag`` gives 304 until a newer frame is analysed."""
    frame = _latest(_view(request), camera_id)
    etag = f'"{frame.seq}"'
    headers = {"ETag": etag, "Cache-Control": "no-cache", "X-Captured-At": f"{frame.captured_at:.3f}"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    return Response(frame.jpeg, media_type="image/jpeg", headers=headers)


@router.get(
    "/cameras/{camera_id}/live.mjpeg",
    response_class=StreamingResponse,
    summary="The camera's analysed frames as they come (MJPEG)",
    responses={
        **AUTH_RESPONSES,
        **_NOT_FOUND,
        200: {"content": {f"multipart/x-mixed-replace; boundary={_BOUNDARY}": {}}},
    },
)
async def live_mjpeg(
    request: Request,
    token: ViewerByCookie,
    camera_id: Annotated[str, _CAMERA_ID],
    fps: Annotated[float, Query(gt=0, le=10, description="Most frames a second sent.")] = 2.0,
) -> StreamingResponse:
    """Each newly analysed frame as a part of a ``multipart/x-mixed-replace`` stream, at most ``fps`` a second.

    The caller is checked again every few seconds: the stream ends once its token is revoked or the
    session cookie it came with expires.
    """
    view = _view(request)
    first = await run_in_threadpool(_latest, view, camera_id)

    async def parts() -> AsyncIterator[bytes]:
        frame: LiveFrame | None = first
        sent = 0
        last_check = time.monotonic()
        while not await request.is_disconnected():
            if time.monotonic() - last_check >= _RECHECK_S:
                last_check = time.monotonic()
                if not await _is_still_admitted(request, token.id):
                    logger.info(
                        "live view: token %d was revoked or its session expired; ending its MJPEG stream of %s",
                        token.id,
                        camera_id,
                    )
                    return
            if frame is not None and frame.seq != sent:
                sent = frame.seq
                yield (
                    f"--{_BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(frame.jpeg)}\r\n\r\n".encode()
                    + frame.jpeg
                    + b"\r\n"
                )
            await asyncio.sleep(1.0 / fps)
            frame = await run_in_threadpool(view.frame, camera_id) if view.seq(camera_id) != sent else None

    return StreamingResponse(
        parts(),
        media_type=f"multipart/x-mixed-replace; boundary={_BOUNDARY}",
        headers={"Cache-Control": "no-store"},
    )
