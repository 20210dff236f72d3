"""The README's first command, `microbank dev`: the whole bank in one process on SQLite files,
used as a customer would, then audited and restarted."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Callable

import httpx

from tests.factories import BankClient, concurrently, metric_value
from tests.processes import MICROBANK, RoleProcess


def test_two_customers_move_money_and_are_told_of_it(dev_bank: BankClient) -> None:
    ann, ann_headers = dev_bank.customer(name="Ann Lee")
    _, bob_headers = dev_bank.customer(name="Bob Kim")
    checking = dev_bank.open_account(ann_headers)["id"]
    savings = dev_bank.open_account(bob_headers, "savings", initial_deposit="50.00")
    assert savings["balance"] == "50.00"

    deposit = dev_bank.deposit(ann_headers, checking, "200.00", key="ann-deposit-1")
    assert dev_bank.deposit(ann_headers, checking, "200.00", key="ann-deposit-1")["id"] == deposit["id"]
    dev_bank.withdraw(ann_headers, checking, "25.50")
    dev_bank.transfer(ann_headers, checking, savings["id"], "100.00")
    overdraft = dev_bank.withdraw(ann_headers, checking, "500.00")

    assert (overdraft["status"], overdraft["reason"]) == ("rejected", "insufficient_funds")
    assert dev_bank.balance(ann_headers, checking) == "74.50"
    assert dev_bank.balance(bob_headers, savings["id"]) == "150.00"
    assert [p["amount"] for p in dev_bank.statement(ann_headers, checking)] == ["-100.00", "-25.50", "200.00"]

    # Sign-up, account opened, deposit, withdrawal, transfer, overdraft refused.
    ann_told = [n["message"] for n in dev_bank.wait_for_notifications(ann_headers, 6)]
    assert "Deposit of $200.00 completed. New balance: $200.00" in ann_told
    bob_told = [n["message"] for n in dev_bank.wait_for_notifications(bob_headers, 4)]
    assert f"Received $100.00 from account {checking} into account {savings['id']}. New balance: $150.00" in bob_told
    assert not any(ann["name"] in message or "74.50" in message for message in bob_told)

    # Every event was handed over: nothing waits in the three outboxes.
    for domain in ("users", "accounts", "transactions"):
        assert metric_value(dev_bank.http, "outbox_backlog", missing=None, domain=domain) == 0
        assert metric_value(dev_bank.http, "outbox_oldest_unsent_age_seconds", missing=None, domain=domain) == 0


def test_concurrent_withdrawals_on_sqlite_never_overdraw(dev_bank: BankClient, dev_service: RoleProcess) -> None:
    _, headers = dev_bank.customer()
    account = dev_bank.open_account(headers, initial_deposit="100.00")["id"]
    body = {"account_id": account, "type": "withdrawal", "amount": "10.00"}

    responses = asyncio.run(concurrently(dev_service, [(headers, f"w-{n}", body) for n in range(30)]))

    assert {response.status_code for response in responses} == {201}
    statuses = sorted(response.json()["status"] for response in responses)
    assert statuses == ["completed"] * 10 + ["rejected"] * 20
    assert dev_bank.balance(headers, account) == "0.00"


def test_the_bank_keeps_its_books_across_a_restart_and_audits_clean(
    dev_process: Callable[[], RoleProcess],
) -> None:
    first = dev_process().start()
    with httpx.Client(base_url=first.url, timeout=30) as http:
        bank = BankClient(http)
        user, headers = bank.customer()
        account = bank.open_account(headers, initial_deposit="80.00")["id"]
        bank.withdraw(headers, account, "30.00")
        bank.wait_for_notifications(headers, 4)
    first.stop()

    audit = subprocess.run([str(MICROBANK), "audit"], env=first.env, capture_output=True, text=True, timeout=60)
    assert audit.returncode == 0, audit.stdout + audit.stderr

    second = dev_process().start()
    with httpx.Client(base_url=second.url, timeout=30) as http:
        bank = BankClient(http)
        headers = bank.log_in(user["email"])
        assert bank.balance(headers, account) == "50.00"
