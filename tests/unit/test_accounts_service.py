"""Accounts' decisions on SQLite: postings applied exactly once per transaction id, every refusal
with its reason, the caller's own side checked first, and the opening deposit asked of transactions."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from microbank.accounts import service
from microbank.accounts.models import accounts, outbox, postings
from microbank.contracts.deposits import OpeningDeposit
from microbank.contracts.postings import PostingsRequest
from microbank.platform.auth import Caller
from microbank.platform.db import Database
from microbank.platform.errors import NotFound
from microbank.platform.money import to_minor
from tests.fakes import FakeDeposits

ANN, BOB = Caller(user_id=1, role="customer"), Caller(user_id=2, role="customer")
_serial = iter(range(1, 10_000))


@pytest.fixture
def db(sqlite_db) -> Database:
    return sqlite_db("accounts")


def open_account(db: Database, owner: Caller, *, currency: str = "USD", balance: str | None = None) -> int:
    account = service.create_account(db=db, owner_id=owner.user_id, account_type="checking", currency=currency)
    if balance:
        apply(db, "deposit", account.id, balance, user=owner)
    return account.id


def apply(db: Database, type: str, account_id: int, amount: str, *, user: Caller = ANN, to: int | None = None, tx=None):
    request = PostingsRequest(
        transaction_id=tx or next(_serial),
        type=type,
        user_id=user.user_id,
        account_id=account_id,
        amount_minor=to_minor(amount),
        to_account_id=to,
    )
    return service.apply_postings(db=db, request=request)


def balance(db: Database, account_id: int) -> int:
    return service.get_account(db=db, caller=Caller(user_id=0, role="admin"), account_id=account_id).balance_minor


def count(db: Database, table) -> int:
    with db.begin() as connection:
        return connection.execute(select(func.count()).select_from(table)).scalar_one()


def test_a_repeated_transaction_id_gets_the_first_outcome_and_posts_once(db):
    account = open_account(db, ANN)

    first = apply(db, "deposit", account, "10.00", tx=7)
    again = apply(db, "deposit", account, "10.00", tx=7)

    assert first == again
    assert (first.status, first.balance_after_minor) == ("completed", 1000)
    assert balance(db, account) == 1000
    assert count(db, postings) == 1


def test_a_withdrawal_beyond_the_balance_is_refused_and_posts_nothing(db):
    account = open_account(db, ANN, balance="5.00")

    refused = apply(db, "withdrawal", account, "5.01")

    assert (refused.status, refused.reason, refused.currency) == ("rejected", "insufficient_funds", "USD")
    assert balance(db, account) == 500
    assert count(db, postings) == 1


def test_someone_elses_account_is_as_absent_as_a_missing_one(db):
    bobs = open_account(db, BOB, balance="50.00")

    assert apply(db, "withdrawal", bobs, "1.00").reason == "account_not_found"
    assert apply(db, "deposit", 999, "1.00").reason == "account_not_found"
    assert apply(db, "transfer", bobs, "1.00", to=999).reason == "account_not_found"
    with pytest.raises(NotFound):
        service.get_account(db=db, caller=ANN, account_id=bobs)


def test_a_transfer_moves_both_sides_in_one_transaction(db):
    ann, bob = open_account(db, ANN, balance="30.00"), open_account(db, BOB)

    moved = apply(db, "transfer", ann, "12.50", to=bob)

    assert (moved.balance_after_minor, moved.to_balance_after_minor, moved.to_account_owner_id) == (1750, 1250, 2)
    assert (balance(db, ann), balance(db, bob)) == (1750, 1250)


def test_a_transfer_from_an_empty_account_never_tells_whether_the_recipient_exists(db):
    empty, euros = open_account(db, ANN), open_account(db, BOB, currency="EUR")

    assert apply(db, "transfer", empty, "1.00", to=999).reason == "insufficient_funds"
    assert apply(db, "transfer", empty, "1.00", to=euros).reason == "insufficient_funds"


def test_a_transfer_the_caller_can_pay_names_a_missing_recipient_or_another_currency(db):
    funded, euros = open_account(db, ANN, balance="10.00"), open_account(db, BOB, currency="EUR")

    assert apply(db, "transfer", funded, "1.00", to=999).reason == "recipient_not_found"
    assert apply(db, "transfer", funded, "1.00", to=euros).reason == "currency_mismatch"
    assert balance(db, funded) == 1000


def test_opening_an_account_writes_its_event(db):
    open_account(db, ANN)

    assert count(db, outbox) == 1


def test_an_initial_deposit_is_asked_of_transactions_under_the_accounts_own_key(db):
    deposits = FakeDeposits(answer=OpeningDeposit(status="pending", reason="accounts_unavailable"))

    account, opening = service.open_account(
        db=db,
        deposits=deposits,
        caller=ANN,
        caller_token="ann-token",
        account_type="savings",
        currency="USD",
        initial_deposit="50.00",
    )

    (request,) = deposits.requests
    assert (request.account_id, request.amount_minor, request.caller_token) == (account.id, 5000, "ann-token")
    assert request.idempotency_key == f"account-{account.id}-opening"
    assert opening == OpeningDeposit(status="pending", reason="accounts_unavailable")


def test_no_initial_deposit_asks_nothing_of_transactions(db):
    deposits = FakeDeposits()

    _, opening = service.open_account(
        db=db,
        deposits=deposits,
        caller=ANN,
        caller_token="t",
        account_type="checking",
        currency="USD",
        initial_deposit=None,
    )

    assert opening is None
    assert deposits.requests == []


def test_statements_list_an_accounts_postings_newest_first(db):
    account = open_account(db, ANN, balance="10.00")
    apply(db, "withdrawal", account, "3.00")

    statement = service.list_postings(db=db, caller=ANN, account_id=account, before=None, limit=10)

    assert [(p.amount_minor, p.balance_after_minor) for p in statement] == [(-300, 700), (1000, 1000)]
    assert count(db, accounts) == 1
