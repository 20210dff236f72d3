"""Waiting out a dependency that is not there yet: the broker, a database, a relay's sink."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

log = logging.getLogger("microbank.retry")

T = TypeVar("T")


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
    delay = first_delay
    while True:
        try:
            return await attempt()
        except retry_on as exc:
            log.warning("%s failed (%r); retrying in %.1fs", what, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_delay)
