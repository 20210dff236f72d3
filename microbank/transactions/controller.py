"""HTTP for transactions: /api/transactions."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from litestar import Controller, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, HeaderParameter, JSONBody, Parameter
from sqlalchemy import Row

from microbank.contracts.postings import Ledger, TransactionType
from microbank.platform.auth import AuthedRequest
from microbank.platform.db import Database
from microbank.platform.domain import database_dependency, port_dependency
from microbank.platform.errors import Invalid
from microbank.platform.money import format_minor
from microbank.platform.pagination import DEFAULT_LIMIT, PAGE_HEADERS, Cursor, EntityId, EntityIdFilter, Limit, page
from microbank.transactions import service
from microbank.transactions.schemas import TransactionOut, TransactionRequest

IdempotencyKey = Annotated[
    str | None,
    HeaderParameter(
        name="Idempotency-Key",
        required=True,
        description="at most 255 printable characters; a repeat with the same key moves money once",
    ),
]

TransactionStatus = Literal["pending", "completed", "rejected"]
# Taken as text and read strictly: Litestar's lenient conversion would read a number as a Unix time.
Instant = Annotated[str, Parameter(description="an RFC 3339 time, e.g. 2026-12-01T00:00:00Z")]


def _instant(value: str | None, field: str) -> datetime | None:
    if value is None:
        return None
    try:
        return msgspec.convert(value, datetime, strict=True)
    except msgspec.ValidationError:
        raise Invalid(f"{field} must be an RFC 3339 time like 2026-12-01T00:00:00Z", field=field) from None


def transaction_out(transaction: Row) -> TransactionOut:
    balance_after = transaction.balance_after_minor
    return TransactionOut(
        id=transaction.id,
        type=transaction.type,
        account_id=transaction.account_id,
        to_account_id=transaction.to_account_id,
        amount=format_minor(transaction.amount_minor),
        currency=transaction.currency,
        status=transaction.status,
        reason=transaction.reason,
        description=transaction.description,
        balance_after=format_minor(balance_after) if balance_after is not None else None,
        timestamp=transaction.created_at,
        completed_at=transaction.completed_at,
    )


class TransactionController(Controller):
    path = "/api/transactions"
    tags = ["transactions"]
    dependencies = {"db": database_dependency("transactions"), "ledger": port_dependency("ledger")}

    @post("/", sync_to_thread=True, summary="Deposit, withdraw or transfer, exactly once per Idempotency-Key")
    def move_money(
        self,
        request: AuthedRequest,
        data: JSONBody[TransactionRequest],
        db: NamedDependency[Database],
        ledger: NamedDependency[Ledger],
        idempotency_key: IdempotencyKey = None,
    ) -> TransactionOut:
        key = service.validate_idempotency_key(idempotency_key)
        movement = service.validate_movement(data)
        transaction = service.move_money(db=db, ledger=ledger, caller=request.user, key=key, movement=movement)
        return transaction_out(transaction)

    @get(
        "/",
        sync_to_thread=True,
        response_headers=PAGE_HEADERS,
        summary="The caller's transactions, newest first",
    )
    def list_transactions(
        self,
        request: AuthedRequest,
        db: NamedDependency[Database],
        limit: FromQuery[Limit] = DEFAULT_LIMIT,
        cursor: FromQuery[Cursor] = None,
        account_id: FromQuery[EntityIdFilter] = None,
        type: FromQuery[TransactionType | None] = None,
        status: FromQuery[TransactionStatus | None] = None,
        since: FromQuery[Instant | None] = None,
        until: FromQuery[Instant | None] = None,
    ) -> Response[list[TransactionOut]]:
        rows = service.list_transactions(
            db=db,
            caller=request.user,
            before=cursor,
            limit=limit,
            account_id=account_id,
            type=type,
            status=status,
            since=_instant(since, "since"),
            until=_instant(until, "until"),
        )
        return page(request, [transaction_out(t) for t in rows], limit=limit)

    @get("/{transaction_id:int}", sync_to_thread=True, summary="One of the caller's transactions")
    def get_transaction(
        self, request: AuthedRequest, transaction_id: FromPath[EntityId], db: NamedDependency[Database]
    ) -> TransactionOut:
        return transaction_out(service.get_transaction(db=db, caller=request.user, transaction_id=transaction_id))
