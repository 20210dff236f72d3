"""Log lines and request ids: what an operator reads, and what a caller gets back."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from litestar import Litestar, get
from litestar.params import FromPath

from microbank import cli
from microbank.platform.http import with_request_ids
from microbank.platform.logging import (
    MAX_REQUEST_ID_LENGTH,
    ConsoleFormatter,
    JsonFormatter,
    bind,
    configure_logging,
    current_request_id,
    log_context,
)
from microbank.platform.metrics import REQUESTS_IN_PROGRESS, instrument
from microbank.platform.settings import ConfigError, load_settings


def record(message: str = "hello %s", *args: object, **extra: object) -> logging.LogRecord:
    made = logging.LogRecord("microbank.test", logging.WARNING, __file__, 1, message, args or ("world",), None)
    made.__dict__.update(extra)
    return made


def test_a_json_line_names_time_in_utc_level_role_logger_and_message() -> None:
    line = json.loads(JsonFormatter("transactions").format(record()))

    assert line["level"] == "WARNING"
    assert line["role"] == "transactions"
    assert line["logger"] == "microbank.test"
    assert line["message"] == "hello world"
    assert line["time"].endswith("Z")
    written = datetime.fromisoformat(line["time"].replace("Z", "+00:00"))
    assert abs((datetime.now(UTC) - written).total_seconds()) < 5


def test_a_line_carries_the_context_and_its_extra_fields() -> None:
    with log_context(request_id="req-1", event_id="ev-1", user_id=None):
        line = json.loads(JsonFormatter("notifier").format(record(transaction_id=7)))

    assert line["request_id"] == "req-1"
    assert line["event_id"] == "ev-1"
    assert line["transaction_id"] == 7
    assert "user_id" not in line  # unknown fields are left out, not written as null


def test_an_exception_is_one_field_of_one_line() -> None:
    try:
        raise ValueError("the ledger is on fire")
    except ValueError:
        failed = logging.LogRecord("microbank.test", logging.ERROR, __file__, 1, "failed", None, True)
        failed.exc_info = __import__("sys").exc_info()

    text = JsonFormatter("accounts").format(failed)

    assert "\n" not in text
    line = json.loads(text)
    assert "ValueError: the ledger is on fire" in line["exception"]
    assert line["exception"].startswith("Traceback")


def test_the_console_line_is_for_people_and_carries_the_same_fields() -> None:
    with log_context(request_id="req-2"):
        text = ConsoleFormatter().format(record(status=201))

    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z WARNING microbank\.test  hello world  ", text), text
    assert "request_id=req-2" in text and "status=201" in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """The process's logging, configured as `microbank serve` configures it, into a buffer."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    stream = io.StringIO()
    configure_logging(level="INFO", log_format="json", role="accounts", stream=stream)
    yield stream
    root.handlers[:], root.level = saved
    logging.captureWarnings(False)


def test_uvicorns_loggers_write_the_same_json_lines(captured: io.StringIO) -> None:
    logging.getLogger("uvicorn.error").info("Started server process [%d]", 42, extra={"color_message": "\x1b[36m"})
    logging.getLogger("microbank").info("serving")

    lines = [json.loads(line) for line in captured.getvalue().splitlines()]
    assert [line["logger"] for line in lines] == ["uvicorn.error", "microbank"]
    assert "color_message" not in lines[0]


def test_an_unknown_log_format_is_refused() -> None:
    with pytest.raises(ValueError, match="json, console"):
        configure_logging(level="INFO", log_format="xml", role=None)


@get("/api/things/{thing_id:int}", sync_to_thread=False)
def thing(thing_id: FromPath[int]) -> dict:
    bind(user_id=thing_id)
    return {"request_id": current_request_id(), "in_progress": len(REQUESTS_IN_PROGRESS.scopes)}


APP = with_request_ids(instrument(Litestar([thing], logging_config=None)))


def get_thing(headers: dict[str, str | bytes] | None = None) -> httpx.Response:
    async def call() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=APP), base_url="http://bank") as client:
            return await client.get("/api/things/5", headers=headers)

    return asyncio.run(call())


def test_a_callers_printable_request_id_is_kept_and_echoed() -> None:
    given = "deposit-" + "x" * (MAX_REQUEST_ID_LENGTH - 8)

    response = get_thing({"X-Request-ID": given})

    assert response.headers["x-request-id"] == given
    assert response.json()["request_id"] == given


@pytest.mark.parametrize(
    "given",
    [b"x" * (MAX_REQUEST_ID_LENGTH + 1), "caf\u00e9".encode(), b"tab\there", b""],
    ids=["too long", "not ascii", "control character", "empty"],
)
def test_an_unfit_request_id_is_replaced_by_a_fresh_one(given: bytes) -> None:
    response = get_thing({"X-Request-ID": given})

    made = response.headers["x-request-id"]
    assert made.encode() != given and re.fullmatch(r"[0-9a-f]{32}", made)
    assert response.json()["request_id"] == made


def test_a_request_without_an_id_gets_a_fresh_one_each_time() -> None:
    first, second = get_thing(), get_thing()

    assert first.headers["x-request-id"] != second.headers["x-request-id"]
    assert first.json()["request_id"] == first.headers["x-request-id"]


def test_each_request_writes_one_access_line_with_its_id_user_route_and_status(captured: io.StringIO) -> None:
    response = get_thing({"X-Request-ID": "walk-1"})

    lines = [json.loads(line) for line in captured.getvalue().splitlines()]
    assert len(lines) == 1, lines
    access = lines[0]
    assert access["message"] == "GET /api/things/5 200"
    assert access["request_id"] == "walk-1" and access["user_id"] == 5
    assert access["handler"] == "/api/things/{thing_id}" and access["status"] == 200
    assert access["duration_ms"] >= 0
    assert response.json()["in_progress"] == 1
    assert REQUESTS_IN_PROGRESS.scopes == {}


@pytest.mark.parametrize(
    ("command", "log_format", "formatter"),
    [
        ("serve", None, JsonFormatter),
        ("migrate", None, JsonFormatter),
        ("dev", None, ConsoleFormatter),
        ("dev", "json", JsonFormatter),
        ("serve", "console", ConsoleFormatter),
    ],
)
def test_deployments_log_json_and_people_read_lines_unless_log_format_says_otherwise(
    captured: io.StringIO, monkeypatch: pytest.MonkeyPatch, command: str, log_format: str | None, formatter: type
) -> None:
    if log_format:
        monkeypatch.setenv("LOG_FORMAT", log_format)
    else:
        monkeypatch.delenv("LOG_FORMAT", raising=False)

    cli.configure_logging(command, load_settings())

    [handler] = logging.getLogger().handlers
    assert type(handler.formatter) is formatter


def test_a_log_format_the_bank_does_not_write_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOG_FORMAT", "logfmt")

    with pytest.raises(ConfigError, match="LOG_FORMAT must be json or console, got 'logfmt'"):
        load_settings()
