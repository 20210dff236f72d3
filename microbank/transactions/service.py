"""Transactions' use cases: move money exactly once, recover what a crash left pending, list history.

The protocol with accounts: (1) record the transaction as pending under the caller's
idempotency key; (2) ask accounts to apply its postings, which it does exactly once per
transaction id; (3) record the outcome and its event in one local transaction. A crash
between any two steps leaves a pending row that recovery drives through (2) and (3) again.
No database connection is held while waiting for accounts.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import anyio.to_thread
import msgspec
from prometheus_client import Counter
from sqlalchemy import Select, select, update

from microbank.platform.auth import Caller
from microbank.platform.db import Database, upsert_into, utcnow
from microbank.platform.errors import Conflict, Invalid, Unavailable
from microbank.platform.faults import crash_point
from microbank.platform.ledger import (
    LEFT_PENDING,
    Ledger,
    LedgerUnavailable,
    OpeningDeposit,
    PostingsOutcome,
    PostingsRequest,
    opening_status_of,
)
from microbank.platform.money import to_minor
from microbank.platform.outbox import add_event
from microbank.platform.ownership import get_owned
from microbank.platform.pagination import keyset
from microbank.transactions.events import transaction_finished
from microbank.transactions.models import Transaction, outbox
from microbank.transactions.schemas import TransactionRequest

TRANSACTIONS_FINISHED = Counter(
    "transactions_total", "Transactions that reached their outcome", ["type", "status", "reason"]
)
# Whole minor units (cents), so the count stays exact however much moves.
MONEY_MOVED = Counter(
    "money_moved_minor_units_total", "Amounts of completed transactions, in minor units", ["type", "currency"]
)

log = logging.getLogger("microbank.transactions")

# A live request normally finishes its own transaction; recovery waits this long before
# it takes over, and between its own attempts.
RECOVERY_DELAY = timedelta(seconds=5)
MAX_IDEMPOTENCY_KEY = 255


@dataclass(frozen=True)
class MoneyMovement:
    """A validated request to move money, amounts in minor units."""

    type: str
    account_id: int
    amount_minor: int
    to_account_id: int | None
    description: str | None

    def fingerprint(self) -> str:
        """Identifies the request body, so a reused idempotency key can be told from a repeat."""
        return hashlib.sha256(msgspec.json.encode(self.__dict__)).hexdigest()


def validate_movement(request: TransactionRequest) -> MoneyMovement:
    amount_minor = to_minor(request.amount)
    if request.type == "transfer":
        if request.to_account_id is None:
            raise Invalid("a transfer needs to_account_id", field="to_account_id")
        if request.to_account_id == request.account_id:
            raise Invalid("a transfer must go to another account", field="to_account_id")
    elif request.to_account_id is not None:
        raise Invalid(f"a {request.type} has no to_account_id", field="to_account_id")
    description = request.description.strip() if request.description else None
    return MoneyMovement(request.type, request.account_id, amount_minor, request.to_account_id, description or None)


def validate_idempotency_key(key: str | None) -> str:
    key = (key or "").strip()
    if not key:
        raise Invalid("an Idempotency-Key header is required to move money", field="Idempotency-Key")
    if len(key) > MAX_IDEMPOTENCY_KEY or not key.isprintable():
        raise Invalid(
            f"Idempotency-Key must be printable and at most {MAX_IDEMPOTENCY_KEY} characters", field="Idempotency-Key"
        )
    return key


async def move_money(*, db: Database, ledger: Ledger, caller: Caller, key: str, movement: MoneyMovement) -> Transaction:
    """Deposit, withdraw or transfer once per idempotency key; the transaction as it ended."""
    transaction = await anyio.to_thread.run_sync(
        lambda: record_pending(db=db, caller=caller, key=key, movement=movement)
    )
    if transaction.status != "pending":
        return transaction
    try:
        return await drive(db=db, ledger=ledger, transaction=transaction)
    except LedgerUnavailable as exc:
        log.warning("transaction %d left pending: %s", transaction.id, exc)
        raise Unavailable(
            f"accounts is unavailable; transaction {transaction.id} is pending and will be finished "
            "automatically. Repeat the request with the same Idempotency-Key to see its outcome.",
            code=LEFT_PENDING,
        ) from exc


def record_pending(*, db: Database, caller: Caller, key: str, movement: MoneyMovement) -> Transaction:
    """The transaction for this key: a new pending one, or the one a repeat of the request made.
    A concurrent request with the same key makes the insert wait for it, then do nothing."""
    fingerprint = movement.fingerprint()
    new_pending = dict(
        user_id=caller.user_id,
        idempotency_key=key,
        request_hash=fingerprint,
        type=movement.type,
        account_id=movement.account_id,
        to_account_id=movement.to_account_id,
        amount_minor=movement.amount_minor,
        description=movement.description,
        status="pending",
        next_attempt_at=utcnow() + RECOVERY_DELAY,
    )
    with db.transaction() as session:
        inserted = session.scalars(
            upsert_into(session, Transaction)
            .values(**new_pending)
            .on_conflict_do_nothing(index_elements=["user_id", "idempotency_key"])
            .returning(Transaction)
        ).one_or_none()
        return inserted or _repeat_of(session.scalars(_by_key(caller.user_id, key)).one(), fingerprint)


def _by_key(user_id: int, key: str) -> Select:
    return select(Transaction).where(Transaction.user_id == user_id, Transaction.idempotency_key == key)


def _repeat_of(existing: Transaction, fingerprint: str) -> Transaction:
    if existing.request_hash != fingerprint:
        raise Conflict("this Idempotency-Key was already used for a different request", code="idempotency_key_reused")
    return existing


async def drive(*, db: Database, ledger: Ledger, transaction: Transaction) -> Transaction:
    """Steps 2 and 3 of the protocol; safe to repeat, by any process, any number of times."""
    outcome = await ledger.apply(
        PostingsRequest(
            transaction_id=transaction.id,
            type=transaction.type,  # type: ignore[arg-type]
            user_id=transaction.user_id,
            account_id=transaction.account_id,
            to_account_id=transaction.to_account_id,
            amount_minor=transaction.amount_minor,
        )
    )
    crash_point("transactions.after_ledger_call")
    return await anyio.to_thread.run_sync(lambda: record_outcome(db=db, transaction_id=transaction.id, outcome=outcome))


def record_outcome(*, db: Database, transaction_id: int, outcome: PostingsOutcome) -> Transaction:
    """Mark the transaction completed or rejected and write its event, once; a later call is a no-op."""
    with db.transaction() as session:
        finished = session.scalars(
            update(Transaction)
            .where(Transaction.id == transaction_id, Transaction.status == "pending")
            .values(
                status=outcome.status,
                reason=outcome.reason,
                currency=outcome.currency,
                balance_after_minor=outcome.balance_after_minor,
                completed_at=utcnow(),
            )
            .returning(Transaction)
        ).one_or_none()
        if finished is None:
            return session.scalars(select(Transaction).where(Transaction.id == transaction_id)).one()
        add_event(session, outbox, transaction_finished(finished, outcome))
    count_finished(finished)
    return finished


def count_finished(transaction: Transaction) -> None:
    """Count a transaction this process took to its outcome, once it is committed."""
    TRANSACTIONS_FINISHED.labels(transaction.type, transaction.status, transaction.reason or "").inc()
    if transaction.status == "completed":
        MONEY_MOVED.labels(transaction.type, transaction.currency).inc(transaction.amount_minor)


def claim_stalled(*, db: Database, limit: int = 50, as_of: datetime | None = None) -> list[Transaction]:
    """Pending transactions whose time for another attempt has come by `as_of` (default now),
    leased to this process until RECOVERY_DELAY after it, so that other replicas pass them by."""
    as_of = as_of or utcnow()
    due = (
        select(Transaction.id)
        .where(Transaction.status == "pending", Transaction.next_attempt_at <= as_of)
        .order_by(Transaction.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    with db.transaction() as session:
        return list(
            session.scalars(
                update(Transaction)
                .where(Transaction.id.in_(due.scalar_subquery()))
                .values(attempts=Transaction.attempts + 1, next_attempt_at=as_of + RECOVERY_DELAY)
                .returning(Transaction)
            )
        )


async def recover_pending(*, db: Database, ledger: Ledger, as_of: datetime | None = None) -> int:
    """Drive every pending transaction due by `as_of` (default now) to its outcome; how many were
    finished."""
    finished = 0
    while stalled := await anyio.to_thread.run_sync(lambda: claim_stalled(db=db, as_of=as_of)):
        for transaction in stalled:
            try:
                await drive(db=db, ledger=ledger, transaction=transaction)
            except LedgerUnavailable as exc:
                log.warning("recovery paused, accounts unavailable: %s", exc)
                return finished
            finished += 1
    return finished


async def recover_all_pending(*, db: Database, ledger: Ledger) -> int:
    """Finish every pending transaction now, whatever its lease: repeating a step is harmless.
    Due by RECOVERY_DELAY from now covers every lease, and each row claimed in this pass is leased
    beyond that, so the pass ends instead of trying the same row again."""
    return await recover_pending(db=db, ledger=ledger, as_of=utcnow() + RECOVERY_DELAY)


def list_transactions(
    *,
    db: Database,
    caller: Caller,
    before: int | None,
    limit: int,
    account_id: int | None = None,
    type: str | None = None,
    status: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[Transaction]:
    """The caller's transactions, newest first, filtered, plus one row to tell if there are more."""
    query = select(Transaction).where(Transaction.user_id == caller.user_id)
    if account_id is not None:
        query = query.where((Transaction.account_id == account_id) | (Transaction.to_account_id == account_id))
    if type is not None:
        query = query.where(Transaction.type == type)
    if status is not None:
        query = query.where(Transaction.status == status)
    if since is not None:
        query = query.where(Transaction.created_at >= since)
    if until is not None:
        query = query.where(Transaction.created_at < until)
    query = keyset(query, Transaction.id, cursor=before, limit=limit, newest_first=True)
    with db.transaction() as session:
        return list(session.scalars(query))


def get_transaction(*, db: Database, caller: Caller, transaction_id: int) -> Transaction:
    with db.transaction() as session:
        return get_owned(session, Transaction, transaction_id, caller)


class LocalDeposits:
    """Deposits in process, for ROLE=all: what POST /api/transactions does, without the HTTP hop."""

    def __init__(self, db: Database, ledger: Ledger) -> None:
        self.db = db
        self.ledger = ledger

    async def deposit(
        self, *, caller_token: str, user_id: int, account_id: int, amount_minor: int, key: str
    ) -> OpeningDeposit:
        movement = MoneyMovement("deposit", account_id, amount_minor, None, "opening deposit")
        caller = Caller(user_id=user_id, role="customer")
        try:
            transaction = await move_money(db=self.db, ledger=self.ledger, caller=caller, key=key, movement=movement)
        except Unavailable as exc:
            return OpeningDeposit(status=opening_status_of(exc.code), reason=exc.code)
        return OpeningDeposit(status=transaction.status, transaction_id=transaction.id, reason=transaction.reason)
