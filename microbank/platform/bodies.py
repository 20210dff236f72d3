"""Request bodies as the bank takes them: JSON only, shallow, no repeated keys, and decoded into
the handler's msgspec Struct strictly (no "1" for 1, no 1.0 for 1)."""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any

import msgspec
from litestar import Request
from litestar.handlers import BaseRouteHandler
from litestar.types import Empty

from microbank.platform.errors import Invalid, UnsupportedMediaType

# Far deeper than any body the bank takes (they are flat), far shallower than the recursion
# limit a deeply nested document would otherwise hit while it is decoded.
MAX_DEPTH = 32

_decoder = msgspec.json.Decoder()
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_PATH = re.compile(r"at `\$\.?([^`]*)`")
_NAMED_FIELD = re.compile(r"field `([^`]+)`")


class StrictRequest(Request):
    """Litestar's request, with `json()` refusing what a careful bank refuses; the body it returns
    is already the handler's Struct, which Litestar's own (lenient) conversion passes through."""

    async def json(self) -> Any:
        if self._json is Empty:
            media_type, _ = self.content_type
            self._json = decode_body(await self.body(), media_type, _body_type(self.route_handler))
        return self._json


def is_json(media_type: str) -> bool:
    return media_type == "application/json" or (media_type.startswith("application/") and media_type.endswith("+json"))


def decode_body(body: bytes, media_type: str, target: Any) -> Any:
    """The body as `target`, or a 4xx naming what is wrong with it."""
    if not is_json(media_type):
        sent = media_type or "none"
        raise UnsupportedMediaType(f"the body must be application/json (Content-Type: {sent})", field="Content-Type")
    if nested_too_deep(body):
        raise Invalid(f"the JSON body is nested deeper than {MAX_DEPTH} levels", field="body")
    try:
        document = _decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise Invalid(f"the body is not valid JSON: {exc}", field="body") from None
    if (repeated := repeated_key(body, document)) is not None:
        raise Invalid(f"the key {repeated!r} appears more than once", field=repeated)
    if target is Any:
        return document
    try:
        return msgspec.convert(document, target, strict=True)
    except msgspec.ValidationError as exc:
        raise _naming_the_field(str(exc)) from None


def nested_too_deep(body: bytes) -> bool:
    """Whether arrays and objects nest deeper than MAX_DEPTH; a body with few brackets cannot, so
    most are answered by two counts in C."""
    if body.count(b"{") + body.count(b"[") <= MAX_DEPTH:
        return False
    depth = 0
    for bracket in _STRING.sub(b"", body).translate(None, _NOT_BRACKETS):
        depth += 1 if bracket in b"[{" else -1
        if depth > MAX_DEPTH:
            return True
    return False


def repeated_key(body: bytes, document: Any) -> str | None:
    """A key that appears twice in one object, which a JSON decoder silently collapses to the last.

    Each key in the text comes with one colon, so as many colons as decoded keys rules repeats out
    at the cost of a count; only otherwise (a colon inside a string, or a repeat) is it re-read."""
    if body.count(b":") == _key_count(document):
        return None
    repeats: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [key for key, _ in items]
        repeats.extend(key for key in keys if keys.count(key) > 1)
        return dict(items)

    json.loads(body, object_pairs_hook=pairs)
    return repeats[0] if repeats else None


def _key_count(value: Any) -> int:
    if isinstance(value, dict):
        return len(value) + sum(_key_count(item) for item in value.values() if isinstance(item, dict | list))
    if isinstance(value, list):
        return sum(_key_count(item) for item in value if isinstance(item, dict | list))
    return 0


def _naming_the_field(message: str) -> Invalid:
    """msgspec says where ("at `$.account_id`") or which key ("missing required field `amount`")."""
    where = _PATH.search(message)
    named = _NAMED_FIELD.search(message)
    field = (named.group(1) if named else "") or (where.group(1) if where else "") or "body"
    return Invalid(message, field=field)


@cache
def _body_type(handler: BaseRouteHandler) -> Any:
    data = handler.parsed_data_field
    return data.annotation if data is not None else Any
