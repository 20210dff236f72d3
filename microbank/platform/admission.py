"""Back-pressure: a role takes on only the requests it can finish in time, and tells the rest at
once to come back later (503 with Retry-After), instead of queueing them until they time out."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send
from prometheus_client import Counter

from microbank.platform.errors import Unavailable

# Handler opt for routes that stay open (the notification stream) or must answer however busy
# the role is (health, readiness, metrics): they take no slot.
EXEMPT = "exempt_from_admission"

HTTP_REQUESTS_SHED = Counter(
    "http_requests_shed_total", "Requests refused with 503 and Retry-After because the role was full", ["handler"]
)


class Overloaded(Unavailable):
    code = "overloaded"

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": "1"}


class Admission:
    """At most `limit` requests in progress; up to `queue` more wait, each for at most `max_wait`
    seconds, in arrival order. Any other is refused at once."""

    def __init__(self, *, limit: int, queue: int, max_wait: float) -> None:
        self.limit = limit
        self.queue = queue
        self.max_wait = max_wait
        self._slots: asyncio.Semaphore | None = None
        self._waiting = 0

    @contextlib.asynccontextmanager
    async def slot(self, handler: str) -> AsyncIterator[None]:
        slots = self._slots = self._slots or asyncio.Semaphore(self.limit)
        if slots.locked():
            await self._wait(slots, handler)
        else:
            await slots.acquire()
        try:
            yield
        finally:
            slots.release()

    async def _wait(self, slots: asyncio.Semaphore, handler: str) -> None:
        if self._waiting >= self.queue:
            self._shed(handler)
        self._waiting += 1
        try:
            await asyncio.wait_for(slots.acquire(), self.max_wait)
        except TimeoutError:
            self._shed(handler)
        finally:
            self._waiting -= 1

    def _shed(self, handler: str) -> None:
        HTTP_REQUESTS_SHED.labels(handler).inc()
        raise Overloaded("the service is at capacity; try again in a second")


class AdmissionMiddleware(ASGIMiddleware):
    scopes = (ScopeType.HTTP,)
    exclude_opt_key = EXEMPT

    def __init__(self, admission: Admission) -> None:
        self.admission = admission

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        async with self.admission.slot(scope.get("path_template", "unmatched")):  # type: ignore[arg-type]
            await next_app(scope, receive, send)
