"""What a caller may see: their own rows; anyone else's are as absent as missing ones."""

from __future__ import annotations

from sqlalchemy import Connection, Row, Table, select

from microbank.platform.auth import Caller
from microbank.platform.errors import NotFound


def owned_row(
    connection: Connection, table: Table, entity_id: int, caller: Caller, *, what: str, admin_sees_all: bool = True
) -> Row:
    """The row of `table` with this id if its user_id is the caller's (or the caller is an admin
    and `admin_sees_all`), else NotFound: the answer never reveals that someone else's row exists."""
    row = connection.execute(select(table).where(table.c.id == entity_id)).one_or_none()
    if row is None or not (row.user_id == caller.user_id or (admin_sees_all and caller.is_admin)):
        raise NotFound(f"{what} {entity_id} not found", code=f"{what}_not_found")
    return row
