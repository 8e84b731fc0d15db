"""structlog set-up: a console renderer in a terminal, JSON lines otherwise.

Secrets never reach a log: any field whose name looks like a credential is masked by
`redact_secrets` before rendering, whatever the caller passed.
"""
from __future__ import annotations

import logging
import re
import sys

import structlog

_SECRET_NAME = re.compile(r"(secret|password|passwd|token|api_?key|key_id|authorization)", re.I)
MASK = "***"


def redact_secrets(logger, method_name, event_dict):
    """structlog processor: mask the values of credential-like fields."""
    for name in list(event_dict):
        if _SECRET_NAME.search(name):
            event_dict[name] = MASK
    return event_dict


class _CurrentStderr:
    """Writes to whatever sys.stderr is at the time of the write (not at configuration),
    so a replaced or closed stream (a test's capture, a daemon's redirect) is never kept."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure_logging(level: str = "info", fmt: str = "auto") -> None:
    """Configure structlog for the CLI (stderr, so stdout stays for reports and JSON)."""
    use_console = fmt == "console" or (fmt == "auto" and sys.stderr.isatty())
    renderer = structlog.dev.ConsoleRenderer() if use_console else structlog.processors.JSONRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact_secrets,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelName(level.upper()) if isinstance(level, str) else level),
        logger_factory=structlog.PrintLoggerFactory(file=_CurrentStderr()),
        cache_logger_on_first_use=False,
    )
