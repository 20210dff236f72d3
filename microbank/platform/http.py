"""create_http_app: one Litestar app for the domains a role serves, with errors, auth,
health, metrics and OpenAPI wired the same way for every role."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

import anyio.to_thread
from litestar import Litestar, Request, Response, get, post
from litestar.concurrency import get_asyncio_executor, set_asyncio_executor
from litestar.datastructures import State
from litestar.exceptions import HTTPException, ValidationException
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

from microbank.platform.admission import EXEMPT, Admission, AdmissionMiddleware
from microbank.platform.auth import (
    CREDENTIAL_CHECK_PATH,
    PUBLIC,
    BearerAuthMiddleware,
    TokenIssuer,
    TokenVerifier,
    public_pem_of,
    service_only,
)
from microbank.platform.bodies import StrictRequest
from microbank.platform.domain import Runtime, Worker
from microbank.platform.errors import DomainError
from microbank.platform.logging import end_request, request_id_from, start_request
from microbank.platform.metrics import CONNECTION_POOLS, instrument, metrics, record_build
from microbank.platform.openapi import complete_document, document_refusals
from microbank.platform.settings import ConfigError, Settings

log = logging.getLogger("microbank.http")


def error_body(status: int, code: str, detail: str, errors: list[dict] | None = None) -> dict:
    body: dict[str, Any] = {"status": status, "error": code, "detail": detail}
    if errors:
        body["errors"] = errors
    return body


def domain_error_response(_: Request, exc: DomainError) -> Response:
    errors = [{"field": exc.field, "message": exc.detail}] if exc.field else None
    return Response(error_body(exc.status, exc.code, exc.detail, errors), status_code=exc.status, headers=exc.headers)


def validation_error_response(_: Request, exc: ValidationException) -> Response:
    extra = exc.extra if isinstance(exc.extra, list) else []
    errors = [_named(item) for item in extra if isinstance(item, dict)]
    return Response(error_body(400, "invalid_request", exc.detail, errors), status_code=400)


def _named(item: dict) -> dict:
    """Bodies are decoded (and their fields named) by StrictRequest; what reaches Litestar's own
    validation as "data" is a body that was never sent."""
    if item.get("key") == "data":
        return {"field": "body", "message": "a JSON body is required", "source": "body"}
    return {"field": item.get("key") or "request", "message": item.get("message", ""), "source": item.get("source")}


_HTTP_CODES = {
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "too_many_requests",
    503: "unavailable",
}


def http_error_response(request: Request, exc: HTTPException) -> Response:
    status = exc.status_code
    if status >= 500:
        log.error("%s on %s %s: %s", status, request.method, request.url.path, exc.detail, exc_info=exc)
    code = _HTTP_CODES.get(status, "invalid_request" if status < 500 else "internal_error")
    return Response(error_body(status, code, exc.detail), status_code=status, headers=exc.headers)


def unexpected_error_response(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    status = HTTP_500_INTERNAL_SERVER_ERROR
    return Response(error_body(status, "internal_error", "the server failed; it has been logged"), status_code=status)


EXCEPTION_HANDLERS = {
    DomainError: domain_error_response,
    ValidationException: validation_error_response,
    HTTPException: http_error_response,
    Exception: unexpected_error_response,
}


# Health, readiness and metrics answer whoever asks, however busy the role is.
OPEN = {**PUBLIC, EXEMPT: True}


@get("/healthz", sync_to_thread=False, include_in_schema=False, opt=OPEN)
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@post(
    CREDENTIAL_CHECK_PATH,
    status_code=204,
    guards=[service_only],
    sync_to_thread=False,
    include_in_schema=False,
    opt=OPEN,
)
def credential_check() -> None:
    """204 to a caller holding this role's service credential, 403 to any other: a peer's
    readiness learns of a SERVICE_TOKEN that differs without sending a request it must refuse."""


@get("/readyz", include_in_schema=False, opt=OPEN)
async def readyz(state: State) -> Response[dict]:
    runtime: Runtime = state.runtime
    gaps = await anyio.to_thread.run_sync(lambda: [database.schema_gap() for database in runtime.databases.values()])
    checked = [await check() for check in runtime.readiness_checks]
    problems = [problem for problem in (*gaps, *checked) if problem]
    if problems:
        return Response({"status": "unavailable", "reasons": problems}, status_code=503)
    return Response({"status": "ready"})


def create_http_app(
    *,
    name: str,
    runtime: Runtime,
    route_handlers: Sequence[Any] = (),
    workers: Sequence[Worker] = (),
    issues_tokens: bool = False,
    public_handlers: Sequence[Any] = (),
) -> Any:
    """The ASGI app of a role: its domains' routes on the runtime's databases and ports, health,
    readiness and metrics, and its workers running for as long as the app does. Public handlers
    (the web UI's files) need no token, so a role serving only them needs no key to check one."""
    settings = runtime.settings
    _size_worker_threads(settings.max_in_flight)
    openapi = _openapi(name)
    admission = Admission(
        limit=settings.max_in_flight, queue=settings.max_queued, max_wait=settings.queue_timeout_seconds
    )
    middleware: list[Any] = []
    issuer = None
    if route_handlers:
        verifier, issuer = _token_keys(settings, issues_tokens=issues_tokens)
        # The OpenAPI documents are public; a handler opts out itself with opt=PUBLIC.
        exclude = [f"^{openapi.path}"]
        middleware.append(DefineMiddleware(BearerAuthMiddleware, verifier=verifier, exclude=exclude))
    middleware.append(AdmissionMiddleware(admission))

    record_build(name)

    @asynccontextmanager
    async def run_workers(_: Litestar) -> AsyncIterator[None]:
        for database in runtime.databases.values():
            CONNECTION_POOLS.watch(database)
        tasks = [asyncio.create_task(worker(runtime), name=getattr(worker, "__name__", "worker")) for worker in workers]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for database in runtime.databases.values():
                CONNECTION_POOLS.forget(database)
            await close_runtime(runtime)

    app = Litestar(
        route_handlers=[healthz, readyz, metrics, credential_check, *route_handlers, *public_handlers],
        state=State({"runtime": runtime, "token_issuer": issuer, "settings": settings}),
        lifespan=[run_workers],
        middleware=middleware,
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        openapi_config=openapi,
        request_class=StrictRequest,
        request_max_body_size=64 * 1024,
        # The process's logging is platform/logging.py's; Litestar's own would add a second format.
        logging_config=None,
        debug=False,
    )
    document_refusals(app)
    complete_document(app)
    return with_request_ids(instrument(app))


_REQUEST_ID = b"x-request-id"


def with_request_ids(app: Any) -> Any:
    """Each request runs with its request id in the log context and answers with it in
    X-Request-ID: the caller's own (see request_id_from), or a fresh one."""

    async def request_ids(scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        given = next((value for name, value in scope["headers"] if name == _REQUEST_ID), None)
        request_id = request_id_from(given)
        echoed = (_REQUEST_ID, request_id.encode())

        async def send_with_request_id(message: dict) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), echoed]
            await send(message)

        token = start_request(request_id)
        try:
            await app(scope, receive, send_with_request_id)
        finally:
            end_request(token)

    return request_ids


def _size_worker_threads(count: int) -> None:
    """Sync handlers run in Litestar's executor, by default the loop's: min(32, CPUs + 4) threads,
    six on two cores. A request holds its thread while it waits on another service, so the pool
    is as large as the number of requests the role admits at once."""
    executor = get_asyncio_executor()
    if executor is None or executor._max_workers < count:
        set_asyncio_executor(ThreadPoolExecutor(max_workers=count, thread_name_prefix="request"))


async def close_runtime(runtime: Runtime) -> None:
    for port in vars(runtime.ports).values():
        if hasattr(port, "aclose"):
            await port.aclose()
    runtime.close()


def _openapi(name: str) -> OpenAPIConfig:
    return OpenAPIConfig(
        title=f"microbank {name}",
        version="1.0.0",
        path="/api/schema" if name == "all" else f"/api/{name}/schema",
        render_plugins=[SwaggerRenderPlugin()],
        components=Components(
            security_schemes={"bearer": SecurityScheme(type="http", scheme="bearer", bearer_format="JWT")}
        ),
        security=[{"bearer": []}],
    )


def _token_keys(settings: Settings, *, issues_tokens: bool) -> tuple[TokenVerifier, TokenIssuer | None]:
    issuer = None
    public_pem = settings.jwt_public_key
    if issues_tokens:
        if not settings.jwt_private_key:
            raise ConfigError("this role issues tokens: set JWT_PRIVATE_KEY or JWT_PRIVATE_KEY_FILE")
        issuer = TokenIssuer(settings.jwt_private_key, ttl_seconds=settings.token_ttl_seconds)
        public_pem = public_pem or public_pem_of(settings.jwt_private_key)
    if not public_pem:
        raise ConfigError("set JWT_PUBLIC_KEY or JWT_PUBLIC_KEY_FILE to verify bearer tokens")
    return TokenVerifier(public_pem), issuer


__all__ = ["create_http_app", "error_body"]
