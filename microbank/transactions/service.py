"""Transactions' use cases: move money exactly once, recover what a crash left pending, list history.

The protocol with accounts: (1) record the transaction as pending under the caller's
idempotency key; (2) ask accounts to apply its postings, which it does exactly once per
transaction id; (3) record the outcome and its event in one local transaction. A crash
between any two steps leaves a pending row that recovery drives through (2) and (3) again.
No database connection is held while waiting for accounts. Each use case runs whole in the
worker thread of its request: the call to accounts included, it costs one thread hand-off.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import msgspec
from prometheus_client import Counter
from sqlalchemy import Connection, Row, bindparam, select, update

from microbank.contracts.deposits import LEFT_PENDING, OpeningDeposit, OpeningDepositRequest, opening_status_of
from microbank.contracts.postings import Ledger, LedgerRefused, LedgerUnavailable, PostingsOutcome, PostingsRequest
from microbank.platform.auth import Caller
from microbank.platform.db import Database, per_dialect, utcnow
from microbank.platform.errors import Conflict, Invalid, Unavailable
from microbank.platform.faults import crash_point
from microbank.platform.logging import bind
from microbank.platform.money import to_minor
from microbank.platform.outbox import add_event
from microbank.platform.ownership import owned_row
from microbank.platform.pagination import keyset
from microbank.transactions.events import transaction_finished
from microbank.transactions.models import outbox, transactions
from microbank.transactions.schemas import TransactionRequest

TRANSACTIONS_FINISHED = Counter(
    "transactions_total", "Transactions that reached their outcome", ["type", "status", "reason"]
)
# Whole minor units (cents), so the count stays exact however much moves.
MONEY_MOVED = Counter(
    "money_moved_minor_units_total", "Amounts of completed transactions, in minor units", ["type", "currency"]
)
RECOVERY_REDRIVES = Counter(
    "recovery_redrives_total", "Pending transactions recovery drove again, by what came of it", ["outcome"]
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


def move_money(*, db: Database, ledger: Ledger, caller: Caller, key: str, movement: MoneyMovement) -> Row:
    """Deposit, withdraw or transfer once per idempotency key; the transaction as it ended."""
    transaction = record_pending(db=db, caller=caller, key=key, movement=movement)
    bind(transaction_id=transaction.id)
    if transaction.status != "pending":
        return transaction
    try:
        return drive(db=db, ledger=ledger, transaction=transaction)
    except LedgerUnavailable as exc:
        log.log(
            logging.ERROR if isinstance(exc, LedgerRefused) else logging.WARNING,
            "transaction %d left pending: %s",
            transaction.id,
            exc,
        )
        raise Unavailable(
            f"accounts is unavailable; transaction {transaction.id} is pending and will be finished "
            "automatically. Repeat the request with the same Idempotency-Key to see its outcome.",
            code=LEFT_PENDING,
            retry_after=1,
        ) from exc


def record_pending(*, db: Database, caller: Caller, key: str, movement: MoneyMovement) -> Row:
    """The transaction for this key: a new pending one, or the one a repeat of the request made.
    A concurrent request with the same key makes the insert wait for it, then do nothing."""
    fingerprint = movement.fingerprint()
    now = utcnow()
    new_pending = {
        "user_id": caller.user_id,
        "idempotency_key": key,
        "request_hash": fingerprint,
        "type": movement.type,
        "account_id": movement.account_id,
        "to_account_id": movement.to_account_id,
        "amount_minor": movement.amount_minor,
        "description": movement.description,
        "status": "pending",
        "created_at": now,
        "attempts": 0,
        "next_attempt_at": now + RECOVERY_DELAY,
    }

    def insert_once(connection: Connection) -> Row:
        inserted = connection.execute(_INSERT_PENDING[connection.dialect.name], new_pending).one_or_none()
        if inserted is not None:
            return inserted
        return _repeat_of(connection.execute(_BY_KEY, {"user_id": caller.user_id, "key": key}).one(), fingerprint)

    return db.run(insert_once)


_INSERT_PENDING = per_dialect(
    lambda insert: (
        insert(transactions)
        .on_conflict_do_nothing(index_elements=["user_id", "idempotency_key"])
        .returning(*transactions.c)
    )
)
_BY_KEY = select(transactions).where(
    transactions.c.user_id == bindparam("user_id"), transactions.c.idempotency_key == bindparam("key")
)


def _repeat_of(existing: Row, fingerprint: str) -> Row:
    if existing.request_hash != fingerprint:
        raise Conflict("this Idempotency-Key was already used for a different request", code="idempotency_key_reused")
    return existing


def drive(*, db: Database, ledger: Ledger, transaction: Row) -> Row:
    """Steps 2 and 3 of the protocol; safe to repeat, by any process, any number of times."""
    outcome = ledger.apply(
        PostingsRequest(
            transaction_id=transaction.id,
            type=transaction.type,
            user_id=transaction.user_id,
            account_id=transaction.account_id,
            to_account_id=transaction.to_account_id,
            amount_minor=transaction.amount_minor,
        )
    )
    crash_point("transactions.after_ledger_call")
    return record_outcome(db=db, transaction=transaction, outcome=outcome)


def record_outcome(*, db: Database, transaction: Row, outcome: PostingsOutcome) -> Row:
    """Mark the transaction completed or rejected and write its event, once; a later call is a no-op
    and returns the transaction as the first call left it."""
    finish = {
        "transaction_id": transaction.id,
        "status": outcome.status,
        "reason": outcome.reason,
        "currency": outcome.currency,
        "balance_after_minor": outcome.balance_after_minor,
        "completed_at": utcnow(),
    }

    def finish_once(connection: Connection) -> tuple[Row, bool]:
        finished = connection.execute(_FINISH, finish).one_or_none()
        if finished is None:
            return connection.execute(_BY_ID, {"transaction_id": transaction.id}).one(), False
        add_event(connection, outbox, transaction_finished(finished, outcome))
        return finished, True

    finished, now_finished = db.run(finish_once)
    if now_finished:
        count_finished(finished)
    return finished


_FINISH = (
    update(transactions)
    .where(transactions.c.id == bindparam("transaction_id"), transactions.c.status == "pending")
    .values(
        status=bindparam("status"),
        reason=bindparam("reason"),
        currency=bindparam("currency"),
        balance_after_minor=bindparam("balance_after_minor"),
        completed_at=bindparam("completed_at"),
    )
    .returning(*transactions.c)
)
_BY_ID = select(transactions).where(transactions.c.id == bindparam("transaction_id"))


def count_finished(transaction: Row) -> None:
    """Count a transaction this process took to its outcome, once it is committed."""
    TRANSACTIONS_FINISHED.labels(transaction.type, transaction.status, transaction.reason or "").inc()
    if transaction.status == "completed":
        MONEY_MOVED.labels(transaction.type, transaction.currency).inc(transaction.amount_minor)


def claim_stalled(*, db: Database, limit: int = 50, as_of: datetime | None = None) -> list[Row]:
    """Pending transactions whose time for another attempt has come by `as_of` (default now),
    leased to this process until RECOVERY_DELAY after it, so that other replicas pass them by."""
    as_of = as_of or utcnow()
    with db.begin() as connection:
        if connection.execute(_ANY_DUE, {"as_of": as_of}).first() is None:
            return []
        lease = {"as_of": as_of, "limit": limit, "next_attempt_at": as_of + RECOVERY_DELAY}
        return list(connection.execute(_CLAIM_STALLED, lease))


# Whether anything is due: a plain index lookup, so an idle recovery loop costs little.
_ANY_DUE = (
    select(transactions.c.id)
    .where(transactions.c.status == "pending", transactions.c.next_attempt_at <= bindparam("as_of"))
    .limit(1)
)

_CLAIM_STALLED = (
    update(transactions)
    .where(
        transactions.c.id.in_(
            select(transactions.c.id)
            .where(transactions.c.status == "pending", transactions.c.next_attempt_at <= bindparam("as_of"))
            .order_by(transactions.c.id)
            .limit(bindparam("limit"))
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
    )
    .values(attempts=transactions.c.attempts + 1, next_attempt_at=bindparam("next_attempt_at"))
    .returning(*transactions.c)
)


def recover_pending(*, db: Database, ledger: Ledger, as_of: datetime | None = None) -> int:
    """Drive every pending transaction due by `as_of` (default now) to its outcome; how many were
    finished. Stops at the first that accounts cannot answer: the rest would wait for it too."""
    finished = 0
    while stalled := claim_stalled(db=db, as_of=as_of):
        for transaction in stalled:
            try:
                outcome = drive(db=db, ledger=ledger, transaction=transaction)
            except LedgerUnavailable:
                RECOVERY_REDRIVES.labels("unavailable").inc()
                raise
            RECOVERY_REDRIVES.labels(outcome.status).inc()
            finished += 1
    return finished


def recover_all_pending(*, db: Database, ledger: Ledger) -> int:
    """Finish every pending transaction now, whatever its lease: repeating a step is harmless.
    Due by RECOVERY_DELAY from now covers every lease, and each row claimed in this pass is leased
    beyond that, so the pass ends instead of trying the same row again."""
    return recover_pending(db=db, ledger=ledger, as_of=utcnow() + RECOVERY_DELAY)


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
) -> list[Row]:
    """The caller's transactions, newest first, filtered, plus one row to tell if there are more."""
    columns = transactions.c
    query = select(transactions).where(columns.user_id == caller.user_id)
    if account_id is not None:
        query = query.where((columns.account_id == account_id) | (columns.to_account_id == account_id))
    if type is not None:
        query = query.where(columns.type == type)
    if status is not None:
        query = query.where(columns.status == status)
    if since is not None:
        query = query.where(columns.created_at >= since)
    if until is not None:
        query = query.where(columns.created_at < until)
    query = keyset(query, columns.id, cursor=before, limit=limit, newest_first=True)
    with db.begin() as connection:
        return list(connection.execute(query))


def get_transaction(*, db: Database, caller: Caller, transaction_id: int) -> Row:
    with db.begin() as connection:
        return owned_row(connection, transactions, transaction_id, caller, what="transaction")


def open_with_deposit(*, db: Database, ledger: Ledger, request: OpeningDepositRequest) -> OpeningDeposit:
    """The deposit that funds a newly opened account, made as the customer's own."""
    movement = MoneyMovement("deposit", request.account_id, request.amount_minor, None, "opening deposit")
    caller = Caller(user_id=request.user_id, role="customer")
    try:
        transaction = move_money(db=db, ledger=ledger, caller=caller, key=request.idempotency_key, movement=movement)
    except Unavailable as exc:
        return OpeningDeposit(status=opening_status_of(exc.code), reason=exc.code)
    return OpeningDeposit(status=transaction.status, transaction_id=transaction.id, reason=transaction.reason)
