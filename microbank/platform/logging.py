"""Log lines: one JSON object per line for machines, or a readable line for people, carrying the
request, user, transaction and event a line is about from the context the platform binds.

A stdlib Formatter rather than structlog: every library the bank runs on (uvicorn, alembic,
SQLAlchemy, aio-pika, FastStream) logs through the standard library, so a formatter on the root
logger is the one place all of them pass; msgspec, already the bank's JSON encoder, writes a line
in about a microsecond, and there is no second logging pipeline to configure or to pay for.
"""

from __future__ import annotations

import logging
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import msgspec

FORMATS = ("json", "console")
REQUEST_ID_HEADER = "X-Request-ID"
MAX_REQUEST_ID_LENGTH = 128

# The fields of the request or message being handled. A request gets a dict of its own, which
# code deeper in the request (auth, a service) adds to with bind(); nothing mutates _NONE.
_NONE: dict[str, Any] = {}
_context: ContextVar[dict[str, Any]] = ContextVar("microbank_log_context", default=_NONE)

# What every LogRecord carries; anything else on a record came in through `extra=` and is a field
# (but uvicorn's copy of its message with terminal colours).
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "color_message",
}
# Libraries that narrate every call or every migration context they open (/readyz opens one per probe).
_QUIET = {"alembic": logging.WARNING, "httpx": logging.WARNING, "httpcore": logging.WARNING}
# uvicorn's loggers propagate to the root instead of writing lines of their own.
_UVICORN = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")


def request_id_from(given: bytes | None) -> str:
    """The caller's request id if it is printable ASCII of at most MAX_REQUEST_ID_LENGTH
    characters (safe in a log line and a header), else a fresh one."""
    if given and len(given) <= MAX_REQUEST_ID_LENGTH:
        text = given.decode("latin-1")
        if text.isascii() and text.isprintable():
            return text
    return uuid.uuid4().hex


def current_request_id() -> str | None:
    return _context.get().get("request_id")


def start_request(request_id: str) -> Any:
    """Begin a request's context; hand the token back to end_request()."""
    return _context.set({"request_id": request_id})


def end_request(token: Any) -> None:
    _context.reset(token)


def bind(**fields: Any) -> None:
    """Add fields to the context of the request being handled (nothing outside a request)."""
    current = _context.get()
    if current is not _NONE:
        current.update(fields)


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Lines logged inside carry `fields` too (a message being handled, a batch being relayed)."""
    token = _context.set({**_context.get(), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


def fields_of(record: logging.LogRecord) -> dict[str, Any]:
    """The context and `extra=` fields of a record, context first."""
    fields = dict(_context.get())
    for key in record.__dict__.keys() - _RECORD_ATTRIBUTES:
        if (value := record.__dict__[key]) is not None:
            fields[key] = value
    return fields


# The second a line was written in, formatted once per second rather than once per line.
_second: tuple[int, str] = (-1, "")


def _utc_time(record: logging.LogRecord) -> str:
    global _second
    second, cached = int(record.created), _second  # one read: other threads replace it whole
    if cached[0] != second:
        cached = _second = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    return f"{cached[1]}.{int(record.msecs):03d}Z"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, role, logger, message, the context's
    fields, and the exception's traceback as a field."""

    def __init__(self, role: str | None) -> None:
        super().__init__()
        self.role = role
        self._encode = msgspec.json.Encoder(enc_hook=str).encode

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": _utc_time(record),
            "level": record.levelname,
            "role": self.role,
            "logger": record.name,
            "message": record.getMessage(),
            **fields_of(record),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return self._encode(line).decode()


class ConsoleFormatter(logging.Formatter):
    """`2026-12-03T12:41:29.123Z INFO  microbank.http  POST /api/transactions 201  request_id=…`"""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{_utc_time(record)} {record.levelname:<5} {record.name}  {record.getMessage()}"
        if fields := fields_of(record):
            line += "  " + " ".join(f"{key}={value}" for key, value in fields.items())
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return line


def formatter_for(log_format: str, role: str | None) -> logging.Formatter:
    if log_format == "json":
        return JsonFormatter(role)
    if log_format == "console":
        return ConsoleFormatter()
    raise ValueError(f"LOG_FORMAT must be one of {', '.join(FORMATS)}, got {log_format!r}")


def configure_logging(*, level: str, log_format: str, role: str | None, stream: Any = None) -> None:
    """Every logger of the process, uvicorn's included, writes through one handler in one format."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter_for(log_format, role))
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(True)  # a warning is a log line too, not raw text amid the JSON
    for name in _UVICORN:
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
    for name, quiet_level in _QUIET.items():
        logging.getLogger(name).setLevel(max(quiet_level, logging.getLevelName(level)))
