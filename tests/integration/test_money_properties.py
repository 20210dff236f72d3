"""Properties of moving money: whatever customers do, in any order, the bank agrees with a simple model.

Random sequences of deposits, withdrawals, transfers (overdrafts included), attempts on someone
else's account and repeats of a request under the same Idempotency-Key run against the real app
on PostgreSQL. After each sequence every balance equals the model's, none is negative, money is
neither created nor lost, and `microbank audit` finds nothing wrong.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from decimal import Decimal

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from microbank.platform.money import format_minor
from tests.integration.conftest import audit_once_idle

ACCOUNTS = 4  # two customers with two accounts each: 0 and 1 are the first's, 2 and 3 the second's
_keys = itertools.count(1)


def owner_of(index: int) -> int:
    return index // 2


# One step: what kind, from which account, to which account, how many cents (0.01 .. 500.00).
steps = st.tuples(
    st.sampled_from(["deposit", "withdrawal", "transfer", "foreign_withdrawal", "repeat"]),
    st.integers(0, ACCOUNTS - 1),
    st.integers(1, ACCOUNTS - 1),
    # Cents: anything up to 500.00, with small amounts common enough that money also gets out.
    st.integers(1, 50_000) | st.integers(1, 3_000),
)


@dataclass
class Model:
    """What the bank should hold, in cents, and what moved in and out of it."""

    balances: list[int] = field(default_factory=lambda: [0] * ACCOUNTS)
    deposited: int = 0
    withdrawn: int = 0


def post(bank, headers: dict[str, str], body: dict, key: str) -> dict:
    response = bank.move(headers, body, key=key)
    assert response.status_code == 201, response.text
    return response.json()


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    opening=st.lists(st.integers(0, 50_000), min_size=ACCOUNTS, max_size=ACCOUNTS),
    sequence=st.lists(steps, max_size=15),
)
def test_balances_follow_the_model_and_the_audit_stays_clean(bank, opening, sequence):
    # Tables are emptied only between tests, not between examples: each example opens its own.
    customers = [bank.customer()[1] for _ in range(2)]
    accounts = [bank.open_account(customers[owner_of(i)], "checking" if i % 2 == 0 else "savings") for i in range(4)]
    ids = [a["id"] for a in accounts]
    model = Model()
    last: tuple[dict[str, str], dict, str, dict] | None = None

    # Opening deposits (0 means none), so that withdrawals and transfers can also succeed.
    steps_to_run = [("deposit", i, 1, cents) for i, cents in enumerate(opening) if cents] + sequence
    for kind, source, offset, cents in steps_to_run:
        amount = format_minor(cents)
        target = (source + offset) % ACCOUNTS  # never the source itself
        headers = customers[owner_of(source)]
        key = f"prop-{next(_keys)}"

        if kind == "repeat":
            if last is None:
                continue
            # The same key and body again: the first answer, and nothing moves.
            headers, body, key, first = last
            assert post(bank, headers, body, key) == first
            continue

        if kind == "deposit":
            body = {"account_id": ids[source], "type": "deposit", "amount": amount}
            result = post(bank, headers, body, key)
            assert result["status"] == "completed", result
            model.balances[source] += cents
            model.deposited += cents
        elif kind == "withdrawal":
            body = {"account_id": ids[source], "type": "withdrawal", "amount": amount}
            result = post(bank, headers, body, key)
            if model.balances[source] >= cents:
                assert result["status"] == "completed", result
                model.balances[source] -= cents
                model.withdrawn += cents
            else:
                assert (result["status"], result["reason"]) == ("rejected", "insufficient_funds"), result
        elif kind == "transfer":
            body = {"account_id": ids[source], "type": "transfer", "amount": amount, "to_account_id": ids[target]}
            result = post(bank, headers, body, key)
            if model.balances[source] >= cents:
                assert result["status"] == "completed", result
                model.balances[source] -= cents
                model.balances[target] += cents
            else:
                assert (result["status"], result["reason"]) == ("rejected", "insufficient_funds"), result
        else:  # the other customer tries to take money out of this account
            headers = customers[1 - owner_of(source)]
            body = {"account_id": ids[source], "type": "withdrawal", "amount": amount}
            result = post(bank, headers, body, key)
            assert (result["status"], result["reason"]) == ("rejected", "account_not_found"), result

        event(f"{kind} {result['status']}")
        if result["status"] == "completed":
            assert result["balance_after"] == format_minor(model.balances[source])
        last = (headers, body, key, result)

    balances = [bank.balance(customers[owner_of(i)], ids[i]) for i in range(ACCOUNTS)]
    assert balances == [format_minor(cents) for cents in model.balances]
    in_cents = [int(Decimal(balance) * 100) for balance in balances]
    assert all(cents >= 0 for cents in in_cents)
    assert sum(in_cents) == model.deposited - model.withdrawn
    for i in range(ACCOUNTS):
        statement = bank.statement(customers[owner_of(i)], ids[i])
        assert (statement[0]["balance_after"] if statement else "0.00") == balances[i]
    report = audit_once_idle()
    assert report.clean, report.render()
