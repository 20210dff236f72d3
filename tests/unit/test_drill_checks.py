"""What the drill checks beyond the audit, on books it is handed: every transaction a client was
told of is booked as it was answered, and a 500 a role logged is a finding."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import insert

from microbank.drills.drill import Books, check_against_clients, logged_500s
from microbank.drills.traffic import Outcome, TrafficReport
from microbank.platform.db import Database
from microbank.transactions.models import transactions


def answered(transaction_id: int, status: str, amount: str) -> Outcome:
    body = {"id": transaction_id, "type": "deposit", "status": status, "amount": amount}
    return Outcome("deposit", f"201 {status}", 201, 0.01, 1, True, True, transaction=body)


def book(db: Database, transaction_id: int, status: str, amount_minor: int) -> None:
    now = datetime.now(UTC)
    row = {
        "id": transaction_id,
        "user_id": 1,
        "idempotency_key": f"k{transaction_id}",
        "request_hash": "h",
        "type": "deposit",
        "account_id": 1,
        "amount_minor": amount_minor,
        "status": status,
        "created_at": now,
        "next_attempt_at": now,
    }
    with db.engine.begin() as connection:
        connection.execute(insert(transactions), row)


def test_every_acknowledged_transaction_must_be_booked_as_it_was_answered(sqlite_db: Callable[[str], Database]):
    db = sqlite_db("transactions")
    book(db, 1, "completed", 500)
    book(db, 2, "rejected", 700)
    traffic = TrafficReport(
        [answered(1, "completed", "5.00"), answered(2, "completed", "7.00"), answered(3, "completed", "1.00")]
    )
    books = Books({"transactions": db.url})
    try:
        findings = check_against_clients(books, traffic)
    finally:
        books.dispose()

    assert findings == [
        "transaction 2 was answered completed 7.00, booked rejected 7.00",
        "transaction 3 was acknowledged but is not in the books",
    ]


def test_a_money_request_left_without_an_answer_is_a_finding(sqlite_db: Callable[[str], Database]):
    db = sqlite_db("transactions")
    traffic = TrafficReport([Outcome("transfer", "dropped", 0, 60.0, 12, False, True)])
    books = Books({"transactions": db.url})
    try:
        assert check_against_clients(books, traffic) == [
            "transfer ended dropped after 12 attempts (no answer or an unexplained 5xx)"
        ]
    finally:
        books.dispose()


def test_a_500_in_a_roles_log_is_a_finding_even_if_no_client_saw_it(tmp_path: Path):
    accounts, users = tmp_path / "accounts.log", tmp_path / "users.log"
    accounts.write_text(
        "INFO serving\nERROR - microbank.http - unhandled error on POST /internal/postings\nTraceback\n"
    )
    users.write_text("INFO serving\n")

    assert logged_500s({"accounts": accounts, "users": users}) == [
        "accounts answered 1 requests with a 500, the first: ERROR - microbank.http - unhandled error on POST"
        " /internal/postings"
    ]
