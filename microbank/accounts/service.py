"""Accounts' use cases: open, list, look up; a caller only ever sees their own."""

from __future__ import annotations

from typing import NamedTuple

import anyio.to_thread
import msgspec
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from microbank.accounts.events import account_opened
from microbank.accounts.models import Account, AppliedTransaction, Posting, outbox
from microbank.platform.auth import Caller
from microbank.platform.db import Database
from microbank.platform.errors import Conflict
from microbank.platform.faults import crash_point
from microbank.platform.ledger import Deposits, OpeningDeposit, PostingsOutcome, PostingsRequest
from microbank.platform.money import AmountIn, to_minor
from microbank.platform.outbox import add_event
from microbank.platform.ownership import get_owned
from microbank.platform.pagination import keyset


async def open_account(
    *,
    db: Database,
    deposits: Deposits,
    caller: Caller,
    caller_token: str,
    account_type: str,
    currency: str,
    initial_deposit: AmountIn | None,
) -> tuple[Account, OpeningDeposit | None]:
    """Open an account for the caller, funded, if asked, by a deposit transaction made on their
    behalf. Should the deposit fail, the account stays open and empty, and the result says why."""
    amount_minor = to_minor(initial_deposit, field="initial_deposit") if initial_deposit is not None else None
    account = await anyio.to_thread.run_sync(
        lambda: create_account(db=db, owner_id=caller.user_id, account_type=account_type, currency=currency)
    )
    if amount_minor is None:
        return account, None
    opening = await deposits.deposit(
        caller_token=caller_token,
        user_id=caller.user_id,
        account_id=account.id,
        amount_minor=amount_minor,
        key=f"account-{account.id}-opening",
    )
    funded = await anyio.to_thread.run_sync(lambda: get_account(db=db, caller=caller, account_id=account.id))
    return funded, opening


def create_account(*, db: Database, owner_id: int, account_type: str, currency: str) -> Account:
    with db.transaction() as session:
        account = Account(user_id=owner_id, account_type=account_type, currency=currency, balance_minor=0)
        session.add(account)
        session.flush()
        add_event(session, outbox, account_opened(account))
        return account


def list_accounts(*, db: Database, caller: Caller, after: int | None, limit: int) -> list[Account]:
    """The caller's accounts by id (an admin's: everyone's), plus one row to tell if there are more."""
    query = select(Account)
    if not caller.is_admin:
        query = query.where(Account.user_id == caller.user_id)
    query = keyset(query, Account.id, cursor=after, limit=limit)
    with db.transaction() as session:
        return list(session.scalars(query))


def get_account(*, db: Database, caller: Caller, account_id: int) -> Account:
    """The account if the caller may see it; another user's account is as absent as a missing one."""
    with db.transaction() as session:
        return get_owned(session, Account, account_id, caller)


def apply_postings(*, db: Database, request: PostingsRequest) -> PostingsOutcome:
    """Apply a transaction's postings in one local transaction, exactly once per transaction id.

    A repeat, or a concurrent duplicate that loses the race, gets the first outcome back.
    """
    try:
        with db.transaction() as session:
            if (stored := _stored_outcome(session, request.transaction_id)) is not None:
                return stored
            outcome = _apply(session, request)
            session.add(AppliedTransaction(transaction_id=request.transaction_id, outcome=_encode(outcome)))
    except Conflict:
        with db.transaction() as session:
            if (stored := _stored_outcome(session, request.transaction_id)) is None:
                raise
            return stored
    crash_point("accounts.after_postings_commit")
    return outcome


def _apply(session: Session, request: PostingsRequest) -> PostingsOutcome:
    if request.type == "deposit":
        return _deposit(session, request)
    if request.type == "withdrawal":
        return _withdraw(session, request)
    return _transfer(session, request)


def _deposit(session: Session, request: PostingsRequest) -> PostingsOutcome:
    credited = _post(session, request, request.account_id, request.amount_minor, owner=request.user_id)
    if credited is None:
        return _rejected(request, "account_not_found")
    return _completed(request, credited)


def _withdraw(session: Session, request: PostingsRequest) -> PostingsOutcome:
    debited = _post(session, request, request.account_id, -request.amount_minor, owner=request.user_id)
    if debited is None:
        currency = session.scalar(
            select(Account.currency).where(Account.id == request.account_id, Account.user_id == request.user_id)
        )
        reason = "account_not_found" if currency is None else "insufficient_funds"
        return _rejected(request, reason, currency)
    return _completed(request, debited)


def _transfer(session: Session, request: PostingsRequest) -> PostingsOutcome:
    assert request.to_account_id is not None
    # Lock both rows in id order, so opposite transfers between two accounts cannot deadlock.
    accounts = {
        a.id: a
        for a in session.scalars(
            select(Account)
            .where(Account.id.in_([request.account_id, request.to_account_id]))
            .order_by(Account.id)
            .with_for_update()
        )
    }
    source, target = accounts.get(request.account_id), accounts.get(request.to_account_id)
    if source is None or source.user_id != request.user_id:
        return _rejected(request, "account_not_found")
    if target is None:
        return _rejected(request, "recipient_not_found")
    if target.currency != source.currency:
        return _rejected(request, "currency_mismatch", source.currency)
    debited = _post(session, request, source.id, -request.amount_minor, owner=request.user_id)
    if debited is None:
        return _rejected(request, "insufficient_funds", source.currency)
    credited = _post(session, request, target.id, request.amount_minor, owner=None)
    assert credited is not None, "the target row is locked and exists"
    return _completed(request, debited, credited)


class _Changed(NamedTuple):
    balance_after_minor: int
    currency: str
    user_id: int


def _post(
    session: Session, request: PostingsRequest, account_id: int, delta: int, *, owner: int | None
) -> _Changed | None:
    """Add `delta` to the balance and append its posting, unless the owner differs or it would go
    below zero: the check and the change are one conditional UPDATE, never a read-then-write."""
    conditions = [Account.id == account_id]
    if owner is not None:
        conditions.append(Account.user_id == owner)
    if delta < 0:
        conditions.append(Account.balance_minor >= -delta)
    row = session.execute(
        update(Account)
        .where(*conditions)
        .values(balance_minor=Account.balance_minor + delta)
        .returning(Account.balance_minor, Account.currency, Account.user_id)
    ).one_or_none()
    if row is None:
        return None
    session.add(
        Posting(
            account_id=account_id,
            transaction_id=request.transaction_id,
            amount_minor=delta,
            balance_after_minor=row.balance_minor,
        )
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


def _rejected(request: PostingsRequest, reason: str, currency: str | None = None) -> PostingsOutcome:
    return PostingsOutcome(transaction_id=request.transaction_id, status="rejected", reason=reason, currency=currency)


def _stored_outcome(session: Session, transaction_id: int) -> PostingsOutcome | None:
    stored = session.get(AppliedTransaction, transaction_id)
    return msgspec.json.decode(stored.outcome, type=PostingsOutcome) if stored else None


def _encode(outcome: PostingsOutcome) -> str:
    return msgspec.json.encode(outcome).decode()


def list_postings(*, db: Database, caller: Caller, account_id: int, before: int | None, limit: int) -> list[Posting]:
    """An account's statement, newest first; the account must be one the caller may see."""
    query = select(Posting).where(Posting.account_id == account_id)
    query = keyset(query, Posting.id, cursor=before, limit=limit, newest_first=True)
    with db.transaction() as session:
        get_owned(session, Account, account_id, caller)
        return list(session.scalars(query))


class LocalLedger:
    """The ledger in process, for ROLE=all: the same code as POST /internal/postings, no HTTP hop."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def apply(self, request: PostingsRequest) -> PostingsOutcome:
        return await anyio.to_thread.run_sync(lambda: apply_postings(db=self.db, request=request))
