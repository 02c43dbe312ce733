"""Camera URLs: split them robustly, mask their credentials, and hand FFmpeg a form it parses; and the one
check of every network address the configs name (cameras, MQTT brokers, NATS servers, the alert service).

Camera passwords hold any character, ``/``, ``@``, ``:``, ``?``, ``#`` and ``%``
included, and operators paste them into URLs as they are. RFC 3986 would end the
userinfo at the first ``/`` and FFmpeg at the first ``/`` too, so both would read
``rtsp://admin:pa/ss@host/x`` as host ``admin``. Here the userinfo is everything
between ``scheme://`` and the **last** ``@`` of the URL (or, when a ``?key=`` query
comes before that ``@``, the last ``@`` before the query: ``?user=a@b.com``);
percent-encoded userinfo (``p%40ss``) is decoded. The price: a raw ``@`` in a path,
or a password holding ``?`` and later ``=``, must be written percent-encoded (as RFC
3986 wants anyway). Masking never takes that exception: ``mask_url`` hides everything
up to the last ``@``, so an ambiguous URL is over-masked, never leaked.

Every place a URL or an error text can surface masks it with ``mask_url`` (one URL)
or ``mask_credentials`` (free text: each ``scheme://…`` in it, password-like query
parameters, and every password a ``CameraConfig`` was built with). ``ffmpeg_url``
percent-encodes the userinfo, which FFmpeg decodes before authenticating.

``camera_url_problem``, ``network_url_problem`` and ``host_port_problem`` say in one sentence what a
client would refuse or misread (a port past 65535, a host with a space, an unclosed IPv6 bracket, a
``name:`` FFmpeg takes for one of its protocols), so that a config is refused when it is read, not
when the plant starts. Their sentences quote no part of the URL: callers show it masked beside them.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from urllib.parse import quote, unquote

__all__ = [
    "CAMERA_SCHEMES",
    "UrlParts",
    "camera_url_problem",
    "ffmpeg_url",
    "host_port_problem",
    "mask_credentials",
    "mask_url",
    "network_url_problem",
    "remember_secret",
    "split_url",
    "url_scheme",
]

CAMERA_SCHEMES = frozenset(
    {"rtsp", "rtsps", "rtmp", "rtmps", "rtmpt", "rtmpts", "http", "https", "udp", "tcp", "srt", "rtp", "rist"}
)
"""Schemes of the network streams a camera URL may name (a file path or ``file://`` besides)."""

MASK = "***"
_MASKED_USERINFO = f"{MASK}:{MASK}@"
_MIN_SECRET_CHARS = 4  # shorter passwords are masked inside URLs only: replacing "ab" everywhere garbles text
_MAX_SECRETS = 4096

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_SCHEME_AT_START = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://")
_HOST_PORT = re.compile(r"^(?P<host>\[[^\]]*\]|[^:/?#\[\]]*)(?::(?P<port>\d{1,5}))?")
_LISTENING_SCHEMES = frozenset({"udp", "srt", "tcp", "rtp", "rist"})
_FFMPEG_PROTOCOL_NAME = re.compile(r"^[A-Za-z0-9+.-]+")  # FFmpeg's URL_SCHEME_CHARS
_OTHER_FFMPEG_PROTOCOLS = (
    "amqp android_content async bluray cache concat concatf crypto data fd ffrtmpcrypt ffrtmphttp ftp gopher "
    "gophers hls httpproxy icecast ipfs ipns librtmp md5 mmsh mmst pipe prompeg rtmpe rtmpte sctp sftp smb srtp "
    "subfile tee tls udplite unix zmq"
)
_FFMPEG_PROTOCOLS = CAMERA_SCHEMES | frozenset(_OTHER_FFMPEG_PROTOCOLS.split())
"""FFmpeg's input protocols (``ffmpeg -protocols``, FFmpeg 4-7), ``file`` aside."""
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S*")
_SECRET_QUERY = re.compile(
    r"(?P<key>[?&;](?:pwd|pass|password|passwd|passphrase|secret|token|access_token|auth|key|api_key|apikey|sig|signature)=)"
    r"[^&#\s'\"]*",
    re.IGNORECASE,
)

_secrets_lock = threading.Lock()
_secrets: dict[str, None] = {}  # insertion-ordered set
_secrets_pattern: re.Pattern[str] | None = None


@dataclass(frozen=True, slots=True)
class UrlParts:
    """A URL split at its credentials.

    Attributes:
        scheme: Lower-case scheme (``"rtsp"``), ``""`` for ``//host`` or a bare ``user@host``.
        user: The user name, percent-decoded; ``None`` when the URL has no userinfo.
        password: The password, percent-decoded; ``None`` when there is none.
        host: The host as written (an IPv6 address keeps its brackets); ``""`` for a path.
        port: The port, or ``None`` when the URL gives none.
        rest: Everything after the host and port (``/path?query#fragment``), as written.
        has_authority: False for a plain file path or device (then only ``rest`` is set).
    """

    scheme: str
    user: str | None
    password: str | None
    host: str
    port: int | None
    rest: str
    has_authority: bool = True

    @property
    def host_port(self) -> str:
        """``host`` with ``:port`` when a port was given."""
        return self.host if self.port is None else f"{self.host}:{self.port}"


def _looks_like_path(text: str) -> bool:
    """True for file paths and devices (``/dev/video0``, ``./a.mp4``, ``C:\\clips\\a.mp4``)."""
    return text.startswith(("/", ".", "~", "\\")) or re.match(r"^[A-Za-z]:[\\/]", text) is not None


def split_url(url: str) -> UrlParts:
    """Split ``url`` into scheme, decoded credentials, host, port and the rest.

    The userinfo runs from ``scheme://`` to the last ``@``, so passwords may hold
    ``/``, ``@``, ``:``, ``?`` and ``#`` unescaped; the user ends at its first ``:``.
    Without a scheme, ``user:pass@host/x`` still counts as credentials; a path does not.

    Args:
        url: A camera URL, a bare ``user:pass@host/path`` or a file path.

    Returns:
        The parts; ``has_authority`` is False for file paths and devices.

    Example:
        >>> split_url("rtsp://admin:p@ss/w@[fe80::1]:554/live")
        UrlParts(scheme='rtsp', user='admin', password='p@ss/w', host='[fe80::1]', port=554, rest='/live', ...)
    """
    match = _SCHEME_AT_START.match(url)
    if match is not None:
        scheme, body = match.group("scheme").lower(), url[match.end() :]
    elif url.startswith("//"):
        scheme, body = "", url[2:]
    else:
        at = url.rfind("@")
        candidate = url[:at] if at > 0 else ""
        has_userinfo = bool(candidate) and not _looks_like_path(url)
        has_userinfo = has_userinfo and ("/" not in candidate or ":" in candidate.split("/", 1)[0])
        if not has_userinfo:
            return UrlParts("", None, None, "", None, url, has_authority=False)
        scheme, body = "", url
    user: str | None = None
    password: str | None = None
    at = _userinfo_end(body)
    if at >= 0:
        userinfo, body = body[:at], body[at + 1 :]
        raw_user, has_password, raw_password = userinfo.partition(":")
        user = unquote(raw_user)
        password = unquote(raw_password) if has_password else None
    host_port = _HOST_PORT.match(body)
    host = host_port.group("host") if host_port is not None else ""
    port_text = host_port.group("port") if host_port is not None else None
    end = host_port.end() if host_port is not None else 0
    port = int(port_text) if port_text is not None and int(port_text) <= 65535 else None
    if port_text is not None and port is None:  # not a port after all: keep it in the rest
        end = len(host)
    return UrlParts(scheme, user, password, host, port, body[end:])


def camera_url_problem(url: str) -> str | None:
    """What is wrong with ``url`` as a camera's stream or file, or None when FFmpeg may be handed it.

    Caught when the site config is read, not when the plant starts: a port past 65535 or an
    unclosed IPv6 bracket only made FFmpeg answer "Invalid argument" at run time, and a
    ``name:`` prefix without ``//`` (``concat:``, ``subfile:``, ``pipe:``) makes FFmpeg open
    one of its own protocols instead of a camera or a file. The sentence quotes no part of the
    URL (a password the parse took for a host or port would show): callers show it masked.

    Args:
        url: The configured URL or path.

    Returns:
        One sentence naming the problem, or None.

    Example:
        >>> camera_url_problem("rtsp://10.0.0.5:99999/live")
        'the port is out of range (1-65535)'
    """
    text = url.strip()
    if _looks_like_path(text):
        return None
    if _SCHEME_AT_START.match(text) is None:
        protocol = _ffmpeg_protocol_prefix(text)
        if protocol in CAMERA_SCHEMES:
            return f"{protocol}: wants // before the host: {protocol}://host/path"
        if protocol is not None:
            return (
                f"FFmpeg reads {protocol!r} before the first ':' as its {protocol} protocol, not a camera or a "
                "file: write a stream as rtsp://host/path, a file as a path (./name)"
            )
        parts = split_url(text)
        if parts.has_authority and parts.password is not None:
            return (
                "user:password@host without its scheme: write rtsp://user:password@host/path (or http://...)"
            )
        return None
    if url_scheme(text) == "file":
        return None
    return network_url_problem(
        url, CAMERA_SCHEMES, what="a camera stream (nor a file path)", listening_schemes=_LISTENING_SCHEMES
    )


def _ffmpeg_protocol_prefix(text: str) -> str | None:
    """The FFmpeg protocol ``text`` (without ``//``) would be opened with, as FFmpeg finds it; None: a file.

    FFmpeg takes the leading run of letters, digits, ``+-.`` as a protocol name when a ``:`` follows,
    or a ``,`` with a ``:`` later (``subfile,,start,0,end,0,,:/etc/passwd``), and the name is one of
    its protocols; anything else (``recording-2024-01-01T10:00:00.mp4``) is a file name.
    """
    match = _FFMPEG_PROTOCOL_NAME.match(text)
    if match is None:
        return None
    name, rest = match.group(0).lower(), text[match.end() :]
    is_prefix = rest.startswith(":") or (rest.startswith(",") and ":" in rest)
    return name if is_prefix and name in _FFMPEG_PROTOCOLS else None


def network_url_problem(
    url: str, schemes: Collection[str], *, what: str, listening_schemes: Collection[str] = ()
) -> str | None:
    """What is wrong with ``url`` as ``scheme://[user:password@]host[:port][/rest]``, or None.

    One check for every URL the site and hub YAML name (cameras, MQTT brokers, NATS
    servers): no white space at either end, a scheme among ``schemes``, a host (a
    ``listening_schemes`` URL may name only ``:port``, to listen on every address) without
    spaces, an IPv6 bracket closed, a port in 1-65535. A port typed with a digit too many was read as its first five digits and a
    path (``broker:188300`` as port 18830) or refused only when connecting. The sentence
    quotes no part of the URL; callers show the URL masked beside it.

    Args:
        url: The URL.
        schemes: The schemes it may have (lower case).
        what: What such a URL names, for the sentence ("an MQTT broker").
        listening_schemes: Schemes whose URL may leave out the host.

    Returns:
        One sentence naming the problem, or None.
    """
    if url != url.strip():  # the check would pass what the client then reads with the blank
        return "the URL starts or ends with white space"
    match = _SCHEME_AT_START.match(url)
    if match is None:
        return f"expected {what} as {' or '.join(f'{s}://' for s in sorted(schemes))}host[:port]"
    scheme = match.group("scheme").lower()
    if scheme not in schemes:
        return f"{scheme}:// is not {what}; expected {', '.join(f'{s}://' for s in sorted(schemes))}"
    body = url[match.end() :]
    after_userinfo = body[_userinfo_end(body) + 1 :]  # the whole body when there is no userinfo (-1)
    host_and_port = re.split(r"[/?#]", after_userinfo, maxsplit=1)[0]
    problem = host_port_problem(host_and_port, may_omit_host=scheme in listening_schemes, scheme=scheme)
    if problem is not None and "@" in after_userinfo:  # the userinfo ended early: a ?...= in the password
        problem += "; a password holding ? and = is written percent-encoded (%3F, %3D)"
    return problem


def host_port_problem(host_and_port: str, *, may_omit_host: bool = False, scheme: str = "") -> str | None:
    """What is wrong with ``host[:port]`` (an IPv6 host in brackets), or None.

    Args:
        host_and_port: The authority of a URL without its userinfo, or a ``listen`` address.
        may_omit_host: ``:port`` alone is fine (a listener on every address).
        scheme: Named in the "no host" sentence.

    Returns:
        One sentence naming the problem, or None.
    """
    if host_and_port.startswith("[") and "]" not in host_and_port:
        return "an IPv6 host lacks its closing ]"
    host, port_text = _split_host_port(host_and_port)
    if not host and not (may_omit_host and port_text):  # udp://:1234 listens on every address
        return f"{scheme}:// names no host" if scheme else "no host"
    if any(char.isspace() for char in host):
        return "the host holds a space"
    if not port_text:  # none, or an empty one after the colon: the scheme's default port
        return None
    if not (port_text.isascii() and port_text.isdigit()):
        return "the port is not a number"
    if len(port_text) > 5 or not 1 <= int(port_text) <= 65535:  # 5,000 digits: past int()'s own limit
        return "the port is out of range (1-65535)"
    return None


def _split_host_port(host_and_port: str) -> tuple[str, str | None]:
    """``host[:port]`` (an IPv6 host in brackets) into the host and the port's text (None: no port)."""
    if host_and_port.startswith("["):
        end = host_and_port.index("]") + 1
        rest = host_and_port[end:]
        return host_and_port[:end], (rest[1:] if rest.startswith(":") else None)
    host, has_port, port = host_and_port.rpartition(":")
    return (host, port) if has_port else (host_and_port, None)


def _userinfo_end(body: str) -> int:
    """Index of the ``@`` that ends the userinfo in ``body`` (after ``scheme://``), or -1.

    The last ``@``, unless a query (``?key=``) comes before it: then the ``@`` is the
    query's (``?user=a@b.com``) and the userinfo ends at the last ``@`` before the ``?``.
    """
    at = body.rfind("@")
    query = body.find("?")
    if 0 <= query < at and "=" in body[query:at]:
        at = body.rfind("@", 0, query)
    return at


def mask_url(url: str) -> str:
    """Return ``url`` with its userinfo replaced by ``***:***@`` and password-like query values by ``***``.

    Args:
        url: A camera URL such as ``rtsp://admin:pa/ss@10.0.0.5/stream1``.

    Returns:
        ``rtsp://***:***@10.0.0.5/stream1``; a URL without credentials comes back unchanged.
    """
    url = _SECRET_QUERY.sub(lambda m: m.group("key") + MASK, url)
    match = _SCHEME_AT_START.match(url)
    if match is not None:
        prefix, body = url[: match.end()], url[match.end() :]
    elif url.startswith("//"):
        prefix, body = "//", url[2:]
    elif split_url(url).user is not None:
        prefix, body = "", url
    else:
        return url
    at = body.rfind("@")
    if at < 0:
        return url
    return f"{prefix}{_MASKED_USERINFO}{body[at + 1 :]}"


def mask_credentials(text: str, *, url: str | None = None) -> str:
    """Mask every credential found in free text (an FFmpeg error, a traceback, a YAML snippet).

    Masks each ``scheme://…`` run (to the next whitespace) with ``mask_url``,
    password-like query parameters, every password remembered from a ``CameraConfig``
    (as written, decoded and percent-encoded) and, with ``url``, that URL's own
    password wherever it appears on its own.

    Args:
        text: Any text that may quote URLs or passwords.
        url: The URL the text is about, whose password is masked too.

    Returns:
        The text with credentials replaced by ``***``.
    """
    text = _URL_IN_TEXT.sub(lambda m: mask_url(m.group(0)), text)
    text = _SECRET_QUERY.sub(lambda m: m.group("key") + MASK, text)
    pattern = _secrets_regex(_secret_forms(split_url(url).password) if url else ())
    return text if pattern is None else pattern.sub(MASK, text)


def remember_secret(secret: str | None) -> None:
    """Remember a password so that ``mask_credentials`` masks it anywhere it shows, URL or not.

    Passwords shorter than four characters are masked inside URLs only.
    """
    global _secrets_pattern
    forms = _secret_forms(secret)
    with _secrets_lock:
        if all(form in _secrets for form in forms):
            return
        for form in forms:
            _secrets[form] = None
        while len(_secrets) > _MAX_SECRETS:
            del _secrets[next(iter(_secrets))]
        _secrets_pattern = None


def ffmpeg_url(url: str) -> str:
    """Return ``url`` with its user and password percent-encoded, the form FFmpeg parses and decodes.

    ``rtsp://admin:pa/ss@host/x`` becomes ``rtsp://admin:pa%2Fss@host/x``; an
    already encoded ``p%40ss`` stays as it is. URLs without credentials, and
    paths, are returned unchanged.
    """
    parts = split_url(url)
    if parts.user is None or not parts.scheme:
        return url
    userinfo = quote(parts.user, safe="")
    if parts.password is not None:
        userinfo += ":" + quote(parts.password, safe="")
    return f"{parts.scheme}://{userinfo}@{parts.host_port}{parts.rest}"


def url_scheme(url: str) -> str:
    """Return the lower-case scheme of ``url``, or ``"file"`` for a plain path."""
    match = _SCHEME.match(url)
    if match is None:
        return "file"
    scheme = match.group(0)[:-3].lower()
    return scheme if len(scheme) > 1 else "file"  # one letter: a Windows drive


def _secret_forms(secret: str | None) -> tuple[str, ...]:
    """A password as written, decoded and percent-encoded: the forms it may take in a text."""
    if not secret or len(secret) < _MIN_SECRET_CHARS:
        return ()
    forms = {secret, unquote(secret), quote(secret, safe=""), quote(unquote(secret), safe="")}
    return tuple(form for form in forms if len(form) >= _MIN_SECRET_CHARS)


def _secrets_regex(extra: tuple[str, ...]) -> re.Pattern[str] | None:
    """One alternation of every remembered password (longest first) and ``extra``."""
    global _secrets_pattern
    with _secrets_lock:
        if _secrets_pattern is None and _secrets:
            _secrets_pattern = _alternation(_secrets)
        if not extra:
            return _secrets_pattern
        return _alternation([*extra, *_secrets])


def _alternation(secrets: Iterable[str]) -> re.Pattern[str]:
    """A regex matching any of ``secrets``, the longest first (so no shorter one masks half of it)."""
    words = sorted(set(secrets), key=len, reverse=True)
    return re.compile("|".join(re.escape(word) for word in words))
