"""Camera URLs: credentials never survive masking, whatever the password holds; a URL FFmpeg would misread is refused."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from anjian.cameras.config import CameraConfig
from anjian.cameras.health import CameraState, HealthTracker
from anjian.cameras.url import (
    camera_url_problem,
    ffmpeg_url,
    mask_credentials,
    mask_url,
    network_url_problem,
    remember_secret,
    split_url,
    url_scheme,
)

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


@pytest.mark.parametrize(
    "url",
    [
        "rtsp://10.0.0.5:554/Streaming/Channels/101",
        "rtsp://admin:p@ss/w:rd@10.0.0.5/live",  # the password as it is
        "rtsp://[fe80::1]:554/x",
        "rtsp://host:/x",  # an empty port: the scheme's default
        "http://nvr.local/hls/cam1.m3u8",
        "udp://:1234",  # listens on every address
        "srt://:9000?mode=listener",
        "file:///var/clips/a.mp4",
        "/var/clips/a.mp4",
        "./a:b.mp4",  # a colon in a file name, written as a path
        "recording-2024-01-01T10:00:00.mp4",  # an NVR export's name: no FFmpeg protocol before the colon
        "file:clip.mp4",  # FFmpeg's own file protocol
        "rtp://239.0.0.1:5004",  # an encoder's multicast
        "cam@2024.mp4",
        "clip.mp4",
        "/dev/video0",
        "C:\\clips\\a.mp4",
    ],
)
def test_camera_urls_and_paths_ffmpeg_reads_as_such_pass(url: str) -> None:
    assert camera_url_problem(url) is None


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("rtsp://10.0.0.5:99999/live", "the port is out of range"),
        ("rtsp://10.0.0.5:0/live", "the port is out of range"),
        ("rtsp://10.0.0.5:55x/live", "the port is not a number"),
        (
            "rtsp://admin:p?w=1@10.0.0.5/live",
            "percent-encoded (%3F, %3D)",
        ),  # the password's ?...= ends it early
        ("rtsp://[::1/live", "lacks its closing ]"),
        ("rtsp://", "names no host"),
        ("rtsp://admin:pw@/live", "names no host"),
        ("rtsp://cam 1/live", "holds a space"),
        ("rtsp://10.0.0.5/live ", "starts or ends with white space"),  # the check stripped it, FFmpeg would not
        ("ftp://nvr/clip.mp4", "ftp:// is not a camera stream"),
        ("concat:/etc/passwd|/etc/hosts", "as its concat protocol, not a camera or a file"),
        ("subfile,,start,0,end,10,,:/etc/shadow", "as its subfile protocol"),  # FFmpeg's own syntax
        ("pipe:0", "as its pipe protocol"),
        ("data:video/mp4;base64,AAAA", "as its data protocol"),
        ("rtsp:/10.0.0.5/live", "rtsp: wants // before the host"),
        ("admin:pw@10.0.0.5/live", "without its scheme: write rtsp://user:password@host/path"),
        ("rtsp://10.0.0.5:" + "9" * 5000 + "/live", "the port is out of range"),  # past int()'s digit limit
    ],
)
def test_a_url_ffmpeg_would_refuse_or_misread_is_named(url: str, problem: str) -> None:
    """These passed `anjian config check` and failed when the plant started ("Invalid argument"), or
    opened one of FFmpeg's own protocols (a local file read through concat:) instead of a camera."""
    found = camera_url_problem(url)
    assert found is not None and problem in found


def test_a_refused_camera_url_is_named_in_the_config_error_without_its_password() -> None:
    with pytest.raises(ValidationError) as refused:
        CameraConfig(id="gate", url="rtsp://admin:Secr3t!@10.0.0.5:99999/live")
    message = str(refused.value)
    assert "99999/live': the port is out of range" in message and "Secr3t" not in message


def test_a_password_the_parse_took_for_a_port_is_never_quoted() -> None:
    """A ``?`` then ``=`` in a raw password ends the userinfo early, so the password reads as host and port."""
    with pytest.raises(ValidationError) as refused:
        CameraConfig(id="gate", url="rtsp://admin:9182736?x=1@10.0.0.5/live")
    message = str(refused.value.errors()[0]["msg"])
    assert "percent-encoded" in message and "9182736" not in message


def test_a_url_of_a_named_input_format_is_that_formats_own() -> None:
    camera = CameraConfig(id="test", url="testsrc=size=320x240:rate=5", input_format="lavfi")
    assert camera.input_format == "lavfi"


def test_a_network_url_names_its_kind_and_the_schemes_it_may_have() -> None:
    assert network_url_problem("nats://10.0.0.2:4222", ("nats", "tls"), what="a NATS server") is None
    assert network_url_problem("10.0.0.2:4222", ("nats", "tls"), what="a NATS server") == (
        "expected a NATS server as nats:// or tls://host[:port]"
    )
    assert network_url_problem("http://x", ("mqtt",), what="an MQTT broker") == (
        "http:// is not an MQTT broker; expected mqtt://"
    )
