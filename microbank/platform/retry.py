"""Waiting out a dependency that is not there yet: the broker, a database, a relay's sink."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

log = logging.getLogger("microbank.retry")

T = TypeVar("T")


class FailureLog:
    """Logs a loop's failures without flooding: the first of a run of failures, and each change of
    what fails, as a warning; the rest at debug; and the recovery once."""

    def __init__(self, logger: logging.Logger, what: str) -> None:
        self.logger = logger
        self.what = what
        self._failing: str | None = None

    def failed(self, exc: BaseException) -> None:
        reason = f"{type(exc).__name__}: {exc}"
        level = logging.DEBUG if reason == self._failing else logging.WARNING
        self.logger.log(level, "%s failed, retrying: %s", self.what, reason)
        self._failing = reason

    def recovered(self) -> None:
        if self._failing is not None:
            self.logger.info("%s works again", self.what)
            self._failing = None


async def retry_until_done(
    attempt: Callable[[], Awaitable[T]],
    *,
    what: str,
    retry_on: tuple[type[BaseException], ...] = (Exception,),
    first_delay: float = 0.5,
    max_delay: float = 30.0,
) -> T:
    """Await `attempt()` until it succeeds, waiting twice as long after each failure, up to
    `max_delay`; an exception outside `retry_on` ends it."""
    delay, failures = first_delay, FailureLog(log, what)
    while True:
        try:
            result = await attempt()
        except retry_on as exc:
            failures.failed(exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_delay)
            continue
        failures.recovered()
        return result
