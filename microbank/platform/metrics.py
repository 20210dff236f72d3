"""Prometheus metrics: requests by route template (counts, latency, in progress), connection
pools, the build; served at /metrics. And the one access line per request."""

from __future__ import annotations

import logging
import time
from collections import Counter as Tally
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from litestar import Response, get
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics_core import GaugeMetricFamily
from prometheus_client.registry import Collector

from microbank.platform.admission import EXEMPT
from microbank.platform.auth import CREDENTIAL_CHECK_PATH, PUBLIC

if TYPE_CHECKING:
    from microbank.platform.db import Database

access_log = logging.getLogger("microbank.access")

HTTP_REQUESTS = Counter("http_requests_total", "HTTP requests served", ["method", "handler", "status"])
HTTP_DURATION = Histogram(
    "http_request_duration_seconds",
    "Time to serve an HTTP request",
    ["method", "handler"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

BUILD_INFO = Gauge("microbank_build_info", "The build a process runs: 1, by version and role", ["version", "role"])

_UNMATCHED = "unmatched"
# Probes and scrapes come every few seconds from machines: their access lines are DEBUG.
_MACHINE_PATHS = frozenset({"/healthz", "/readyz", "/metrics", CREDENTIAL_CHECK_PATH})


class RequestsInProgress(Collector):
    """http_requests_in_progress{method,handler}, counted at scrape time from the requests being
    served: a request's handler is known only once Litestar has routed it, well after it began."""

    def __init__(self) -> None:
        self.scopes: dict[int, dict] = {}
        self._seen: set[tuple[str, str]] = set()

    def describe(self) -> list[GaugeMetricFamily]:
        return [self._family()]

    def collect(self) -> list[GaugeMetricFamily]:
        counts = Tally(
            (scope["method"], scope.get("path_template", _UNMATCHED)) for scope in list(self.scopes.values())
        )
        self._seen.update(counts)
        family = self._family()
        for labels in sorted(self._seen):  # a route once busy reads 0 when idle, not nothing
            family.add_metric(list(labels), counts.get(labels, 0))
        return [family]

    @staticmethod
    def _family() -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "http_requests_in_progress", "HTTP requests being served", labels=["method", "handler"]
        )


class ConnectionPools(Collector):
    """db_pool_size, db_pool_checked_out and db_pool_waiting per domain database, read from the
    pools at scrape time: a 503 under load shows as a pool with every connection out and callers
    queueing for one."""

    def __init__(self) -> None:
        self._databases: dict[str, Database] = {}

    def watch(self, db: Database) -> None:
        self._databases[db.name] = db

    def forget(self, db: Database) -> None:
        if self._databases.get(db.name) is db:
            del self._databases[db.name]

    def describe(self) -> list[GaugeMetricFamily]:
        return list(self._families())

    def collect(self) -> list[GaugeMetricFamily]:
        size, checked_out, waiting = families = self._families()
        for domain, db in list(self._databases.items()):
            pool: Any = db.engine.pool
            size.add_metric([domain], pool.size() if hasattr(pool, "size") else 1)
            checked_out.add_metric([domain], pool.checkedout() if hasattr(pool, "checkedout") else 0)
            waiting.add_metric([domain], getattr(pool, "waiting", 0))
        return list(families)

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
        return (
            GaugeMetricFamily("db_pool_size", "Connections a domain's pool holds at most", labels=["domain"]),
            GaugeMetricFamily("db_pool_checked_out", "Connections in use", labels=["domain"]),
            GaugeMetricFamily("db_pool_waiting", "Callers waiting for a connection", labels=["domain"]),
        )


REQUESTS_IN_PROGRESS = RequestsInProgress()
CONNECTION_POOLS = ConnectionPools()
REGISTRY.register(REQUESTS_IN_PROGRESS)
REGISTRY.register(CONNECTION_POOLS)


def record_build(role: str) -> None:
    try:
        built = version("microbank")
    except PackageNotFoundError:
        built = "unknown"
    BUILD_INFO.clear()
    BUILD_INFO.labels(built, role).set(1)


def status_class(code: int) -> str:
    return f"{code // 100}xx"


def instrument(app: Any) -> Any:
    """Wrap the whole ASGI app, so 401s from auth and 404s from routing are counted and logged too."""
    in_progress = REQUESTS_IN_PROGRESS.scopes

    async def instrumented(scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500}
        in_progress[id(scope)] = scope

        async def send_recording_status(message: dict) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await app(scope, receive, send_recording_status)
        finally:
            # Litestar writes the matched route template into the shared scope.
            del in_progress[id(scope)]
            handler = scope.get("path_template", _UNMATCHED)
            elapsed = time.perf_counter() - started
            HTTP_REQUESTS.labels(scope["method"], handler, status_class(status["code"])).inc()
            HTTP_DURATION.labels(scope["method"], handler).observe(elapsed)
            _log_access(scope, handler, status["code"], elapsed)

    return instrumented


def _log_access(scope: dict, handler: str, status: int, elapsed: float) -> None:
    """The request's one line at INFO: never its query string or headers, which may hold secrets."""
    path = scope["path"]
    level = logging.DEBUG if path in _MACHINE_PATHS else logging.INFO
    if access_log.isEnabledFor(level):
        fields = {
            "method": scope["method"],
            "handler": handler,
            "status": status,
            "duration_ms": round(elapsed * 1000, 2),
        }
        access_log.log(level, "%s %s %d", scope["method"], path, status, extra=fields)


# In a worker thread: some collectors (the outbox backlog) read a database at each scrape.
@get("/metrics", sync_to_thread=True, include_in_schema=False, opt={**PUBLIC, EXEMPT: True})
def metrics() -> Response[bytes]:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
