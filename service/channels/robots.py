"""Group robots: DingTalk (钉钉), WeCom (企业微信) and Feishu (飞书) custom-robot webhooks.

Each vendor takes a JSON POST to the robot's webhook URL and answers HTTP 200 even
when it refuses the message, with an error code in the body; a refusal is a failed
attempt, retried by the outbox like a webhook's 5xx.

- **DingTalk** (``https://oapi.dingtalk.com/robot/send?access_token=…``): with 加签,
  ``timestamp`` (milliseconds) and ``sign`` = base64(HMAC-SHA256(key=secret,
  msg=timestamp + "\\n" + secret)) are added to the query. The message is an
  ``actionCard`` (markdown with a coloured title and one button to the alert), or
  ``markdown`` without a public URL. Answer ``{"errcode": 0}``; 130101 (more than 20
  a minute) is a rate limit, and the robot is muted for ten minutes.
- **WeCom** (``https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=…``): no signature,
  the key is the credential. ``markdown`` (at most 4096 bytes; colours ``warning``,
  ``comment``, ``info``). Answer ``{"errcode": 0}``; 45009 is a rate limit (20 a minute).
- **Feishu** (``https://open.feishu.cn/open-apis/bot/v2/hook/…``): with 签名校验, the
  body carries ``timestamp`` (seconds, as a string) and ``sign`` = base64(HMAC-SHA256(
  key=timestamp + "\\n" + secret, msg=empty)). An ``interactive`` card with a coloured
  header and a button. Answer ``{"code": 0}`` (older robots: ``{"StatusCode": 0}``);
  11232 is a rate limit (100 a minute, 5 a second).

A rate-limit answer (those codes, or HTTP 429) holds the whole robot, not only that message:
its ``MessageSpacing`` sends nothing until the vendor's wait is over (DingTalk ten minutes,
else a minute or the ``Retry-After``), so its other queued messages wait instead of posting
into the mute, and the refused message is not counted toward ``max_attempts``.

Operator notes, names from the site YAML and the title go into the vendors' markdown
(Feishu ``lark_md``) with their markup characters in full-width form (``<`` as ``＜``,
``[`` as ``［``, ``*`` as ``＊`` ...) and on one line (``markdown_text``): a note cannot
mention everyone (``<at id=all></at>``, ``<@user>``), add a link, or forge a line of the card.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import httpx

from anjian.cameras.url import mask_credentials
from anjian.service.channels.config import RobotConfig
from anjian.service.channels.message import AlertMessage
from anjian.service.channels.outcome import SendOutcome, retry_after_header_s
from anjian.service.channels.spacing import MessageSpacing

__all__ = [
    "RobotChannel",
    "dingtalk_body",
    "dingtalk_sign",
    "feishu_body",
    "feishu_sign",
    "markdown_text",
    "wecom_body",
]

_RATE_LIMIT_CODES: dict[str, frozenset[int]] = {
    "dingtalk": frozenset({130101}),
    "wecom": frozenset({45009}),
    "feishu": frozenset({11232}),
}
_RATE_LIMIT_WAIT_S: dict[str, float] = {
    "dingtalk": 600.0,  # "限流10分钟": muted for ten minutes after more than 20 a minute
    "wecom": 60.0,
    "feishu": 60.0,
}
_HTTP_429_WAIT_S = 60.0  # without a Retry-After
_MARKUP = str.maketrans(
    {
        "<": "＜",
        ">": "＞",
        "[": "［",
        "]": "］",
        "*": "＊",
        "_": "＿",
        "`": "｀",
        "~": "～",
        "&": "＆",
        "\\": "＼",
    }
)  # each vendor's markup (tags, mentions, links, emphasis, entities), as full-width characters no markdown reads
_WECOM_MAX_BYTES = 4096
_ERROR_CHARS = 200
_DINGTALK_COLOURS = {"red": "#D32F2F", "orange": "#EF6C00", "yellow": "#F9A825", "blue": "#1565C0"}
_WECOM_COLOURS = {"red": "warning", "orange": "warning", "yellow": "comment", "blue": "info"}
_OPEN_ALERT = "查看告警与证据 Open alert and evidence"


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """DingTalk's 加签: base64 HMAC-SHA256 of ``"<timestamp>\\n<secret>"`` keyed with the secret."""
    digest = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def feishu_sign(secret: str, timestamp_s: int) -> str:
    """Feishu's 签名校验: base64 HMAC-SHA256 of an empty message keyed with ``"<timestamp>\\n<secret>"``."""
    digest = hmac.new(f"{timestamp_s}\n{secret}".encode(), b"", hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def markdown_text(text: str) -> str:
    """``text`` as robot markdown shows it as written: one line, its markup characters full-width.

    Example:
        >>> markdown_text("<at id=all></at> [见](https://x.cn)\\n**急**")
        '＜at id=all＞＜/at＞ ［见］(https://x.cn) ＊＊急＊＊'
    """
    return " ".join(text.translate(_MARKUP).splitlines())


def _markdown_lines(message: AlertMessage, *, bold: str = "**") -> list[str]:
    """``**label**: value`` lines of the message's fields (values shown as written: ``markdown_text``)."""
    return [f"{bold}{label}{bold}: {markdown_text(value)}" for label, value in message.fields]


def dingtalk_body(message: AlertMessage) -> dict[str, Any]:
    """The DingTalk robot message: an action card with one button to the alert, else markdown."""
    colour = _DINGTALK_COLOURS.get(message.colour, "#000000")
    heading = f"### <font color={colour}>{markdown_text(message.title)}</font>"
    text = "\n\n".join([heading, *_markdown_lines(message)])
    if message.alert_url is None:
        return {"msgtype": "markdown", "markdown": {"title": message.title, "text": text}}
    if message.snapshot_url is not None:
        text += f"\n\n[快照 Snapshot]({message.snapshot_url})"
    return {
        "msgtype": "actionCard",
        "actionCard": {
            "title": message.title,
            "text": text,
            "btnOrientation": "0",
            "singleTitle": _OPEN_ALERT,
            "singleURL": message.alert_url,
        },
    }


def wecom_body(message: AlertMessage) -> dict[str, Any]:
    """The WeCom robot message: markdown with a coloured title, at most 4096 bytes."""
    colour = _WECOM_COLOURS.get(message.colour, "comment")
    lines = [
        f'## <font color="{colour}">{markdown_text(message.title)}</font>',
        *(f"> {line}" for line in _markdown_lines(message)),
    ]
    links = []
    if message.alert_url is not None:
        links.append(f"[{_OPEN_ALERT}]({message.alert_url})")
    if message.snapshot_url is not None:
        links.append(f"[快照 Snapshot]({message.snapshot_url})")
    content = "\n".join(lines)
    tail = ("\n" + "  ".join(links)) if links else ""
    budget = _WECOM_MAX_BYTES - len(tail.encode())
    encoded = content.encode()
    if len(encoded) > budget:  # cut the fields, never the links
        content = encoded[: budget - 3].decode(errors="ignore") + "…"
    return {"msgtype": "markdown", "markdown": {"content": content + tail}}


def feishu_body(message: AlertMessage) -> dict[str, Any]:
    """The Feishu robot message: an interactive card with a coloured header and a button."""
    elements: list[dict[str, Any]] = [
        {"tag": "div", "text": {"tag": "lark_md", "content": "\n".join(_markdown_lines(message))}}
    ]
    actions = []
    if message.alert_url is not None:
        actions.append(
            _feishu_button(_OPEN_ALERT, message.alert_url, "danger" if message.colour == "red" else "primary")
        )
    if message.snapshot_url is not None:
        actions.append(_feishu_button("快照 Snapshot", message.snapshot_url, "default"))
    if actions:
        elements.append({"tag": "action", "actions": actions})
    return {
        "msg_type": "interactive",
        "card": {
            "config": {"wide_screen_mode": True},
            "header": {"title": {"tag": "plain_text", "content": message.title}, "template": message.colour},
            "elements": elements,
        },
    }


def _feishu_button(text: str, url: str, style: str) -> dict[str, Any]:
    """One card button opening ``url``."""
    return {"tag": "button", "text": {"tag": "plain_text", "content": text}, "url": url, "type": style}


class RobotChannel:
    """Sends alert messages to one group robot, spaced to its rate.

    Args:
        config: The robot's section of the site YAML.
        client: The HTTP client (shared by the channels).
        clock: Epoch seconds, for the signatures' timestamps.
        spacing: The robot's rate keeper; default ``config.per_minute`` a minute and
            ``config.per_second`` a second.
    """

    def __init__(
        self,
        config: RobotConfig,
        client: httpx.Client,
        *,
        clock: Callable[[], float],
        spacing: MessageSpacing | None = None,
    ) -> None:
        self.name = config.name
        self._config = config
        self._client = client
        self._clock = clock
        self._spacing = spacing or MessageSpacing(config.per_minute, per_second=config.per_second)

    def send(self, message: AlertMessage, snapshot: bytes | None) -> SendOutcome:
        """POST the message once (``snapshot`` is unused: robots link to it); never raises for network failures."""
        del snapshot
        wait_s = self._spacing.reserve()
        if wait_s > 0:
            return SendOutcome(
                status_code=None,
                error=self._held_back_reason(),
                retry_after_s=wait_s,
                is_attempted=False,
            )
        url, body = self._request(message)
        content = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        try:
            response = self._client.post(
                url,
                content=content,
                headers={"Content-Type": "application/json; charset=utf-8"},
                timeout=self._config.timeout_s,
            )
        except httpx.TransportError as exc:  # no answer (connect, timeout): its other messages wait too
            error = self._scrub(f"{type(exc).__name__}: {exc}")
            return SendOutcome(status_code=None, error=error, is_unreachable=True)
        except Exception as exc:  # noqa: BLE001 - any failure is a failed attempt; the message may quote the URL: mask it
            return SendOutcome(status_code=None, error=self._scrub(f"{type(exc).__name__}: {exc}"))
        outcome = self._judge(response)
        if outcome.is_rate_limited and outcome.retry_after_s is not None:
            self._spacing.hold(outcome.retry_after_s)  # the whole robot waits, not only this message
        return outcome

    def _held_back_reason(self) -> str:
        """Why a message was not sent now: the vendor's rate-limit answer, or anjian's own spacing."""
        kind = self._config.kind
        held_s = self._spacing.held_s()
        if held_s > 0:
            return f"held back: the {kind} robot answered with its rate limit; nothing goes for {held_s:.0f}s"
        per_second = self._config.per_second
        rate = f"{self._config.per_minute} messages a minute" + (
            f" and {per_second} a second" if per_second is not None else ""
        )
        return f"held back: {kind} robot at {rate}"

    def _request(self, message: AlertMessage) -> tuple[str, dict[str, Any]]:
        """The URL to POST to (signed for DingTalk) and the JSON body (signed for Feishu)."""
        kind = self._config.kind
        url = self._config.url.get_secret_value()
        secret = None if self._config.secret is None else self._config.secret.get_secret_value()
        if kind == "dingtalk":
            body = dingtalk_body(message)
            if secret is not None:
                timestamp_ms = int(self._clock() * 1000)
                query = urlencode({"timestamp": timestamp_ms, "sign": dingtalk_sign(secret, timestamp_ms)})
                url += ("&" if "?" in url else "?") + query
            return url, body
        if kind == "feishu":
            body = feishu_body(message)
            if secret is not None:
                timestamp_s = int(self._clock())
                body = {"timestamp": str(timestamp_s), "sign": feishu_sign(secret, timestamp_s), **body}
            return url, body
        return url, wecom_body(message)

    def _scrub(self, text: str) -> str:
        """``text`` with the robot's URL (its token, a Feishu hook id in the path) and its secret masked."""
        url = self._config.url.get_secret_value()
        secret = None if self._config.secret is None else self._config.secret.get_secret_value()
        for hidden in (url, url.split("?", 1)[0], secret):
            if hidden and len(hidden) >= 8:  # a short secret would garble the text; none is that short
                text = text.replace(hidden, f"<{self._config.kind} robot {self.name}>")
        return mask_credentials(text)

    def _judge(self, response: httpx.Response) -> SendOutcome:
        """A 2xx with a zero error code is a success; anything else fails, a rate limit asks to wait."""
        status = response.status_code
        excerpt = self._scrub(response.text[:_ERROR_CHARS].strip())
        if status == 429:
            return SendOutcome(
                status, f"HTTP 429: {excerpt}", retry_after_s=_retry_after(response), is_rate_limited=True
            )
        if not response.is_success:
            return SendOutcome(status, f"HTTP {status}" + (f": {excerpt}" if excerpt else ""))
        try:
            answer = response.json()
        except ValueError:
            return SendOutcome(status, f"HTTP {status} but the answer is not JSON: {excerpt!r}")
        if not isinstance(answer, dict):
            return SendOutcome(status, f"HTTP {status} but the answer is not a JSON object: {excerpt!r}")
        if self._config.kind == "feishu":
            code, text = (
                answer.get("code", answer.get("StatusCode")),
                answer.get("msg", answer.get("StatusMessage")),
            )
        else:
            code, text = answer.get("errcode"), answer.get("errmsg")
        if type(code) is int and code == 0:  # false or 0.0 is no vendor's success code
            return SendOutcome(status, None)
        error = (
            f"{self._config.kind} refused the message: code {code}, {self._scrub(str(text))[:_ERROR_CHARS]}"
        )
        if isinstance(code, int) and code in _RATE_LIMIT_CODES[self._config.kind]:
            wait_s = _RATE_LIMIT_WAIT_S[self._config.kind]
            return SendOutcome(status, error, retry_after_s=wait_s, is_rate_limited=True)
        return SendOutcome(status, error)


def _retry_after(response: httpx.Response) -> float:
    """The seconds a 429 asks to wait (``Retry-After``), else a minute."""
    return retry_after_header_s(response.headers) or _HTTP_429_WAIT_S
