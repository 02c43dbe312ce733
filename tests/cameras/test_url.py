"""Credentials in camera URLs never survive masking, whatever characters the password holds."""

from __future__ import annotations

import pytest

from anjian.cameras.config import CameraConfig
from anjian.cameras.health import CameraState, HealthTracker
from anjian.cameras.url import ffmpeg_url, mask_credentials, mask_url, remember_secret, split_url, url_scheme

MASK_CASES = [
    ("rtsp://admin:secret@10.0.0.5:554/stream1", "rtsp://***:***@10.0.0.5:554/stream1", "secret"),
    ("rtsp://admin:pa/ssW0rd@host/clip", "rtsp://***:***@host/clip", "ssW0rd"),
    ("rtsp://admin:p@ss@host/x", "rtsp://***:***@host/x", "ss@"),
    ("rtsp://admin:p@ss/w@rd@host/x", "rtsp://***:***@host/x", "rd"),
    ("rtsp://user:p%40ss@host", "rtsp://***:***@host", "p%40ss"),
    ("rtsp://admin:pa:ss?#x@cam.local/live", "rtsp://***:***@cam.local/live", "ss?#x"),
    ("rtsp://admin:pw1234@[fe80::1]:554/x", "rtsp://***:***@[fe80::1]:554/x", "pw1234"),
    ("rtsp://[::1]:8554/x", "rtsp://[::1]:8554/x", None),
    ("rtsp://admin@10.0.0.5/s", "rtsp://***:***@10.0.0.5/s", "admin"),
    ("rtsp://admin:@10.0.0.5/s", "rtsp://***:***@10.0.0.5/s", "admin"),
    ("admin:hunter22@10.0.0.5/stream", "***:***@10.0.0.5/stream", "hunter22"),
    ("//admin:hunter22@10.0.0.5/stream", "//***:***@10.0.0.5/stream", "hunter22"),
    ("http://cam/snap.cgi?user=admin&pwd=pa@ss", "http://cam/snap.cgi?user=admin&pwd=***", "pa@ss"),
    ("rtsp://10.0.0.5/stream1", "rtsp://10.0.0.5/stream1", None),
    ("/videos/clip@2.mp4", "/videos/clip@2.mp4", None),
    ("/dev/video0", "/dev/video0", None),
]


@pytest.mark.parametrize(
    ("url", "expected", "secret"),
    MASK_CASES,
    ids=[
        "user-pass",
        "slash-in-password",
        "at-in-password",
        "slash-and-ats",
        "percent-encoded-at",
        "colon-query-fragment-chars",
        "ipv6-host",
        "ipv6-no-credentials",
        "user-only",
        "empty-password",
        "no-scheme",
        "scheme-relative",
        "password-in-query",
        "no-credentials",
        "file-path-with-at",
        "device",
    ],
)
def test_mask_url_hides_userinfo_up_to_the_last_at(url: str, expected: str, secret: str | None) -> None:
    assert mask_url(url) == expected
    if secret is not None:
        assert secret not in mask_url(url)


@pytest.mark.parametrize(
    ("url", "user", "password", "host", "port", "rest"),
    [
        ("rtsp://admin:pa/ssW0rd@host/clip", "admin", "pa/ssW0rd", "host", None, "/clip"),
        ("rtsp://admin:p@ss@host:8554/x", "admin", "p@ss", "host", 8554, "/x"),
        ("rtsp://user:p%40ss%2F@host", "user", "p@ss/", "host", None, ""),
        ("rtsp://ad%3Amin:a:b@host", "ad:min", "a:b", "host", None, ""),
        ("rtsp://admin:pw@[fe80::1%25eth0]:554/x", "admin", "pw", "[fe80::1%25eth0]", 554, "/x"),
        ("rtsp://10.0.0.5/a?b=c#d", None, None, "10.0.0.5", None, "/a?b=c#d"),
        ("http://cam/s.cgi?user=a@b.com&pwd=x", None, None, "cam", None, "/s.cgi?user=a@b.com&pwd=x"),
        ("rtsp://admin:pa/ss@host/x?user=a@b", "admin", "pa/ss", "host", None, "/x?user=a@b"),
    ],
    ids=[
        "slash",
        "ats-and-port",
        "encoded",
        "encoded-colon-in-user",
        "ipv6-zone",
        "plain",
        "at-in-query",
        "both",
    ],
)
def test_split_url_reads_credentials_whatever_they_hold(
    url: str, user: str | None, password: str | None, host: str, port: int | None, rest: str
) -> None:
    parts = split_url(url)
    assert (parts.user, parts.password, parts.host, parts.port, parts.rest) == (
        user,
        password,
        host,
        port,
        rest,
    )


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("rtsp://admin:pa/ssW0rd@host/clip", "rtsp://admin:pa%2FssW0rd@host/clip"),
        ("rtsp://admin:p@ss@host:554/x", "rtsp://admin:p%40ss@host:554/x"),
        ("rtsp://user:p%40ss@host/x", "rtsp://user:p%40ss@host/x"),
        ("rtsp://ad@min:p%ss@host/x", "rtsp://ad%40min:p%25ss@host/x"),
        ("rtsp://10.0.0.5/stream1?channel=1", "rtsp://10.0.0.5/stream1?channel=1"),
        ("/videos/clip.mp4", "/videos/clip.mp4"),
    ],
    ids=["slash", "at", "already-encoded", "at-in-user-raw-percent", "no-credentials", "file"],
)
def test_ffmpeg_url_percent_encodes_the_userinfo(url: str, expected: str) -> None:
    assert ffmpeg_url(url) == expected


def test_mask_credentials_masks_every_url_in_free_text() -> None:
    text = "failed rtsp://a:b@h1/x then http://c:d@h2/y"
    assert mask_credentials(text) == "failed rtsp://***:***@h1/x then http://***:***@h2/y"


@pytest.mark.parametrize(
    "error",
    [
        "[Errno 1094995529] Invalid data: 'rtsp://admin:pa/ss@W0rd@127.0.0.1:8554/cam1'",
        "[Errno 825242872] Server returned 401: 'rtsp://admin:pa%2Fss%40W0rd@127.0.0.1:8554/cam1'",
        "auth failed for pa/ss@W0rd",
        "auth failed for pa%2Fss%40W0rd",
    ],
    ids=["raw-url", "encoded-url", "raw-secret", "encoded-secret"],
)
def test_mask_credentials_masks_the_url_password_in_ffmpeg_errors(error: str) -> None:
    masked = mask_credentials(error, url="rtsp://admin:pa/ss@W0rd@127.0.0.1:8554/cam1")
    assert "W0rd" not in masked and "***" in masked


def test_a_camera_config_password_is_masked_anywhere_it_shows_afterwards() -> None:
    CameraConfig(id="cam1", url="rtsp://admin:Zq9/t@k!x@10.0.0.5/s")
    assert mask_credentials("libav said: bad auth 'Zq9/t@k!x'") == "libav said: bad auth '***'"
    assert mask_credentials("encoded Zq9%2Ft%40k%21x") == "encoded ***"


def test_short_passwords_are_masked_in_urls_but_not_everywhere() -> None:
    remember_secret("ab")
    assert mask_credentials("tab rtsp://u:ab@h/x") == "tab rtsp://***:***@h/x"


def test_health_masks_whatever_error_it_is_given() -> None:
    tracker = HealthTracker("cam1", 0.0)
    tracker.set_state(CameraState.OFFLINE, 1.0, "lost rtsp://admin:pa/ss@W0rd@host/x (reset)")
    assert tracker.snapshot().last_error == "lost rtsp://***:***@host/x (reset)"


def test_camera_config_repr_and_dump_hide_password() -> None:
    camera = CameraConfig(id="cam1", url="rtsp://admin:hunter2@10.0.0.5/s")
    assert "hunter2" not in repr(camera)
    assert "hunter2" not in camera.model_dump_json()
    assert camera.masked_url == "rtsp://***:***@10.0.0.5/s"


@pytest.mark.parametrize(
    ("url", "scheme"),
    [
        ("rtsp://h/x", "rtsp"),
        ("RTSP://h/x", "rtsp"),
        ("rtsp://admin:pa/ss@h/x", "rtsp"),
        ("/tmp/a.mp4", "file"),
        ("clip.mp4", "file"),
        ("C://clips/a.mp4", "file"),
    ],
    ids=str,
)
def test_url_scheme(url: str, scheme: str) -> None:
    assert url_scheme(url) == scheme
