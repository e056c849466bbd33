"""Logging set-up. Platform clients put bot tokens in request URLs, so their HTTP loggers are
kept at WARNING and every record passes through a filter that masks known secrets."""

from __future__ import annotations

import logging
import re
from typing import TextIO

_TOKEN_PATTERNS = (
    re.compile(r"\d{6,}:[A-Za-z0-9_-]{30,}"),  # Telegram bot token
    re.compile(r"[A-Za-z0-9_-]{23,28}\.[A-Za-z0-9_-]{6,7}\.[A-Za-z0-9_-]{27,}"),  # Discord token
)
_secrets: set[str] = set()


def register_secret(value: str) -> None:
    """Mask ``value`` wherever it would appear in a log record."""
    if value:
        _secrets.add(value)


def redact(text: str) -> str:
    """``text`` with registered secrets and token-shaped strings masked."""
    for secret in _secrets:
        text = text.replace(secret, "********")
    for pattern in _TOKEN_PATTERNS:
        text = pattern.sub("********", text)
    return text


class RedactingFilter(logging.Filter):
    """Rewrites each record's message with secrets masked (for handlers copss does not own;
    its own handler also masks tracebacks, see :class:`RedactingFormatter`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


class RedactingFormatter(logging.Formatter):
    """Masks secrets in the whole formatted record: the message, and the exception text and
    stack, where a failed request's URL or an exception's arguments can carry a token."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def setup_logging(level: str = "INFO", stream: TextIO | None = None) -> None:
    """Log to ``stream`` (stderr) at ``level`` with secrets masked."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("httpx", "httpcore", "aiosqlite", "sqlalchemy.engine"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
