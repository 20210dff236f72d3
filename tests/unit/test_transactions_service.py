"""Transactions' decisions on a fake ledger and SQLite: exactly once per key, every outcome recorded
with its event, and every crash point recovered to one outcome."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Row, func, select

from microbank.contracts.postings import LedgerRefused, LedgerUnavailable, PostingsRequest
from microbank.platform.auth import Caller
from microbank.platform.db import Database, utcnow
from microbank.platform.errors import Conflict, Invalid, Unavailable
from microbank.platform.events import decode_event
from microbank.transactions import service
from microbank.transactions.models import outbox, transactions
from microbank.transactions.schemas import TransactionRequest
from tests.fakes import Balance, FakeLedger

ANN = Caller(user_id=1, role="customer")


@pytest.fixture
def db(sqlite_db) -> Database:
    return sqlite_db("transactions")


@pytest.fixture
def ledger() -> FakeLedger:
    return FakeLedger(accounts={10: Balance(owner=1, minor=10_000), 20: Balance(owner=2)})


def movement(type: str = "deposit", amount: str = "25.00", account_id: int = 10, **extra) -> service.MoneyMovement:
    return service.validate_movement(TransactionRequest(account_id=account_id, type=type, amount=amount, **extra))


def move(db: Database, ledger: FakeLedger, key: str = "k1", **body) -> Row:
    return service.move_money(db=db, ledger=ledger, caller=ANN, key=key, movement=movement(**body))


def events(db: Database) -> list:
    with db.begin() as connection:
        return [decode_event(payload) for payload in connection.execute(select(outbox.c.payload)).scalars()]


def count_transactions(db: Database) -> int:
    with db.begin() as connection:
        return connection.execute(select(func.count()).select_from(transactions)).scalar_one()


def test_a_deposit_completes_with_its_balance_and_one_event(db, ledger):
    deposited = move(db, ledger)

    assert (deposited.status, deposited.balance_after_minor, deposited.currency) == ("completed", 12_500, "USD")
    assert [(e.event_type, e.message) for e in events(db)] == [
        ("transaction.completed", "Deposit of $25.00 completed. New balance: $125.00")
    ]


def test_the_same_key_and_body_is_one_transaction_and_one_ledger_call(db, ledger):
    first = move(db, ledger)
    again = move(db, ledger)

    assert again.id == first.id
    assert ledger.calls == {first.id: 1}
    assert count_transactions(db) == 1
    assert len(events(db)) == 1


def test_the_same_key_with_another_body_is_refused_and_moves_nothing(db, ledger):
    move(db, ledger)

    with pytest.raises(Conflict) as refused:
        move(db, ledger, amount="26.00")

    assert refused.value.code == "idempotency_key_reused"
    assert ledger.accounts[10].minor == 12_500


def test_a_refusal_is_recorded_with_its_reason_and_told(db, ledger):
    rejected = move(db, ledger, type="withdrawal", amount="500.00")

    assert (rejected.status, rejected.reason, rejected.balance_after_minor) == ("rejected", "insufficient_funds", None)
    assert [e.message for e in events(db)] == ["Withdrawal of $500.00 rejected: insufficient funds."]


def test_a_transfer_tells_the_receiving_owner_too(db, ledger):
    move(db, ledger, type="transfer", amount="40.00", to_account_id=20)

    (event,) = events(db)
    assert [(r.user_id, r.message) for r in event.recipients] == [
        (1, "Transfer of $40.00 to account 20 completed. New balance: $60.00"),
        (2, "Received $40.00 from account 10 into account 20. New balance: $40.00"),
    ]


def test_accounts_down_leaves_it_pending_and_recovery_finishes_it_once(db, ledger):
    ledger.unavailable = 1
    with pytest.raises(Unavailable) as left:
        move(db, ledger)
    assert left.value.code == "accounts_unavailable"
    assert events(db) == []

    finished = service.recover_pending(db=db, ledger=ledger, as_of=utcnow() + service.RECOVERY_DELAY)

    assert finished == 1
    assert ledger.accounts[10].minor == 12_500
    assert [e.event_type for e in events(db)] == ["transaction.completed"]


def test_recovery_waits_for_a_live_request_to_finish_its_own(db, ledger):
    ledger.unavailable = 1
    with pytest.raises(Unavailable):
        move(db, ledger)

    assert service.recover_pending(db=db, ledger=ledger) == 0


def test_an_answer_lost_after_the_postings_is_recovered_without_moving_money_twice(db, ledger):
    """The crash point between accounts' commit and ours: accounts applied it, we never heard."""
    ledger.lose_answers = 1
    with pytest.raises(Unavailable):
        move(db, ledger)

    service.recover_all_pending(db=db, ledger=ledger)

    (transaction,) = service.list_transactions(db=db, caller=ANN, before=None, limit=10)
    assert (transaction.status, transaction.balance_after_minor) == ("completed", 12_500)
    assert ledger.accounts[10].minor == 12_500
    assert ledger.calls[transaction.id] == 2
    assert len(events(db)) == 1


def test_a_crash_after_recording_pending_is_finished_by_recovery(db, ledger):
    """The crash point before the ledger call: only the pending row exists."""
    pending = service.record_pending(db=db, caller=ANN, key="k1", movement=movement())

    service.recover_all_pending(db=db, ledger=ledger)

    assert service.get_transaction(db=db, caller=ANN, transaction_id=pending.id).status == "completed"
    assert ledger.calls == {pending.id: 1}


def test_an_outcome_recorded_twice_is_one_outcome_and_one_event(db, ledger):
    pending = service.record_pending(db=db, caller=ANN, key="k1", movement=movement())
    outcome = ledger.apply(
        PostingsRequest(transaction_id=pending.id, type="deposit", user_id=1, account_id=10, amount_minor=2500)
    )

    first = service.record_outcome(db=db, transaction=pending, outcome=outcome)
    second = service.record_outcome(db=db, transaction=pending, outcome=outcome)

    assert first.completed_at == second.completed_at
    assert len(events(db)) == 1


def test_recovery_stops_at_an_accounts_that_refuses_our_credential(db, ledger):
    service.record_pending(db=db, caller=ANN, key="k1", movement=movement())
    ledger.refuses_credential = True

    with pytest.raises(LedgerRefused):
        service.recover_all_pending(db=db, ledger=ledger)
    assert isinstance(LedgerRefused("x"), LedgerUnavailable)


def test_a_pending_row_claimed_by_one_replica_is_passed_over_by_the_next(db, ledger):
    service.record_pending(db=db, caller=ANN, key="k1", movement=movement())
    later = utcnow() + service.RECOVERY_DELAY + timedelta(seconds=1)

    assert len(service.claim_stalled(db=db, as_of=later)) == 1
    assert service.claim_stalled(db=db, as_of=later) == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "transfer"}, "to_account_id"),
        ({"type": "transfer", "to_account_id": 10}, "to_account_id"),
        ({"type": "deposit", "to_account_id": 20}, "to_account_id"),
        ({"type": "deposit", "amount": "0.00"}, "amount"),
        ({"type": "deposit", "amount": "1.005"}, "amount"),
    ],
)
def test_a_malformed_movement_names_its_field(body, field):
    with pytest.raises(Invalid) as refused:
        movement(**body)
    assert refused.value.field == field


@pytest.mark.parametrize("key", [None, "", "   ", "x" * 256, "tab\there"])
def test_an_idempotency_key_must_be_there_printable_and_bounded(key):
    with pytest.raises(Invalid) as refused:
        service.validate_idempotency_key(key)
    assert refused.value.field == "Idempotency-Key"
