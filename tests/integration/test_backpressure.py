"""A role at capacity: the request it cannot take is refused at once with 503 and Retry-After,
and writes nothing, while the one it took finishes."""

from __future__ import annotations

import threading

import pytest
from litestar.testing import TestClient

from microbank.contracts import Ports
from microbank.roles import create_app
from tests.factories import count_rows
from tests.fakes import Balance, HeldLedger
from tests.integration.conftest import role_settings


def test_a_full_transactions_role_refuses_at_once_and_writes_nothing(
    role_env, monkeypatch: pytest.MonkeyPatch, token_for, database_urls
):
    monkeypatch.setenv("MAX_IN_FLIGHT", "1")
    monkeypatch.setenv("MAX_QUEUED", "0")
    ledger = HeldLedger(accounts={5: Balance(owner=1)})
    app = create_app(role_settings("transactions"), ports=Ports(ledger=ledger))
    body = {"account_id": 5, "type": "deposit", "amount": "3.00"}
    with TestClient(app) as client:
        answers = {}

        def first() -> None:
            answers["first"] = client.post(
                "/api/transactions", json=body, headers={**token_for(1), "Idempotency-Key": "first"}
            )

        taken = threading.Thread(target=first)
        taken.start()
        assert ledger.arrived.wait(timeout=30)

        refused = client.post("/api/transactions", json=body, headers={**token_for(1), "Idempotency-Key": "second"})

        ledger.release.set()
        taken.join(timeout=30)

    assert refused.status_code == 503
    assert refused.json()["error"] == "overloaded"
    assert refused.headers["Retry-After"] == "1"
    assert (answers["first"].status_code, answers["first"].json()["status"]) == (201, "completed")
    assert count_rows(database_urls["transactions"], "transactions") == 1
