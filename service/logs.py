"""Process-wide logging set-up for the CLI: structured lines, credentials always masked."""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Any

from anjian.cameras.url import mask_credentials

__all__ = ["JsonFormatter", "MaskCredentialsFilter", "MaskingFormatter", "mask_secrets", "setup_logging"]


_API_TOKEN = re.compile(r"anj_[A-Za-z0-9_-]{8,}")


def mask_secrets(text: str) -> str:
    """``text`` with URL credentials, camera passwords and API tokens (``anj_…``) masked."""
    return _API_TOKEN.sub("anj_***", mask_credentials(text))


class MaskCredentialsFilter(logging.Filter):
    """Masks ``scheme://user:pass@`` and API tokens in every record's final message, whatever logged it."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record's message with secrets masked; never drops a record."""
        message = record.getMessage()
        masked = mask_secrets(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


class MaskingFormatter(logging.Formatter):
    """A plain-text formatter that masks secrets in tracebacks and stacks too (the filter sees only messages).

    An exception chained from a pydantic error or an FFmpeg one quotes its input, a
    camera URL with its password among them.
    """

    def formatException(self, ei: Any) -> str:
        """The traceback, secrets masked."""
        return mask_secrets(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        """The stack, secrets masked."""
        return mask_secrets(super().formatStack(stack_info))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message (and the exception, if any)."""

    def format(self, record: logging.LogRecord) -> str:
        """Render the record as a JSON line."""
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = mask_secrets(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


def setup_logging(level: str = "INFO", *, is_json: bool = False) -> None:
    """Configure the root logger once for a CLI process (library code never calls this)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(MaskCredentialsFilter())
    handler.setFormatter(
        JsonFormatter() if is_json else MaskingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("httpx", "httpcore", "libav", "alembic"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
