"""What an operator reads off /metrics besides HTTP traffic: money moved and events waiting."""

from __future__ import annotations

from collections.abc import Callable

from tests.factories import BankClient, metric_value, wait_until


def test_transactions_are_counted_by_type_and_outcome_with_the_money_they_moved(bank: BankClient) -> None:
    def counted() -> tuple[float, float, float]:
        return (
            metric_value(bank.http, "transactions_total", type="deposit", status="completed", reason=""),
            metric_value(
                bank.http, "transactions_total", type="withdrawal", status="rejected", reason="insufficient_funds"
            ),
            metric_value(bank.http, "money_moved_minor_units_total", type="deposit", currency="USD"),
        )

    _, headers = bank.customer()
    account = bank.open_account(headers)["id"]
    before = counted()

    bank.deposit(headers, account, "12.34")
    bank.deposit(headers, account, "0.66")
    bank.withdraw(headers, account, "500.00")

    deposits, refused, cents = (after - earlier for after, earlier in zip(counted(), before, strict=True))
    assert (deposits, refused, cents) == (2, 1, 1300)


def test_the_outbox_backlog_shows_events_nobody_has_delivered(client_for: Callable[[str], BankClient]) -> None:
    users = client_for("users")  # no RABBIT_URL: its events wait in the outbox
    users.sign_up()
    users.sign_up()

    assert metric_value(users.http, "outbox_backlog", missing=None, domain="users") == 2
    wait_until(
        lambda: metric_value(users.http, "outbox_oldest_unsent_age_seconds", missing=None, domain="users") > 0.2,
        timeout=5,
        what="the oldest event to age",
    )


def test_the_outbox_backlog_drains_once_events_are_delivered(bank: BankClient) -> None:
    _, headers = bank.customer()
    bank.deposit(headers, bank.open_account(headers)["id"], "5.00")

    wait_until(
        lambda: all(
            metric_value(bank.http, "outbox_backlog", missing=None, domain=d) == 0 for d in ("users", "transactions")
        ),
        timeout=10,
        what="the relays to deliver every event",
    )
    assert metric_value(bank.http, "outbox_oldest_unsent_age_seconds", missing=None, domain="transactions") == 0
