"""Real loopback stand-ins for the DingTalk, WeCom and Feishu robot webhooks, checking what the vendors check.

Each answers as its vendor documents: HTTP 200 with ``errcode``/``code`` 0 when the
message is accepted, and HTTP 200 with a non-zero code when it is not (wrong signature,
stale timestamp, unknown key, scripted "system busy" or rate-limit answers). The
signature checks are written from the vendors' documentation independently of
``anjian.service.channels.robots``:

- DingTalk: ``timestamp`` (ms) and ``sign`` in the query; ``sign`` is base64 of
  HMAC-SHA256 keyed with the secret over ``timestamp + "\\n" + secret``, URL-encoded;
  the timestamp within one hour of the receiver's clock.
- Feishu: ``timestamp`` (s, a string) and ``sign`` in the JSON body; ``sign`` is base64
  of HMAC-SHA256 keyed with ``timestamp + "\\n" + secret`` over an empty message.
- WeCom: the ``key`` query parameter must be the robot's key; no signature.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["Accepted", "RobotReceiver"]

_HOUR_S = 3600.0
_RATE_LIMITED: dict[str, dict[str, Any]] = {
    "dingtalk": {"errcode": 130101, "errmsg": "send too fast, exceed 20 times per minute"},
    "wecom": {"errcode": 45009, "errmsg": "api freq out of limit"},
    "feishu": {"code": 11232, "msg": "frequency limited psm[lark.oapi.app_platform_runtime]appID[1]"},
}


@dataclass
class Accepted:
    """A message the robot took: the parsed JSON body and the query."""

    body: dict[str, Any]
    query: dict[str, str]


@dataclass
class RobotReceiver:
    """One robot of ``kind`` on 127.0.0.1, checking ``secret`` (or ``key`` for WeCom) with ``clock``.

    ``scripted`` answers come first, one per request whose signature is good: each a JSON
    object to answer instead of accepting (e.g. ``{"errcode": -1, "errmsg": "系统繁忙"}``).
    Until ``clock()`` reaches ``muted_until`` every such request gets the vendor's rate-limit
    answer (DingTalk mutes a robot for ten minutes) and is kept in ``muted``.
    """

    kind: str
    credential: str
    clock: Callable[[], float]
    scripted: list[dict[str, Any]] = field(default_factory=list)
    accepted: list[Accepted] = field(default_factory=list)
    refused: list[dict[str, Any]] = field(default_factory=list)
    muted_until: float = float("-inf")
    muted: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                answer = receiver._answer(self.path, raw, self.headers.get("Content-Type", ""))
                data = json.dumps(answer, ensure_ascii=False).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        """The robot's webhook URL as its group settings would show it."""
        port = self._server.server_address[1]
        if self.kind == "dingtalk":
            return f"http://127.0.0.1:{port}/robot/send?access_token=tok-{self.credential[:4]}"
        if self.kind == "wecom":
            return f"http://127.0.0.1:{port}/cgi-bin/webhook/send?key={self.credential}"
        return f"http://127.0.0.1:{port}/open-apis/bot/v2/hook/hook-{self.credential[:4]}"

    def close(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()

    def _answer(self, path: str, raw: bytes, content_type: str) -> dict[str, Any]:
        """Check the request as the vendor does; accept it, refuse it, or give the next scripted answer."""
        query = {k: v[0] for k, v in parse_qs(urlsplit(path).query).items()}
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return self._refuse({"errcode": 40035, "errmsg": "not JSON", "code": 9499, "msg": "Bad Request"})
        if "application/json" not in content_type:
            return self._refuse(
                {"errcode": 40035, "errmsg": "content type", "code": 9499, "msg": "Bad Request"}
            )
        problem = getattr(self, f"_check_{self.kind}")(query, body)
        if problem is not None:
            return self._refuse(problem)
        with self._lock:
            if self.scripted:
                return self.scripted.pop(0)
            if self.clock() < self.muted_until:
                self.muted.append(body)
                return _RATE_LIMITED[self.kind]
            self.accepted.append(Accepted(body=body, query=query))
        return (
            {"code": 0, "msg": "success", "data": {}}
            if self.kind == "feishu"
            else {"errcode": 0, "errmsg": "ok"}
        )

    def _refuse(self, answer: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self.refused.append(answer)
        return answer

    def _check_dingtalk(self, query: dict[str, str], body: dict[str, Any]) -> dict[str, Any] | None:
        timestamp, sign = query.get("timestamp", ""), query.get("sign", "")
        if not timestamp.isdigit() or abs(int(timestamp) / 1000 - self.clock()) > _HOUR_S:
            return {"errcode": 310000, "errmsg": "invalid timestamp"}
        expected = base64.b64encode(
            hmac.new(
                self.credential.encode(), f"{timestamp}\n{self.credential}".encode(), hashlib.sha256
            ).digest()
        ).decode()
        if not hmac.compare_digest(sign, expected):  # parse_qs already URL-decoded it
            return {"errcode": 310000, "errmsg": "sign not match"}
        if body.get("msgtype") not in ("text", "markdown", "actionCard", "link", "feedCard"):
            return {"errcode": 40035, "errmsg": "missing msgtype"}
        return None

    def _check_feishu(self, query: dict[str, str], body: dict[str, Any]) -> dict[str, Any] | None:
        del query
        timestamp, sign = body.get("timestamp"), body.get("sign")
        if (
            not isinstance(timestamp, str)
            or not timestamp.isdigit()
            or abs(int(timestamp) - self.clock()) > _HOUR_S
        ):
            return {
                "code": 19021,
                "msg": "sign match fail or timestamp is not within one hour from current time",
            }
        key = f"{timestamp}\n{self.credential}".encode()
        expected = base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()
        if not isinstance(sign, str) or not hmac.compare_digest(sign, expected):
            return {
                "code": 19021,
                "msg": "sign match fail or timestamp is not within one hour from current time",
            }
        if body.get("msg_type") != "interactive" or not isinstance(body.get("card"), dict):
            return {"code": 9499, "msg": "Bad Request"}
        return None

    def _check_wecom(self, query: dict[str, str], body: dict[str, Any]) -> dict[str, Any] | None:
        if query.get("key") != self.credential:
            return {
                "errcode": 93000,
                "errmsg": "invalid webhook url, hint: [1700000000_1], from ip: 127.0.0.1",
            }
        content = body.get("markdown", {}).get("content") if body.get("msgtype") == "markdown" else None
        if not isinstance(content, str) or len(content.encode()) > 4096:
            return {"errcode": 40058, "errmsg": "markdown.content exceed max length 4096"}
        return None
