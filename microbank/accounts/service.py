"""Accounts' use cases: open, list, look up, and apply a transaction's postings exactly once.
A caller only ever sees their own accounts."""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import msgspec
from sqlalchemy import Connection, Row, bindparam, insert, select, update

from microbank.accounts.events import account_opened
from microbank.accounts.models import accounts, applied_transactions, outbox, postings
from microbank.contracts.deposits import Deposits, OpeningDeposit, OpeningDepositRequest
from microbank.contracts.postings import PostingsOutcome, PostingsRequest, Rejection
from microbank.platform.auth import Caller
from microbank.platform.db import Database, utcnow
from microbank.platform.errors import Conflict
from microbank.platform.faults import crash_point
from microbank.platform.logging import bind
from microbank.platform.money import AmountIn, to_minor
from microbank.platform.outbox import add_event
from microbank.platform.ownership import owned_row
from microbank.platform.pagination import keyset


def open_account(
    *,
    db: Database,
    deposits: Deposits,
    caller: Caller,
    caller_token: str,
    account_type: str,
    currency: str,
    initial_deposit: AmountIn | None,
) -> tuple[Row, OpeningDeposit | None]:
    """Open an account for the caller, funded, if asked, by a deposit transaction made on their
    behalf. Should the deposit fail, the account stays open and empty, and the result says why."""
    amount_minor = to_minor(initial_deposit, field="initial_deposit") if initial_deposit is not None else None
    account = create_account(db=db, owner_id=caller.user_id, account_type=account_type, currency=currency)
    if amount_minor is None:
        return account, None
    opening = deposits.open_with_deposit(
        OpeningDepositRequest(
            user_id=caller.user_id, account_id=account.id, amount_minor=amount_minor, caller_token=caller_token
        )
    )
    return get_account(db=db, caller=caller, account_id=account.id), opening


def create_account(*, db: Database, owner_id: int, account_type: str, currency: str) -> Row:
    with db.begin() as connection:
        account = connection.execute(
            insert(accounts)
            .values(
                user_id=owner_id, account_type=account_type, currency=currency, balance_minor=0, created_at=utcnow()
            )
            .returning(*accounts.c)
        ).one()
        add_event(connection, outbox, account_opened(account))
    return account


def list_accounts(*, db: Database, caller: Caller, after: int | None, limit: int) -> list[Row]:
    """The caller's accounts by id (an admin's: everyone's), plus one row to tell if there are more."""
    query = select(accounts)
    if not caller.is_admin:
        query = query.where(accounts.c.user_id == caller.user_id)
    query = keyset(query, accounts.c.id, cursor=after, limit=limit)
    with db.begin() as connection:
        return list(connection.execute(query))


def get_account(*, db: Database, caller: Caller, account_id: int) -> Row:
    """The account if the caller may see it; another user's account is as absent as a missing one."""
    with db.begin() as connection:
        return owned_row(connection, accounts, account_id, caller, what="account")


def list_postings(*, db: Database, caller: Caller, account_id: int, before: int | None, limit: int) -> list[Row]:
    """An account's statement, newest first; the account must be one the caller may see."""
    query = select(postings).where(postings.c.account_id == account_id)
    query = keyset(query, postings.c.id, cursor=before, limit=limit, newest_first=True)
    with db.begin() as connection:
        owned_row(connection, accounts, account_id, caller, what="account")
        return list(connection.execute(query))


def apply_postings(*, db: Database, request: PostingsRequest) -> PostingsOutcome:
    """Apply a transaction's postings in one local transaction, exactly once per transaction id.

    A repeat, or a concurrent duplicate that loses the race, gets the first outcome back.
    """
    bind(transaction_id=request.transaction_id, user_id=request.user_id)
    try:
        outcome = db.run(partial(_apply_once, request=request))
    except Conflict:
        stored = db.run(partial(_stored_outcome, transaction_id=request.transaction_id))
        if stored is None:
            raise
        return stored
    crash_point("accounts.after_postings_commit")
    return outcome


_STORED_OUTCOME = select(applied_transactions.c.outcome).where(
    applied_transactions.c.transaction_id == bindparam("transaction_id")
)
_RECORD_OUTCOME = insert(applied_transactions)
_decode_outcome = msgspec.json.Decoder(PostingsOutcome).decode
_encode = msgspec.json.Encoder().encode


def _apply_once(connection: Connection, *, request: PostingsRequest) -> PostingsOutcome:
    """The postings applied now, and their outcome. A transaction id applied before makes the
    outcome's row (or a posting) conflict, and the whole local transaction rolls back: repeats
    are rare, so the first application pays no lookup for them."""
    outcome = _MOVES[request.type](connection, request)
    connection.execute(
        _RECORD_OUTCOME,
        {"transaction_id": request.transaction_id, "outcome": _encode(outcome).decode(), "created_at": utcnow()},
    )
    return outcome


def _stored_outcome(connection: Connection, *, transaction_id: int) -> PostingsOutcome | None:
    stored = connection.execute(_STORED_OUTCOME, {"transaction_id": transaction_id}).scalar_one_or_none()
    return _decode_outcome(stored) if stored is not None else None


def _deposit(connection: Connection, request: PostingsRequest) -> PostingsOutcome:
    credited = _post(connection, request, request.account_id, request.amount_minor, owner=request.user_id)
    if credited is None:
        return _rejected(request, "account_not_found")
    return _completed(request, credited)


def _withdraw(connection: Connection, request: PostingsRequest) -> PostingsOutcome:
    debited = _post(connection, request, request.account_id, -request.amount_minor, owner=request.user_id)
    if debited is None:
        currency = connection.execute(
            select(accounts.c.currency).where(
                accounts.c.id == request.account_id, accounts.c.user_id == request.user_id
            )
        ).scalar_one_or_none()
        reason = "account_not_found" if currency is None else "insufficient_funds"
        return _rejected(request, reason, currency)
    return _completed(request, debited)


_LOCK_PAIR = (
    select(accounts.c.id, accounts.c.user_id, accounts.c.currency, accounts.c.balance_minor)
    .where(accounts.c.id.in_(bindparam("ids", expanding=True)))
    .order_by(accounts.c.id)
    .with_for_update()
)


def _transfer(connection: Connection, request: PostingsRequest) -> PostingsOutcome:
    assert request.to_account_id is not None
    # Both rows locked in id order, so opposite transfers between two accounts cannot deadlock.
    locked = {
        row.id: row for row in connection.execute(_LOCK_PAIR, {"ids": [request.account_id, request.to_account_id]})
    }
    source, target = locked.get(request.account_id), locked.get(request.to_account_id)
    # The caller's own side first: whether a recipient exists is told only to who could pay it.
    if source is None or source.user_id != request.user_id:
        return _rejected(request, "account_not_found")
    if source.balance_minor < request.amount_minor:
        return _rejected(request, "insufficient_funds", source.currency)
    if target is None:
        return _rejected(request, "recipient_not_found", source.currency)
    if target.currency != source.currency:
        return _rejected(request, "currency_mismatch", source.currency)
    debited = _post(connection, request, source.id, -request.amount_minor, owner=request.user_id)
    credited = _post(connection, request, target.id, request.amount_minor, owner=None)
    assert debited is not None and credited is not None, "both rows are locked, and the balance suffices"
    return _completed(request, debited, credited)


_MOVES = {"deposit": _deposit, "withdrawal": _withdraw, "transfer": _transfer}


class _Changed(NamedTuple):
    balance_after_minor: int
    currency: str
    user_id: int


_CHANGED = (accounts.c.balance_minor, accounts.c.currency, accounts.c.user_id)
_CREDIT = (
    update(accounts)
    .where(accounts.c.id == bindparam("account_id"))
    .values(balance_minor=accounts.c.balance_minor + bindparam("delta"))
    .returning(*_CHANGED)
)
_CREDIT_OWN = _CREDIT.where(accounts.c.user_id == bindparam("owner"))
# The check and the change are one conditional UPDATE, never a read-then-write.
_DEBIT_OWN = _CREDIT_OWN.where(accounts.c.balance_minor >= -bindparam("delta"))
_APPEND_POSTING = insert(postings)


def _post(
    connection: Connection, request: PostingsRequest, account_id: int, delta: int, *, owner: int | None
) -> _Changed | None:
    """Add `delta` to the balance and append its posting, unless the owner differs or it would go
    below zero."""
    statement = _CREDIT if owner is None else _DEBIT_OWN if delta < 0 else _CREDIT_OWN
    params = (
        {"account_id": account_id, "delta": delta}
        if owner is None
        else {"account_id": account_id, "delta": delta, "owner": owner}
    )
    row = connection.execute(statement, params).one_or_none()
    if row is None:
        return None
    connection.execute(
        _APPEND_POSTING,
        {
            "account_id": account_id,
            "transaction_id": request.transaction_id,
            "amount_minor": delta,
            "balance_after_minor": row.balance_minor,
            "created_at": utcnow(),
        },
    )
    return _Changed(row.balance_minor, row.currency, row.user_id)


def _completed(request: PostingsRequest, source: _Changed, target: _Changed | None = None) -> PostingsOutcome:
    return PostingsOutcome(
        transaction_id=request.transaction_id,
        status="completed",
        currency=source.currency,
        balance_after_minor=source.balance_after_minor,
        to_balance_after_minor=target.balance_after_minor if target else None,
        to_account_owner_id=target.user_id if target else None,
    )


def _rejected(request: PostingsRequest, reason: Rejection, currency: str | None = None) -> PostingsOutcome:
    return PostingsOutcome(transaction_id=request.transaction_id, status="rejected", reason=reason, currency=currency)
