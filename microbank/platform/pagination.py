"""Cursor pagination: a page is a JSON array; the cursor for the next page travels in headers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Protocol, TypeVar
from urllib.parse import urlencode

from litestar import Request, Response
from litestar.datastructures import ResponseHeader
from litestar.params import Parameter
from sqlalchemy import Select

from microbank.platform.db import MAX_ID


class Identified(Protocol):
    @property
    def id(self) -> int: ...


T = TypeVar("T", bound=Identified)

DEFAULT_LIMIT = 50
MAX_LIMIT = 100

Limit = Annotated[int, Parameter(ge=1, le=MAX_LIMIT, description="items per page")]
Cursor = Annotated[
    int | None,
    Parameter(ge=1, le=MAX_ID, description="the X-Next-Cursor of the previous page"),
]
# Every id in a path or a query fits BIGINT, so the database never sees an out-of-range value.
EntityId = Annotated[int, Parameter(ge=1, le=MAX_ID)]
# Optional, as a filter: `EntityId | None` would lose the bounds.
EntityIdFilter = Annotated[int | None, Parameter(ge=1, le=MAX_ID)]

PAGE_HEADERS = [
    ResponseHeader(
        name="X-Next-Cursor",
        required=False,
        documentation_only=True,
        description="pass as `cursor` for the next page; absent on the last page",
    ),
    ResponseHeader(
        name="Link",
        required=False,
        documentation_only=True,
        description='`<url>; rel="next"` for the next page',
    ),
]


def page(request: Request, items: Sequence[T], *, limit: int) -> Response[Sequence[T]]:
    """Respond with `items` (fetched as limit + 1 rows) and, if there are more, the id of the last
    one shown as the next cursor."""
    if len(items) <= limit:
        return Response(items)
    shown = items[:limit]
    cursor = str(shown[-1].id)
    next_url = request.url.with_replacements(query=_with_cursor(request, cursor))
    return Response(shown, headers={"X-Next-Cursor": cursor, "Link": f'<{next_url}>; rel="next"'})


def _with_cursor(request: Request, cursor: str) -> str:
    params = [(k, v) for k, v in request.query_params.multi_items() if k != "cursor"]
    return urlencode([*params, ("cursor", cursor)])


def keyset(query: Select, column: Any, *, cursor: int | None, limit: int, newest_first: bool = False) -> Select:
    """Page `query` by a unique increasing column: the rows after the cursor, one extra to tell
    whether there is a next page."""
    if cursor is not None:
        query = query.where(column < cursor if newest_first else column > cursor)
    return query.order_by(column.desc() if newest_first else column).limit(limit + 1)
