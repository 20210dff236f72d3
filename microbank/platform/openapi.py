"""The OpenAPI document as the service answers: every refusal a route can give, in the bank's
error shape, and no token asked of the routes that take none."""

from __future__ import annotations

import re
from typing import Any

import msgspec
from litestar import Litestar
from litestar._openapi.plugin import OpenAPIPlugin
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import OpenAPI, OpenAPIType, Operation

from microbank.platform.auth import PUBLIC, admin_only
from microbank.platform.db import MAX_ID


class FieldError(msgspec.Struct):
    field: str
    message: str
    source: str | None = None


class ErrorBody(msgspec.Struct):
    """What every refusal carries: `error` is a stable code, `errors` names the fields at fault."""

    status: int
    error: str
    detail: str
    errors: list[FieldError] | None = None


# Routes say "/{account_id:int}", the document "/{account_id}".
_TYPED_PARAMETER = re.compile(r"\{(\w+):\w+\}")

WHY = {
    400: "invalid_request: a parameter, header or body field is wrong (named in `errors`)",
    401: "unauthenticated: no bearer token, or one that is expired or not valid",
    403: "forbidden: the caller may not do this",
    404: "not_found: no such resource, or not the caller's",
    409: "conflict: the request conflicts with what exists (a taken email, a reused Idempotency-Key)",
    413: "payload_too_large: the body is over 64 KiB",
    415: "unsupported_media_type: the body is not application/json",
    429: "too_many_requests: wait for Retry-After seconds",
    503: "unavailable: overloaded, a database or service cannot answer now, or the database is not migrated",
}


def errors(*statuses: int) -> dict[int, ResponseSpec]:
    """`responses=` for a handler: these refusals, documented in the bank's error shape."""
    return {
        status: ResponseSpec(data_container=ErrorBody, description=WHY[status], generate_examples=False)
        for status in statuses
    }


def document_refusals(app: Litestar) -> None:
    """Give every documented route the refusals it can answer with, before the document is built;
    a handler's own `responses=` add to them."""
    for route in app.routes:
        for handler in getattr(route, "route_handlers", ()):
            handler.responses = {**errors(*_refusals_of(handler)), **(handler.responses or {})}


def complete_document(app: Litestar) -> None:
    """What Litestar leaves out of the document it builds, filled in."""
    document = app.plugins.get(OpenAPIPlugin).provide_openapi()
    _mark_public_routes(app, document)
    _close_request_bodies(document)
    _bound_path_ids(document)


def _close_request_bodies(document: OpenAPI) -> None:
    """Every request Struct forbids unknown fields; Litestar's schemas do not say so."""
    schemas = document.components.schemas or {}
    for operation in _operations(document):
        body = operation.request_body
        content = body.content.get("application/json") if body is not None and body.content else None
        ref = getattr(content.schema, "ref", None) if content is not None else None
        if ref:
            schemas[ref.rsplit("/", 1)[-1]].additional_properties = False


def _bound_path_ids(document: OpenAPI) -> None:
    """Path ids are BIGINT ids, as EntityId checks; Litestar documents only the route's `:int`."""
    for operation in _operations(document):
        for parameter in operation.parameters or []:
            schema = getattr(parameter, "schema", None)
            if getattr(parameter, "param_in", None) == "path" and getattr(schema, "type", None) == OpenAPIType.INTEGER:
                schema.minimum, schema.maximum = 1, MAX_ID


def _operations(document: OpenAPI) -> list[Operation]:
    methods = ("get", "post", "put", "patch", "delete")
    items = (document.paths or {}).values()
    return [op for item in items for method in methods if (op := getattr(item, method, None)) is not None]


def _mark_public_routes(app: Litestar, document: OpenAPI) -> None:
    """Litestar omits an empty `security` list, so a public route would inherit the document's
    bearer requirement: say on each public operation that it needs none."""
    public = {
        (path, method.lower())
        for route in app.routes
        for handler in getattr(route, "route_handlers", ())
        if _is_public(handler)
        for path in [_TYPED_PARAMETER.sub(r"{\1}", route.path)]
        for method in handler.http_methods
    }
    for path, item in (document.paths or {}).items():
        for method in ("get", "post", "put", "patch", "delete"):
            operation = getattr(item, method, None)
            if operation is not None and (path, method) in public:
                operation.security = []


def _refusals_of(handler: HTTPRouteHandler) -> list[int]:
    statuses = [400, 503]
    if not _is_public(handler):
        statuses.append(401)
    if any(admin_only in (layer.guards or []) for layer in handler.ownership_layers):
        statuses.append(403)
    if any("{" in path for path in handler.paths):
        statuses.append(404)
    if handler.parsed_data_field is not None:
        statuses += [409, 413, 415]
    return sorted(statuses)


def _is_public(handler: Any) -> bool:
    opt = handler.opt or {}
    return all(opt.get(key) == value for key, value in PUBLIC.items())
