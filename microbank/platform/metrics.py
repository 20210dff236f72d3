"""Prometheus metrics: request counts and latency by route template, served at /metrics."""

from __future__ import annotations

import time
from typing import Any

from litestar import Response, get
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Histogram, generate_latest

from microbank.platform.admission import EXEMPT
from microbank.platform.auth import PUBLIC

HTTP_REQUESTS = Counter("http_requests_total", "HTTP requests served", ["method", "handler", "status"])
HTTP_DURATION = Histogram(
    "http_request_duration_seconds",
    "Time to serve an HTTP request",
    ["method", "handler"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

_UNMATCHED = "unmatched"


def status_class(code: int) -> str:
    return f"{code // 100}xx"


def instrument(app: Any) -> Any:
    """Wrap the whole ASGI app, so 401s from auth and 404s from routing are counted too."""

    async def instrumented(scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500}

        async def send_recording_status(message: dict) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await app(scope, receive, send_recording_status)
        finally:
            # Litestar writes the matched route template into the shared scope.
            handler = scope.get("path_template", _UNMATCHED)
            HTTP_REQUESTS.labels(scope["method"], handler, status_class(status["code"])).inc()
            HTTP_DURATION.labels(scope["method"], handler).observe(time.perf_counter() - started)

    return instrumented


# In a worker thread: some collectors (the outbox backlog) read a database at each scrape.
@get("/metrics", sync_to_thread=True, include_in_schema=False, opt={**PUBLIC, EXEMPT: True})
def metrics() -> Response[bytes]:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
