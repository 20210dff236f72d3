"""Money movement with accounts and transactions as separate processes: concurrency, crashes, outages."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import Callable

import httpx
import pytest

from microbank.accounts.models import outbox as accounts_outbox
from microbank.notifications import LocalNotifier
from microbank.platform.db import Database
from microbank.platform.outbox import OutboxRelay
from microbank.transactions.models import outbox as transactions_outbox
from microbank.users.models import outbox as users_outbox
from tests.factories import Headers, balance, concurrently, move, open_account, query_value
from tests.integration.conftest import audit
from tests.processes import MICROBANK, RoleProcess


@pytest.fixture
def services(role_process: Callable[[str], RoleProcess]) -> tuple[RoleProcess, RoleProcess]:
    """accounts and transactions, each its own process, each reaching the other over HTTP."""
    accounts, transactions = role_process("accounts"), role_process("transactions")
    transactions.env["ACCOUNTS_URL"] = accounts.url
    accounts.env["TRANSACTIONS_URL"] = transactions.url
    return accounts.start(), transactions.start()


OUTBOXES = {"users": users_outbox, "accounts": accounts_outbox, "transactions": transactions_outbox}


def deliver_events(database_urls: dict[str, str]) -> None:
    """Stand in for the notifier: hand every outbox's events to the notifications database."""
    databases = {name: Database(name, url) for name, url in database_urls.items()}
    notifier = LocalNotifier(databases["notifications"])
    relays = [OutboxRelay(databases[name], table, notifier) for name, table in OUTBOXES.items()]

    async def drain() -> None:
        for relay in relays:
            while await relay.relay_once():
                pass

    asyncio.run(drain())
    for database in databases.values():
        database.dispose()


def assert_audit_clean(database_urls: dict[str, str]) -> None:
    deliver_events(database_urls)
    report = audit()
    assert report.clean, report.render()


def wait_for_status(transactions: RoleProcess, headers: Headers, transaction_id: int, timeout: float = 20) -> dict:
    """Poll the transaction until it leaves pending (recovery runs every few seconds)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = httpx.get(f"{transactions.url}/api/transactions/{transaction_id}", headers=headers).json()
        if body["status"] != "pending":
            return body
        time.sleep(0.25)
    pytest.fail(f"transaction {transaction_id} still pending after {timeout}s")


def the_only_transaction(database_urls: dict[str, str]) -> int:
    return query_value(database_urls["transactions"], "SELECT id FROM transactions")


def test_200_concurrent_withdrawals_never_overdraw(services, token_for, database_urls):
    accounts, transactions = services
    ann = token_for(1)
    account = open_account(accounts, ann)
    assert move(transactions, ann, "seed", account_id=account, type="deposit", amount="1000.00").status_code == 201

    withdrawal = {"account_id": account, "type": "withdrawal", "amount": "10.00"}
    responses = asyncio.run(concurrently(transactions, [(ann, f"w{i}", withdrawal) for i in range(200)]))

    assert [r.status_code for r in responses] == [201] * 200, {r.status_code: r.text for r in responses}
    outcomes = [(r.json()["status"], r.json()["reason"]) for r in responses]
    assert outcomes.count(("completed", None)) == 100
    assert outcomes.count(("rejected", "insufficient_funds")) == 100
    assert balance(accounts, ann, account) == "0.00"
    assert_audit_clean(database_urls)


def test_50_concurrent_transfers_both_ways_conserve_money(services, token_for, database_urls):
    accounts, transactions = services
    ann, bob = token_for(1), token_for(2)
    a, b = open_account(accounts, ann), open_account(accounts, bob)
    move(transactions, ann, "seed-a", account_id=a, type="deposit", amount="100.00")
    move(transactions, bob, "seed-b", account_id=b, type="deposit", amount="100.00")

    requests = [
        (ann, f"a{i}", {"account_id": a, "type": "transfer", "amount": "7.00", "to_account_id": b})
        if i % 2
        else (bob, f"b{i}", {"account_id": b, "type": "transfer", "amount": "9.00", "to_account_id": a})
        for i in range(50)
    ]
    responses = asyncio.run(concurrently(transactions, requests))

    assert all(r.status_code == 201 for r in responses), [r.text for r in responses if r.status_code != 201]
    assert all(r.json()["status"] in ("completed", "rejected") for r in responses)
    total = float(balance(accounts, ann, a)) + float(balance(accounts, bob, b))
    assert total == 200.00
    assert_audit_clean(database_urls)


def test_20_concurrent_repeats_of_one_key_make_one_transaction(services, token_for, database_urls):
    accounts, transactions = services
    ann = token_for(1)
    account = open_account(accounts, ann)
    deposit = {"account_id": account, "type": "deposit", "amount": "25.00"}

    responses = asyncio.run(concurrently(transactions, [(ann, "same-key", deposit)] * 20))

    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["id"] for r in responses}) == 1
    assert {r.json()["status"] for r in responses} == {"completed"}
    assert query_value(database_urls["transactions"], "SELECT count(*) FROM transactions") == 1
    assert balance(accounts, ann, account) == "25.00"
    assert_audit_clean(database_urls)


def test_accounts_killed_after_applying_postings_is_recovered_exactly_once(services, token_for, database_urls):
    accounts, transactions = services
    ann = token_for(1)
    account = open_account(accounts, ann)
    accounts.stop()
    accounts.start(MICROBANK_FAULTS="accounts.after_postings_commit")

    response = move(transactions, ann, "crash", account_id=account, type="deposit", amount="100.00")

    assert response.status_code == 503, response.text
    assert accounts.wait_exit() == -9
    transaction_id = the_only_transaction(database_urls)
    postings = "SELECT count(*) FROM postings WHERE transaction_id = :id"
    assert query_value(database_urls["accounts"], postings, id=transaction_id) == 1, "applied before the crash"

    accounts.start()
    assert wait_for_status(transactions, ann, transaction_id)["status"] == "completed"
    repeat = move(transactions, ann, "crash", account_id=account, type="deposit", amount="100.00")
    assert (repeat.json()["id"], repeat.json()["status"]) == (transaction_id, "completed")
    assert query_value(database_urls["accounts"], postings, id=transaction_id) == 1
    assert balance(accounts, ann, account) == "100.00"
    assert_audit_clean(database_urls)


def test_transactions_killed_between_postings_and_outcome_is_recovered_exactly_once(
    role_process, token_for, database_urls
):
    accounts = role_process("accounts").start()
    transactions = role_process("transactions")
    transactions.env["ACCOUNTS_URL"] = accounts.url
    ann = token_for(1)
    account = open_account(accounts, ann)
    transactions.start(MICROBANK_FAULTS="transactions.after_ledger_call")

    with pytest.raises(httpx.TransportError):
        move(transactions, ann, "crash", account_id=account, type="deposit", amount="40.00")

    assert transactions.wait_exit() == -9
    transactions.start()
    transaction_id = the_only_transaction(database_urls)
    assert wait_for_status(transactions, ann, transaction_id)["status"] == "completed"
    assert query_value(database_urls["accounts"], "SELECT count(*) FROM postings") == 1
    assert balance(accounts, ann, account) == "40.00"
    assert_audit_clean(database_urls)


def test_accounts_down_fails_fast_with_503_and_recovery_finishes_later(services, token_for, database_urls):
    accounts, transactions = services
    ann = token_for(1)
    account = open_account(accounts, ann)
    accounts.stop()

    started = time.monotonic()
    response = move(transactions, ann, "outage", account_id=account, type="deposit", amount="12.34")
    elapsed = time.monotonic() - started

    assert response.status_code == 503
    assert response.json()["error"] == "accounts_unavailable"
    assert elapsed < 3, f"took {elapsed:.1f}s to fail"
    transaction_id = the_only_transaction(database_urls)

    accounts.start()
    finished = wait_for_status(transactions, ann, transaction_id)
    assert (finished["status"], finished["balance_after"]) == ("completed", "12.34")
    assert_audit_clean(database_urls)


def test_microbank_recover_finishes_what_an_outage_left_pending(services, token_for, database_urls):
    accounts, transactions = services
    ann = token_for(1)
    account = open_account(accounts, ann)
    accounts.stop()
    assert move(transactions, ann, "outage", account_id=account, type="deposit", amount="5.00").status_code == 503
    transactions.stop()  # only the command may finish it
    accounts.start()

    result = subprocess.run(
        [str(MICROBANK), "recover"],
        env={**os.environ, "ACCOUNTS_URL": accounts.url},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    assert "finished 1 pending transactions" in result.stdout
    assert balance(accounts, ann, account) == "5.00"
    assert_audit_clean(database_urls)


def test_an_initial_amount_opens_the_account_through_a_deposit_transaction(services, token_for, database_urls):
    accounts, transactions = services
    ann = token_for(1)

    response = httpx.post(
        f"{accounts.url}/api/accounts", json={"account_type": "savings", "initial_deposit": "250.00"}, headers=ann
    )

    assert response.status_code == 201, response.text
    opened = response.json()
    assert opened["balance"] == "250.00"
    assert opened["opening_deposit"]["status"] == "completed"
    history = httpx.get(f"{transactions.url}/api/transactions", headers=ann).json()
    assert [(t["id"], t["type"], t["amount"], t["account_id"]) for t in history] == [
        (opened["opening_deposit"]["transaction_id"], "deposit", "250.00", opened["id"])
    ]
    assert_audit_clean(database_urls)


def test_with_transactions_down_the_account_opens_empty_and_says_why(services, token_for, database_urls):
    accounts, transactions = services
    transactions.stop()

    response = httpx.post(
        f"{accounts.url}/api/accounts",
        json={"account_type": "savings", "initial_deposit": "10.00"},
        headers=token_for(1),
    )

    assert response.status_code == 201, response.text
    assert response.json()["balance"] == "0.00"
    assert response.json()["opening_deposit"]["status"] == "failed"
    assert query_value(database_urls["accounts"], "SELECT count(*) FROM postings") == 0
