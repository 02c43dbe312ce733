"""A webhook URL that httpx can actually send to, at an address a webhook may go to, checked when it is
configured and again when a delivery connects.

A regex (``^https?://``) lets through URLs that fail only inside the HTTP client:
``http://a..b/hook`` parses, but resolving its host raises ``UnicodeError`` (an
empty IDNA label), which is no ``httpx.HTTPError``. ``check_webhook_url`` builds the
``httpx.URL`` and IDNA-encodes its host as the resolver will, so the site YAML
(``WebhookConfig.url``) and the API (``SubscriptionIn.url``) refuse such a URL with
a message naming what is wrong.

Where a webhook may go. Receivers sit on the plant's LAN (10/8, 172.16/12,
192.168/16), on the internet, or on this host (loopback: on-host relays, the tests'
receivers). A webhook may not go to a link-local address (169.254.0.0/16,
fe80::/10), where cloud metadata services answer with the host's credentials, nor to
a cloud metadata address outside that range (Alibaba Cloud's 100.100.100.200, AWS's
fd00:ec2::254), nor to the unspecified address (0.0.0.0, ``::``), nor to an
IPv4-mapped form of any of these (``::ffff:169.254.169.254``). The admin who sets a
URL would otherwise read (in the delivery's ``last_error``) what such a service answers.
``address_fault`` says why an address is refused. ``check_webhook_url`` applies it to a
host written as an address (in any form the resolver reads: ``2852039166`` is
169.254.169.254) and to the metadata services' names; ``checked_transport`` applies it
at connect time to every address the host name resolves to, and connects to the
address it checked (a name that resolves elsewhere a moment later cannot slip past).

Example:
    >>> check_webhook_url("https://ops.example.com/anjian")
    'https://ops.example.com/anjian'
    >>> check_webhook_url("http://a..b/hook")
    Traceback (most recent call last):
    ValueError: the host 'a..b' of the URL is not a valid host name (label empty or too long)
    >>> check_webhook_url("http://169.254.169.254/latest/meta-data/")
    Traceback (most recent call last):
    ValueError: the host '169.254.169.254' of the URL is a cloud metadata service's address; ...
"""

from __future__ import annotations

import ipaddress
import socket
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from typing import Annotated, Any

import httpcore
import httpx
from pydantic import AfterValidator, StringConstraints

from anjian.service.storable_text import check_storable_text

__all__ = [
    "MAX_WEBHOOK_URL_CHARS",
    "IpAddress",
    "Resolver",
    "WebhookUrl",
    "address_fault",
    "check_webhook_url",
    "checked_transport",
]

MAX_WEBHOOK_URL_CHARS = 2048
_MAX_PORT = 65_535

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[..., Sequence[tuple[Any, ...]]]
"""``socket.getaddrinfo`` or a stand-in with its signature and result (tests)."""

_METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("100.100.100.200", "fd00:ec2::254", "192.0.0.192")
)  # Alibaba Cloud, AWS over IPv6, Oracle Cloud Classic; 169.254.169.254 and the rest are link-local
_METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata.tencentyun.com"})
_THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")  # Linux connects 0.0.0.0 to this host
_WHERE_INSTEAD = "webhooks go to receivers on the LAN, the internet or this host's loopback, not there"


def address_fault(address: IpAddress) -> str | None:
    """Why a webhook may not be sent to ``address``, or ``None`` when it may.

    Args:
        address: An address a webhook URL names or its host name resolves to.

    Returns:
        ``"a link-local address (169.254.0.0/16, fe80::/10) ..."`` and the like; ``None`` for
        LAN, internet and loopback addresses.

    Example:
        >>> address_fault(ipaddress.ip_address("192.168.1.20")) is None
        True
        >>> address_fault(ipaddress.ip_address("::ffff:0.0.0.0"))
        'the unspecified address (it stands for this host, and names no receiver), in IPv4-mapped form'
    """
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id is not None:
            unscoped = address_fault(ipaddress.IPv6Address(str(address).partition("%")[0]))
            return unscoped or "an IPv6 address with a zone id (%...), which only link-local addresses need"
        if address.ipv4_mapped is not None:
            fault = address_fault(address.ipv4_mapped)
            return None if fault is None else f"{fault}, in IPv4-mapped form"
    if address in _METADATA_ADDRESSES:
        return "a cloud metadata service's address"
    if address.is_unspecified or (isinstance(address, ipaddress.IPv4Address) and address in _THIS_NETWORK):
        return "the unspecified address (it stands for this host, and names no receiver)"
    if address.is_link_local:
        return (
            "a link-local address (169.254.0.0/16, fe80::/10), where cloud metadata services answer,"
            " not webhook receivers"
        )
    return None


def _literal_address(host: str) -> IpAddress | None:
    """The address ``host`` writes, in any form the resolver reads (``2852039166``, ``0x7f.1``); else ``None``."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:  # inet_aton reads the legacy forms getaddrinfo resolves without asking DNS
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def check_webhook_url(url: str) -> str:
    """``url`` unchanged when it is an http(s) URL whose host the HTTP client can resolve, and may be sent to.

    Args:
        url: The URL a webhook's announcements are POSTed to.

    Raises:
        ValueError: Not http(s), not a URL httpx can build, no host, a host that is
            no valid (IDNA) host name, a port outside 1..65535, or a host that is an
            address ``address_fault`` refuses or a cloud metadata service's name.
    """
    check_storable_text(url)
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise ValueError(f"not a valid URL: {exc}") from None
    if parsed.scheme not in ("http", "https"):
        raise ValueError(f"expected an http:// or https:// URL, got scheme {parsed.scheme!r}")
    if not parsed.host:
        raise ValueError("the URL has no host")
    try:
        parsed.host.encode("idna")
    except UnicodeError as exc:
        reason = exc.__cause__ or exc.__context__ or exc
        raise ValueError(f"the host {parsed.host!r} of the URL is not a valid host name ({reason})") from None
    if parsed.port is not None and not 1 <= parsed.port <= _MAX_PORT:
        raise ValueError(f"the port {parsed.port} of the URL is outside 1..{_MAX_PORT}")
    address = _literal_address(parsed.host)
    fault = (
        address_fault(address)
        if address is not None
        else "a cloud metadata service's name"
        if parsed.host.rstrip(".") in _METADATA_HOSTS
        else None
    )
    if fault is not None:
        raise ValueError(f"the host {parsed.host!r} of the URL is {fault}; {_WHERE_INSTEAD}")
    return url


WebhookUrl = Annotated[
    str, StringConstraints(max_length=MAX_WEBHOOK_URL_CHARS), AfterValidator(check_webhook_url)
]
"""The ``url`` field of a webhook in the site YAML or the API, checked with ``check_webhook_url``."""


class _CheckedNetworkBackend(httpcore.NetworkBackend):
    """httpcore's sockets, opened only to resolved addresses ``address_fault`` allows: the very ones checked."""

    def __init__(self, resolve: Resolver) -> None:
        self._resolve = resolve
        self._sockets = httpcore.SyncBackend()

    def _addresses(self, host: str, port: int) -> list[str]:
        """Every address ``host`` resolves to, in the resolver's order; ``ConnectError`` if one is refused."""
        try:
            found = self._resolve(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:  # as httpcore reports it; UnicodeError (IDNA) goes up as it is
            raise httpcore.ConnectError(str(exc)) from exc
        addresses: list[str] = []
        for *_, sockaddr in found:
            text = str(sockaddr[0])
            fault = address_fault(ipaddress.ip_address(text))
            if fault is not None:
                named = host if text == host else f"{host} ({text})"
                raise httpcore.ConnectError(f"refused to connect to {named}: it is {fault}; {_WHERE_INSTEAD}")
            if text not in addresses:
                addresses.append(text)
        if not addresses:
            raise httpcore.ConnectError(f"{host} resolves to no address")
        return addresses

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        """A connection to the first of ``host``'s addresses that answers (TLS still checks ``host``)."""
        options = None if socket_options is None else list(socket_options)
        *others, last = self._addresses(host, port)
        for address in others:
            try:
                return self._sockets.connect_tcp(address, port, timeout, local_address, options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout):
                continue  # the next address, as socket.create_connection does
        return self._sockets.connect_tcp(last, port, timeout, local_address, options)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        """Refused: webhooks go over TCP."""
        raise httpcore.ConnectError(f"refused to connect to the unix socket {path}: webhooks go over TCP")

    def sleep(self, seconds: float) -> None:
        """As httpcore's own backend."""
        self._sockets.sleep(seconds)


class _CheckedTransport(httpx.HTTPTransport):
    """``httpx.HTTPTransport`` whose connections go through ``_CheckedNetworkBackend``."""

    def __init__(self, *, limits: httpx.Limits, resolve: Resolver) -> None:
        ssl_context = httpx.create_ssl_context()
        super().__init__(verify=ssl_context, limits=limits)
        # httpx takes no network backend: swap in a pool like the one it made, with ours.
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_CheckedNetworkBackend(resolve),
        )


def checked_transport(
    *, limits: httpx.Limits, resolve: Resolver = socket.getaddrinfo
) -> httpx.HTTPTransport | None:
    """An httpx transport that connects only to addresses ``address_fault`` allows, after resolving.

    A URL stored before ``check_webhook_url`` refused its host, and a name that
    resolves to a refused address (``metadata.example`` → 169.254.169.254), fail
    with ``httpx.ConnectError`` naming the host and why; the connection goes to the
    address checked, never to a second answer of the resolver.

    Args:
        limits: Connection pool limits.
        resolve: ``socket.getaddrinfo``, or a stand-in in tests.

    Returns:
        The transport, or ``None`` where the environment names an HTTP proxy
        (``HTTP_PROXY``, ``HTTPS_PROXY``, ``ALL_PROXY``): the proxy resolves and
        connects, and httpx's own transport honours it as before; only
        ``check_webhook_url`` applies then.
    """
    if {"http", "https", "all"} & set(urllib.request.getproxies()):
        return None
    return _CheckedTransport(limits=limits, resolve=resolve)
