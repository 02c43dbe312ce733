"""Credentials in camera URLs never survive masking."""

from __future__ import annotations

import pytest

from cameras.config import CameraConfig
from cameras.url import mask_credentials, mask_url, url_scheme


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("rtsp://admin:secret@10.0.0.5:554/stream1", "rtsp://***:***@10.0.0.5:554/stream1"),
        ("rtsp://admin@10.0.0.5/s", "rtsp://***:***@10.0.0.5/s"),
        ("rtsps://u:p%40ss@cam.local/x", "rtsps://***:***@cam.local/x"),
        ("rtsp://10.0.0.5/stream1", "rtsp://10.0.0.5/stream1"),
        ("/videos/clip.mp4", "/videos/clip.mp4"),
    ],
    ids=["user-pass", "user-only", "escaped-at", "no-credentials", "file"],
)
def test_mask_url_hides_userinfo(url: str, expected: str) -> None:
    assert mask_url(url) == expected


def test_mask_credentials_in_free_text_masks_every_url() -> None:
    text = "failed rtsp://a:b@h1/x then http://c:d@h2/y"
    assert mask_credentials(text) == "failed rtsp://***:***@h1/x then http://***:***@h2/y"


def test_camera_config_repr_and_dump_hide_password() -> None:
    camera = CameraConfig(id="cam1", url="rtsp://admin:hunter2@10.0.0.5/s")
    assert "hunter2" not in repr(camera)
    assert "hunter2" not in camera.model_dump_json()
    assert camera.masked_url == "rtsp://***:***@10.0.0.5/s"


@pytest.mark.parametrize(
    ("url", "scheme"), [("rtsp://h/x", "rtsp"), ("/tmp/a.mp4", "file"), ("clip.mp4", "file")], ids=str
)
def test_url_scheme(url: str, scheme: str) -> None:
    assert url_scheme(url) == scheme
