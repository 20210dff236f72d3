"""What a caller may see: their own rows; anyone else's are as absent as missing ones."""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy.orm import Session

from microbank.platform.auth import Caller
from microbank.platform.errors import NotFound

T = TypeVar("T")


def get_owned(session: Session, model: type[T], entity_id: int, caller: Caller, *, admin_sees_all: bool = True) -> T:
    """The row with this id if its user_id is the caller's (or the caller is an admin and
    `admin_sees_all`), else NotFound: the answer never reveals that someone else's row exists."""
    row: Any = session.get(model, entity_id)
    if row is None or not (row.user_id == caller.user_id or (admin_sees_all and caller.is_admin)):
        what = model.__name__.lower()
        raise NotFound(f"{what} {entity_id} not found", code=f"{what}_not_found")
    return row
