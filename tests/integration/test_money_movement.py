"""Moving money over HTTP, as a customer or an operator would notice it: balances, statements,
history, notifications, idempotency, refused input, and the audit that checks it all."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import create_engine, text

from tests.factories import count_rows
from tests.integration.conftest import audit, audit_once_idle

SERVICE_TOKEN = "test-service-token"


# --- helpers -----------------------------------------------------------------------------


def transactions_in_db(database_urls) -> int:
    return count_rows(database_urls["transactions"], "transactions")


def postings_in_db(database_urls) -> int:
    return count_rows(database_urls["accounts"], "postings")


def wait_for_message(bank, headers, message: str, timeout: float = 5.0) -> list[dict]:
    """The caller's notifications once `message` is among them (the relay delivers in the background)."""
    deadline = time.monotonic() + timeout
    while True:
        notifications = bank.notifications(headers)
        if any(n["message"] == message for n in notifications):
            return notifications
        if time.monotonic() > deadline:
            pytest.fail(f"no notification {message!r} within {timeout}s; got {[n['message'] for n in notifications]}")
        time.sleep(0.05)


def funded_account(bank, headers, amount: str | None = None, **extra) -> dict:
    account = bank.open_account(headers, **extra)
    if amount is not None:
        bank.deposit(headers, account["id"], amount)
    return account


def assert_400_naming(response, field: str) -> None:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["status"] == 400
    assert body["error"] == "invalid_request"
    assert body["detail"]
    assert any(error["field"] == field for error in body["errors"]), body


# --- deposits and the seed's request ------------------------------------------------------


def test_the_seeds_deposit_request_works_as_written(bank):
    user, headers = bank.customer()
    account = bank.open_account(headers)

    # The seed's curl body: amount as the JSON number 200.00.
    response = bank.move(headers, {"account_id": account["id"], "type": "deposit", "amount": 200.00})

    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {
        "id",
        "type",
        "account_id",
        "to_account_id",
        "amount",
        "currency",
        "status",
        "reason",
        "description",
        "balance_after",
        "timestamp",
        "completed_at",
    }
    assert body["type"] == "deposit"
    assert body["account_id"] == account["id"]
    assert body["to_account_id"] is None
    assert body["amount"] == "200.00"
    assert body["currency"] == "USD"
    assert body["status"] == "completed"
    assert body["reason"] is None
    assert body["balance_after"] == "200.00"
    assert body["completed_at"] is not None
    assert bank.balance(headers, account["id"]) == "200.00"

    bank.deposit(headers, account["id"], "500.00")
    bank.deposit(headers, account["id"], 200.00)  # type: ignore[arg-type]

    assert bank.balance(headers, account["id"]) == "900.00"
    notifications = wait_for_message(bank, headers, "Deposit of $200.00 completed. New balance: $900.00")
    assert all(n["user_id"] == user["id"] for n in notifications)


def test_a_deposit_keeps_its_description(bank):
    _, headers = bank.customer()
    account = bank.open_account(headers)

    response = bank.move(
        headers, {"account_id": account["id"], "type": "deposit", "amount": "12.34", "description": "  salary  "}
    )

    assert response.status_code == 201, response.text
    assert response.json()["description"] == "salary"
    assert response.json()["amount"] == "12.34"


# --- withdrawals and transfers ---------------------------------------------------------------


def test_a_withdrawal_takes_money_out_and_tells_the_owner(bank):
    _, headers = bank.customer()
    account = funded_account(bank, headers, "100.00")

    moved = bank.withdraw(headers, account["id"], "30.25")

    assert moved["status"] == "completed"
    assert moved["type"] == "withdrawal"
    assert moved["amount"] == "30.25"
    assert moved["balance_after"] == "69.75"
    assert bank.balance(headers, account["id"]) == "69.75"
    wait_for_message(bank, headers, "Withdrawal of $30.25 completed. New balance: $69.75")


def test_withdrawing_the_whole_balance_leaves_zero(bank):
    _, headers = bank.customer()
    account = funded_account(bank, headers, "42.42")

    moved = bank.withdraw(headers, account["id"], "42.42")

    assert moved["status"] == "completed"
    assert bank.balance(headers, account["id"]) == "0.00"


def test_a_transfer_moves_money_between_two_customers(bank):
    _, ann = bank.customer(name="Ann Lee")
    _, bob = bank.customer(name="Bob Ray")
    source = funded_account(bank, ann, "100.00")
    target = bank.open_account(bob)

    moved = bank.transfer(ann, source["id"], target["id"], "25.00")

    assert moved["status"] == "completed"
    assert moved["type"] == "transfer"
    assert moved["account_id"] == source["id"]
    assert moved["to_account_id"] == target["id"]
    assert moved["balance_after"] == "75.00"
    assert bank.balance(ann, source["id"]) == "75.00"
    assert bank.balance(bob, target["id"]) == "25.00"

    wait_for_message(bank, ann, f"Transfer of $25.00 to account {target['id']} completed. New balance: $75.00")
    wait_for_message(
        bank, bob, f"Received $25.00 from account {source['id']} into account {target['id']}. New balance: $25.00"
    )

    # The transaction is Ann's: Bob does not see it in his history, but his statement shows the money.
    bobs_history = bank.http.get("/api/transactions", headers=bob)
    assert bobs_history.status_code == 200
    assert moved["id"] not in [t["id"] for t in bobs_history.json()]
    assert bank.http.get(f"/api/transactions/{moved['id']}", headers=bob).status_code == 404
    [credit] = bank.statement(bob, target["id"])
    assert credit["transaction_id"] == moved["id"]
    assert credit["amount"] == "25.00"
    assert credit["balance_after"] == "25.00"
    debit = bank.statement(ann, source["id"])[0]
    assert debit["transaction_id"] == moved["id"]
    assert debit["amount"] == "-25.00"
    assert debit["balance_after"] == "75.00"


def test_a_transfer_between_ones_own_accounts_notifies_once(bank):
    _, headers = bank.customer()
    checking = funded_account(bank, headers, "50.00")
    savings = bank.open_account(headers, "savings")

    moved = bank.transfer(headers, checking["id"], savings["id"], "20.00")

    assert moved["status"] == "completed"
    assert bank.balance(headers, checking["id"]) == "30.00"
    assert bank.balance(headers, savings["id"]) == "20.00"
    notifications = wait_for_message(
        bank, headers, f"Transfer of $20.00 to account {savings['id']} completed. New balance: $30.00"
    )
    assert [n for n in notifications if n["transaction_id"] == moved["id"]] == [
        n for n in notifications if n["message"].startswith("Transfer of $20.00")
    ]
    assert len([n for n in notifications if n["transaction_id"] == moved["id"]]) == 1


# --- refusals --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["withdrawal", "transfer"])
def test_an_overdraft_is_refused_and_changes_nothing(bank, kind):
    _, headers = bank.customer()
    account = funded_account(bank, headers, "10.00")
    other = bank.open_account(headers, "savings")
    body = {"account_id": account["id"], "type": kind, "amount": "10.01"}
    if kind == "transfer":
        body["to_account_id"] = other["id"]

    response = bank.move(headers, body)

    assert response.status_code == 201, response.text
    refused = response.json()
    assert refused["status"] == "rejected"
    assert refused["reason"] == "insufficient_funds"
    assert refused["balance_after"] is None
    assert bank.balance(headers, account["id"]) == "10.00"
    assert bank.balance(headers, other["id"]) == "0.00"
    assert len(bank.statement(headers, account["id"])) == 1
    assert bank.statement(headers, other["id"]) == []
    wait_for_message(bank, headers, f"{kind.capitalize()} of $10.01 rejected: insufficient funds.")


@pytest.mark.parametrize("kind", ["withdrawal", "transfer"])
def test_money_cannot_leave_someone_elses_account(bank, kind):
    _, ann = bank.customer(name="Ann Lee")
    _, bob = bank.customer(name="Bob Ray")
    bobs = funded_account(bank, bob, "50.00")
    anns = bank.open_account(ann)
    body = {"account_id": bobs["id"], "type": kind, "amount": "5.00"}
    if kind == "transfer":
        body["to_account_id"] = anns["id"]

    response = bank.move(ann, body)

    assert response.status_code == 201, response.text
    assert response.json()["status"] == "rejected"
    assert response.json()["reason"] == "account_not_found"
    assert bank.balance(bob, bobs["id"]) == "50.00"
    assert bank.balance(ann, anns["id"]) == "0.00"
    assert len(bank.statement(bob, bobs["id"])) == 1
    assert bank.statement(ann, anns["id"]) == []


def test_a_deposit_into_someone_elses_account_is_refused(bank):
    _, ann = bank.customer(name="Ann Lee")
    _, bob = bank.customer(name="Bob Ray")
    bobs = bank.open_account(bob)

    response = bank.move(ann, {"account_id": bobs["id"], "type": "deposit", "amount": "5.00"})

    assert response.status_code == 201, response.text
    assert response.json()["status"] == "rejected"
    assert response.json()["reason"] == "account_not_found"
    assert bank.balance(bob, bobs["id"]) == "0.00"
    assert bank.statement(bob, bobs["id"]) == []


def test_a_deposit_into_a_missing_account_is_refused(bank):
    _, headers = bank.customer()

    response = bank.move(headers, {"account_id": 424242, "type": "deposit", "amount": "5.00"})

    assert response.status_code == 201, response.text
    assert response.json()["status"] == "rejected"
    assert response.json()["reason"] == "account_not_found"


def test_a_transfer_to_a_missing_account_is_refused(bank):
    _, headers = bank.customer()
    account = funded_account(bank, headers, "50.00")

    response = bank.move(
        headers, {"account_id": account["id"], "type": "transfer", "amount": "5.00", "to_account_id": 424242}
    )

    assert response.status_code == 201, response.text
    assert response.json()["status"] == "rejected"
    assert response.json()["reason"] == "recipient_not_found"
    assert bank.balance(headers, account["id"]) == "50.00"
    assert len(bank.statement(headers, account["id"])) == 1


@pytest.mark.parametrize("same_owner", [True, False], ids=["own-accounts", "another-customer"])
def test_a_transfer_between_currencies_is_refused(bank, same_owner):
    _, ann = bank.customer(name="Ann Lee")
    _, bob = bank.customer(name="Bob Ray")
    dollars = funded_account(bank, ann, "50.00", currency="USD")
    receiver = ann if same_owner else bob
    euros = bank.open_account(receiver, currency="EUR")

    response = bank.move(
        ann, {"account_id": dollars["id"], "type": "transfer", "amount": "5.00", "to_account_id": euros["id"]}
    )

    assert response.status_code == 201, response.text
    assert response.json()["status"] == "rejected"
    assert response.json()["reason"] == "currency_mismatch"
    assert bank.balance(ann, dollars["id"]) == "50.00"
    assert bank.balance(receiver, euros["id"]) == "0.00"
    assert bank.statement(receiver, euros["id"]) == []


# --- idempotency -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "amount", "status"),
    [("deposit", "100.00", "completed"), ("withdrawal", "100.00", "rejected")],
    ids=["completed", "rejected"],
)
def test_a_repeated_request_answers_the_same_and_moves_money_once(bank, database_urls, kind, amount, status):
    _, headers = bank.customer()
    account = bank.open_account(headers)
    body = {"account_id": account["id"], "type": kind, "amount": amount}

    first = bank.move(headers, body, key="pay-rent-2024-06")
    second = bank.move(headers, body, key="pay-rent-2024-06")
    third = bank.move(headers, body, key="pay-rent-2024-06")

    assert first.status_code == second.status_code == third.status_code == 201
    assert first.json()["status"] == status
    assert second.json() == first.json()
    assert third.json() == first.json()
    assert transactions_in_db(database_urls) == 1
    expected_balance = "100.00" if kind == "deposit" else "0.00"
    assert bank.balance(headers, account["id"]) == expected_balance
    assert len(bank.statement(headers, account["id"])) == (1 if kind == "deposit" else 0)


def test_a_reused_key_with_a_different_body_is_a_409_and_moves_nothing(bank, database_urls):
    _, headers = bank.customer()
    account = bank.open_account(headers)
    bank.deposit(headers, account["id"], "100.00", key="k-1")

    response = bank.move(headers, {"account_id": account["id"], "type": "deposit", "amount": "150.00"}, key="k-1")

    assert response.status_code == 409, response.text
    assert response.json()["error"] == "idempotency_key_reused"
    assert transactions_in_db(database_urls) == 1
    assert bank.balance(headers, account["id"]) == "100.00"
    assert len(bank.statement(headers, account["id"])) == 1


def test_two_customers_may_use_the_same_key(bank, database_urls):
    _, ann = bank.customer(name="Ann Lee")
    _, bob = bank.customer(name="Bob Ray")
    anns, bobs = bank.open_account(ann), bank.open_account(bob)

    first = bank.deposit(ann, anns["id"], "10.00", key="same-key")
    second = bank.deposit(bob, bobs["id"], "20.00", key="same-key")

    assert first["status"] == second["status"] == "completed"
    assert first["id"] != second["id"]
    assert bank.balance(ann, anns["id"]) == "10.00"
    assert bank.balance(bob, bobs["id"]) == "20.00"
    assert transactions_in_db(database_urls) == 2


@pytest.mark.parametrize("key", [None, "", "   ", "k" * 256], ids=["missing", "empty", "blank", "too-long"])
def test_a_missing_or_bad_idempotency_key_is_a_400(bank, database_urls, key):
    _, headers = bank.customer()
    account = bank.open_account(headers)
    if key is not None:
        headers = {**headers, "Idempotency-Key": key}

    response = bank.http.post(
        "/api/transactions", json={"account_id": account["id"], "type": "deposit", "amount": "5.00"}, headers=headers
    )

    assert_400_naming(response, "Idempotency-Key")
    assert transactions_in_db(database_urls) == 0
    assert bank.balance(headers, account["id"]) == "0.00"


def test_a_key_of_255_characters_is_accepted(bank):
    _, headers = bank.customer()
    account = bank.open_account(headers)

    moved = bank.deposit(headers, account["id"], "5.00", key="k" * 255)

    assert moved["status"] == "completed"


# --- bad input: 400 and nothing written -----------------------------------------------------

# Raw JSON text for "amount", so that floats reach the server exactly as written.
BAD_AMOUNTS = {
    "zero": "0",
    "zero-string": '"0.00"',
    "negative": "-5",
    "negative-string": '"-5.00"',
    "negative-zero": '"-0"',
    "three-decimals-string": '"1.005"',
    "three-decimals-number": "1.005",
    "trailing-zero-third-decimal": '"1.000"',
    "huge-number": "1e30",
    "huge-string": '"99999999999999999999"',
    "over-one-billion": '"1000000000.01"',
    "abc": '"abc"',
    "empty-string": '""',
    "nan": '"NaN"',
    "infinity": '"Infinity"',
    "negative-infinity": '"-Infinity"',
    "true": "true",
    "null": "null",
    "float-sum": "0.30000000000000004",
    "list": "[5]",
    "object": '{"value": 5}',
}


@pytest.mark.parametrize("raw_amount", list(BAD_AMOUNTS.values()), ids=list(BAD_AMOUNTS))
def test_a_bad_amount_is_a_400_naming_amount_and_writes_nothing(bank, database_urls, raw_amount):
    _, headers = bank.customer()
    account = funded_account(bank, headers, "50.00")
    rows_before = transactions_in_db(database_urls)
    content = f'{{"account_id": {account["id"]}, "type": "deposit", "amount": {raw_amount}}}'

    response = bank.http.post(
        "/api/transactions",
        content=content.encode(),
        headers={**headers, "Idempotency-Key": "bad-amount", "Content-Type": "application/json"},
    )

    assert_400_naming(response, "amount")
    assert transactions_in_db(database_urls) == rows_before
    assert bank.balance(headers, account["id"]) == "50.00"


def test_a_missing_amount_is_a_400_naming_amount(bank, database_urls):
    _, headers = bank.customer()
    account = bank.open_account(headers)

    response = bank.move(headers, {"account_id": account["id"], "type": "deposit"})

    assert_400_naming(response, "amount")
    assert transactions_in_db(database_urls) == 0


@pytest.mark.parametrize(
    ("amount", "expected"),
    [("0.01", "0.01"), ("1000000000.00", "1000000000.00"), (1e2, "100.00"), ("7.5", "7.50"), (7, "7.00")],
    ids=["one-cent", "the-maximum", "json-number-with-exponent", "one-decimal", "integer"],
)
def test_a_good_amount_is_read_exactly(bank, amount, expected):
    _, headers = bank.customer()
    account = bank.open_account(headers)

    moved = bank.deposit(headers, account["id"], amount)  # type: ignore[arg-type]

    assert moved["amount"] == expected
    assert bank.balance(headers, account["id"]) == expected


@pytest.mark.parametrize(
    "amount",
    [
        pytest.param("1_000", id="underscore-grouping"),
        pytest.param("\u0661\u0660", id="arabic-indic-digits"),
        pytest.param("1e2", id="exponent-in-a-string"),
        pytest.param(" 5 ", id="padded"),
        pytest.param("+5", id="plus-sign"),
    ],
)
def test_an_amount_in_non_decimal_syntax_is_refused(bank, database_urls, amount):
    _, headers = bank.customer()
    account = bank.open_account(headers)

    response = bank.move(headers, {"account_id": account["id"], "type": "deposit", "amount": amount})

    assert_400_naming(response, "amount")
    assert transactions_in_db(database_urls) == 0
    assert bank.balance(headers, account["id"]) == "0.00"


def _transfer_without_target(a, b):
    return {"account_id": a, "type": "transfer", "amount": "5.00"}, "to_account_id"


def _transfer_to_itself(a, b):
    return {"account_id": a, "type": "transfer", "amount": "5.00", "to_account_id": a}, "to_account_id"


def _deposit_with_target(a, b):
    return {"account_id": a, "type": "deposit", "amount": "5.00", "to_account_id": b}, "to_account_id"


def _withdrawal_with_target(a, b):
    return {"account_id": a, "type": "withdrawal", "amount": "5.00", "to_account_id": b}, "to_account_id"


def _unknown_type(a, b):
    return {"account_id": a, "type": "payment", "amount": "5.00"}, "type"


def _type_in_capitals(a, b):
    return {"account_id": a, "type": "DEPOSIT", "amount": "5.00"}, "type"


def _unknown_field(a, b):
    return {"account_id": a, "type": "deposit", "amount": "5.00", "currency": "USD"}, "currency"


def _account_id_zero(a, b):
    return {"account_id": 0, "type": "deposit", "amount": "5.00"}, "account_id"


def _account_id_too_big(a, b):
    return {"account_id": 2**63, "type": "deposit", "amount": "5.00"}, "account_id"


def _to_account_id_too_big(a, b):
    return {"account_id": a, "type": "transfer", "amount": "5.00", "to_account_id": 2**63}, "to_account_id"


def _long_description(a, b):
    return {"account_id": a, "type": "deposit", "amount": "5.00", "description": "x" * 201}, "description"


def _control_character_description(a, b):
    return {"account_id": a, "type": "deposit", "amount": "5.00", "description": "rent\x00"}, "description"


@pytest.mark.parametrize(
    "build",
    [
        _transfer_without_target,
        _transfer_to_itself,
        _deposit_with_target,
        _withdrawal_with_target,
        _unknown_type,
        _type_in_capitals,
        _unknown_field,
        _account_id_zero,
        _account_id_too_big,
        _to_account_id_too_big,
        _long_description,
        _control_character_description,
    ],
    ids=lambda build: build.__name__.strip("_").replace("_", "-"),
)
def test_an_invalid_request_is_a_400_and_writes_nothing(bank, database_urls, build):
    _, headers = bank.customer()
    account = funded_account(bank, headers, "50.00")
    other = bank.open_account(headers, "savings")
    rows_before = transactions_in_db(database_urls)
    body, field = build(account["id"], other["id"])

    response = bank.move(headers, body)

    assert_400_naming(response, field)
    assert transactions_in_db(database_urls) == rows_before
    assert bank.balance(headers, account["id"]) == "50.00"
    assert bank.balance(headers, other["id"]) == "0.00"


# Raw bodies a lenient decoder would have taken as a deposit (or, with the repeated type, a withdrawal).
LOOSE_BODIES = {
    "account-id-as-string": ('{"account_id": "%(id)s", "type": "deposit", "amount": "5.00"}', "account_id"),
    "account-id-as-float": ('{"account_id": %(id)s.0, "type": "deposit", "amount": "5.00"}', "account_id"),
    "repeated-key": ('{"account_id": %(id)s, "type": "deposit", "type": "withdrawal", "amount": "5.00"}', "type"),
    "repeated-key-beside-a-colon": (
        '{"account_id": %(id)s, "description": "a:b", "amount": "5.00", "amount": "9.00", "type": "deposit"}',
        "amount",
    ),
    "nested-1000-deep": ('{"account_id": %(id)s, "amount": ' + "[" * 1000 + "]" * 1000 + "}", "body"),
    "not-json": ('{"account_id": %(id)s, "type": ', "body"),
    "empty": ("", "body"),
}


@pytest.mark.parametrize(("raw", "field"), list(LOOSE_BODIES.values()), ids=list(LOOSE_BODIES))
def test_a_loose_body_is_a_400_naming_the_field_and_writes_nothing(bank, database_urls, raw, field):
    _, headers = bank.customer()
    account = funded_account(bank, headers, "50.00")
    rows_before = transactions_in_db(database_urls)

    response = bank.http.post(
        "/api/transactions",
        content=(raw % {"id": account["id"]}).encode(),
        headers={**headers, "Idempotency-Key": "loose", "Content-Type": "application/json"},
    )

    assert_400_naming(response, field)
    assert transactions_in_db(database_urls) == rows_before
    assert bank.balance(headers, account["id"]) == "50.00"


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/xml", None],
    ids=["text", "form", "multipart", "xml", "none"],
)
def test_a_body_that_is_not_json_is_a_415_and_writes_nothing(bank, database_urls, content_type):
    _, headers = bank.customer()
    account = bank.open_account(headers)
    sent = {**headers, "Idempotency-Key": "media"} | ({"Content-Type": content_type} if content_type else {})

    body = f'{{"account_id": {account["id"]}, "type": "deposit", "amount": "5.00"}}'
    response = bank.http.post("/api/transactions", content=body.encode(), headers=sent)

    assert response.status_code == 415, response.text
    assert response.json()["error"] == "unsupported_media_type"
    assert transactions_in_db(database_urls) == 0


def test_a_json_media_type_with_a_suffix_or_charset_is_taken(bank):
    _, headers = bank.customer()
    account = bank.open_account(headers)
    body = f'{{"account_id": {account["id"]}, "type": "deposit", "amount": "5.00"}}'.encode()

    for n, media_type in enumerate(["application/json; charset=utf-8", "application/vnd.microbank+json"]):
        sent = {**headers, "Idempotency-Key": f"suffix-{n}", "Content-Type": media_type}
        assert bank.http.post("/api/transactions", content=body, headers=sent).status_code == 201

    assert bank.balance(headers, account["id"]) == "10.00"


def test_a_description_of_200_characters_is_accepted(bank):
    _, headers = bank.customer()
    account = bank.open_account(headers)

    response = bank.move(
        headers, {"account_id": account["id"], "type": "deposit", "amount": "5.00", "description": "x" * 200}
    )

    assert response.status_code == 201, response.text
    assert response.json()["description"] == "x" * 200


def test_moving_money_needs_a_token(bank, database_urls):
    _, headers = bank.customer()
    account = bank.open_account(headers)

    response = bank.http.post(
        "/api/transactions",
        json={"account_id": account["id"], "type": "deposit", "amount": "5.00"},
        headers={"Idempotency-Key": "no-token"},
    )

    assert response.status_code == 401, response.text
    assert transactions_in_db(database_urls) == 0


# --- history -------------------------------------------------------------------------------


@pytest.fixture
def history(bank):
    """Ann's five transactions on two accounts, oldest first, and Bob who has one of his own."""
    _, ann = bank.customer(name="Ann Lee")
    _, bob = bank.customer(name="Bob Ray")
    checking = bank.open_account(ann)
    savings = bank.open_account(ann, "savings")
    bobs = bank.open_account(bob)
    moves = [
        bank.deposit(ann, checking["id"], "100.00"),
        bank.withdraw(ann, checking["id"], "10.00"),
        bank.transfer(ann, checking["id"], savings["id"], "20.00"),
        bank.withdraw(ann, savings["id"], "500.00"),  # rejected
        bank.deposit(ann, savings["id"], "1.00"),
    ]
    bank.deposit(bob, bobs["id"], "3.00")
    return {"ann": ann, "bob": bob, "checking": checking, "savings": savings, "moves": moves}


def _ids(response) -> list[int]:
    assert response.status_code == 200, response.text
    return [t["id"] for t in response.json()]


def test_history_lists_the_callers_transactions_newest_first(bank, history):
    response = bank.http.get("/api/transactions", headers=history["ann"])

    assert _ids(response) == [m["id"] for m in reversed(history["moves"])]
    assert response.json() == list(reversed(history["moves"]))
    assert "X-Next-Cursor" not in response.headers


@pytest.mark.parametrize(
    ("query", "indexes"),
    [
        ({"type": "deposit"}, [4, 0]),
        ({"type": "withdrawal"}, [3, 1]),
        ({"type": "transfer"}, [2]),
        ({"status": "rejected"}, [3]),
        ({"status": "completed"}, [4, 2, 1, 0]),
        ({"type": "withdrawal", "status": "completed"}, [1]),
        ({"account_id": "checking"}, [2, 1, 0]),
        ({"account_id": "savings"}, [4, 3, 2]),
    ],
    ids=str,
)
def test_history_filters(bank, history, query, indexes):
    if "account_id" in query:
        query = {"account_id": history[query["account_id"]]["id"]}

    response = bank.http.get("/api/transactions", params=query, headers=history["ann"])

    assert _ids(response) == [history["moves"][i]["id"] for i in indexes]


def test_history_pages_through_the_next_cursor(bank, history):
    pages, params = [], {"limit": 2}
    while True:
        response = bank.http.get("/api/transactions", params=params, headers=history["ann"])
        pages.append(_ids(response))
        cursor = response.headers.get("X-Next-Cursor")
        if cursor is None:
            break
        params = {"limit": 2, "cursor": cursor}
        assert len(pages) < 10

    newest_first = [m["id"] for m in reversed(history["moves"])]
    assert pages == [newest_first[0:2], newest_first[2:4], newest_first[4:]]


@pytest.mark.parametrize("query", [{"limit": 0}, {"limit": 101}, {"type": "payment"}, {"status": "done"}], ids=str)
def test_history_refuses_bad_filters(bank, history, query):
    response = bank.http.get("/api/transactions", params=query, headers=history["ann"])

    assert_400_naming(response, next(iter(query)))


def test_one_transaction_by_id(bank, history):
    transfer = history["moves"][2]

    response = bank.http.get(f"/api/transactions/{transfer['id']}", headers=history["ann"])

    assert response.status_code == 200, response.text
    assert response.json() == transfer


def test_another_customers_transaction_is_not_found(bank, history):
    anns = history["moves"][0]["id"]

    assert bank.http.get(f"/api/transactions/{anns}", headers=history["bob"]).status_code == 404
    assert bank.http.get("/api/transactions/987654", headers=history["ann"]).status_code == 404
    assert anns not in _ids(bank.http.get("/api/transactions", headers=history["bob"]))


# --- statements ------------------------------------------------------------------------------


def test_the_statement_lists_signed_postings_newest_first_with_running_balances(bank):
    _, ann = bank.customer(name="Ann Lee")
    _, bob = bank.customer(name="Bob Ray")
    account = bank.open_account(ann)
    bobs = funded_account(bank, bob, "10.00")
    moves = [
        bank.deposit(ann, account["id"], "100.00"),
        bank.withdraw(ann, account["id"], "30.00"),
        bank.transfer(ann, account["id"], bobs["id"], "20.00"),
        bank.withdraw(ann, account["id"], "1000.00"),  # rejected: no posting
        bank.transfer(bob, bobs["id"], account["id"], "5.00"),
    ]

    statement = bank.statement(ann, account["id"])

    assert [p["transaction_id"] for p in statement] == [moves[i]["id"] for i in (4, 2, 1, 0)]
    assert [p["amount"] for p in statement] == ["5.00", "-20.00", "-30.00", "100.00"]
    assert [p["balance_after"] for p in statement] == ["55.00", "50.00", "70.00", "100.00"]
    assert bank.balance(ann, account["id"]) == statement[0]["balance_after"]
    ids = [p["id"] for p in statement]
    assert ids == sorted(ids, reverse=True)


def test_the_statement_pages_through_the_next_cursor(bank):
    _, headers = bank.customer()
    account = bank.open_account(headers)
    for amount in ("1.00", "2.00", "3.00"):
        bank.deposit(headers, account["id"], amount)

    first = bank.http.get(f"/api/accounts/{account['id']}/postings", params={"limit": 2}, headers=headers)
    second = bank.http.get(
        f"/api/accounts/{account['id']}/postings",
        params={"limit": 2, "cursor": first.headers["X-Next-Cursor"]},
        headers=headers,
    )

    assert [p["amount"] for p in first.json()] == ["3.00", "2.00"]
    assert [p["amount"] for p in second.json()] == ["1.00"]
    assert "X-Next-Cursor" not in second.headers


def test_another_customers_statement_is_not_found(bank):
    _, ann = bank.customer(name="Ann Lee")
    _, bob = bank.customer(name="Bob Ray")
    bobs = funded_account(bank, bob, "10.00")

    response = bank.http.get(f"/api/accounts/{bobs['id']}/postings", headers=ann)

    assert response.status_code == 404, response.text
    assert bank.http.get("/api/accounts/987654/postings", headers=ann).status_code == 404


# --- the internal postings endpoint ---------------------------------------------------------


def _postings_request(user: dict, account: dict, **overrides) -> dict:
    return {
        "transaction_id": 999001,
        "type": "deposit",
        "user_id": user["id"],
        "account_id": account["id"],
        "amount_minor": 1234,
        **overrides,
    }


@pytest.mark.parametrize(
    "token", [None, "", "wrong-token", SERVICE_TOKEN + "x"], ids=["none", "empty", "wrong", "longer"]
)
def test_internal_postings_refuse_callers_without_the_service_token(bank, database_urls, token):
    user, headers = bank.customer()
    account = bank.open_account(headers)
    service_headers = {} if token is None else {"X-Service-Token": token}

    response = bank.http.post("/internal/postings", json=_postings_request(user, account), headers=service_headers)

    assert response.status_code == 403, response.text
    assert postings_in_db(database_urls) == 0
    assert bank.balance(headers, account["id"]) == "0.00"


def test_internal_postings_refuse_a_customer_token(bank, database_urls):
    user, headers = bank.customer()
    account = bank.open_account(headers)

    response = bank.http.post("/internal/postings", json=_postings_request(user, account), headers=headers)

    assert response.status_code == 403, response.text
    assert postings_in_db(database_urls) == 0


def test_internal_postings_apply_once_per_transaction_id(bank, database_urls):
    user, headers = bank.customer()
    account = bank.open_account(headers)
    service = {"X-Service-Token": SERVICE_TOKEN}

    first = bank.http.post("/internal/postings", json=_postings_request(user, account), headers=service)
    second = bank.http.post("/internal/postings", json=_postings_request(user, account), headers=service)

    assert first.status_code == 200, first.text
    assert first.json()["transaction_id"] == 999001
    assert first.json()["status"] == "completed"
    assert first.json()["balance_after_minor"] == 1234
    assert second.status_code == 200, second.text
    assert second.json() == first.json()
    assert postings_in_db(database_urls) == 1
    assert bank.balance(headers, account["id"]) == "12.34"
    [posting] = bank.statement(headers, account["id"])
    assert posting["transaction_id"] == 999001
    assert posting["amount"] == "12.34"


def test_internal_postings_repeat_a_refusal_too(bank, database_urls):
    user, headers = bank.customer()
    account = bank.open_account(headers)
    service = {"X-Service-Token": SERVICE_TOKEN}
    request = _postings_request(user, account, transaction_id=999002, type="withdrawal")

    first = bank.http.post("/internal/postings", json=request, headers=service)
    bank.deposit(headers, account["id"], "100.00")
    second = bank.http.post("/internal/postings", json=request, headers=service)

    assert first.status_code == second.status_code == 200
    assert first.json()["status"] == "rejected"
    assert first.json()["reason"] == "insufficient_funds"
    assert second.json() == first.json()
    assert bank.balance(headers, account["id"]) == "100.00"


@pytest.mark.parametrize("amount_minor", [-500, 0], ids=["negative", "zero"])
def test_internal_postings_refuse_a_non_positive_amount(bank, database_urls, amount_minor):
    user, headers = bank.customer()
    account = funded_account(bank, headers, "10.00")
    service = {"X-Service-Token": SERVICE_TOKEN}

    response = bank.http.post(
        "/internal/postings",
        json=_postings_request(user, account, transaction_id=999003, amount_minor=amount_minor),
        headers=service,
    )

    assert response.status_code == 400, response.text
    assert bank.balance(headers, account["id"]) == "10.00"
    assert postings_in_db(database_urls) == 1


# --- the audit --------------------------------------------------------------------------------


def mixed_day(bank) -> dict:
    """A day of deposits, withdrawals, transfers and every kind of refusal between two customers."""
    _, ann = bank.customer(name="Ann Lee")
    _, bob = bank.customer(name="Bob Ray")
    anns = bank.open_account(ann)
    anns_savings = bank.open_account(ann, "savings")
    bobs = bank.open_account(bob)
    euros = bank.open_account(bob, currency="EUR")
    bank.deposit(ann, anns["id"], "300.00")
    bank.deposit(bob, bobs["id"], "50.00")
    bank.withdraw(ann, anns["id"], "20.00")
    bank.transfer(ann, anns["id"], bobs["id"], "80.00")
    bank.transfer(ann, anns["id"], anns_savings["id"], "100.00")
    bank.transfer(bob, bobs["id"], anns["id"], "10.00")
    bank.withdraw(bob, bobs["id"], "1000.00")  # insufficient funds
    bank.transfer(bob, bobs["id"], euros["id"], "1.00")  # currency mismatch
    bank.deposit(bob, anns["id"], "1.00")  # someone else's account
    bank.transfer(ann, anns["id"], 424242, "1.00")  # recipient not found
    assert bank.balance(ann, anns["id"]) == "110.00"
    assert bank.balance(ann, anns_savings["id"]) == "100.00"
    assert bank.balance(bob, bobs["id"]) == "120.00"
    return {"ann": ann, "bob": bob, "anns": anns, "bobs": bobs}


def corrupt(database_url: str, sql: str, **params) -> None:
    engine = create_engine(database_url)
    try:
        with engine.begin() as connection:
            connection.execute(text(sql), params)
    finally:
        engine.dispose()


def test_the_audit_is_clean_after_a_mixed_day(bank):
    day = mixed_day(bank)

    report = audit_once_idle()

    assert report.clean, report.render()
    assert report.checked["accounts"] == 4
    assert report.checked["transactions"] == 10
    # The two transfers between Ann and Bob tell both of them; every other transaction tells its initiator.
    for who in ("ann", "bob"):
        about_money = [n for n in bank.notifications(day[who]) if n["transaction_id"] is not None]
        assert len(about_money) == 6, about_money
    assert report.render().endswith("audit clean")


def test_the_audit_names_an_account_whose_balance_was_corrupted(bank, database_urls):
    day = mixed_day(bank)
    assert audit_once_idle().clean
    bobs = day["bobs"]["id"]

    corrupt(database_urls["accounts"], "UPDATE accounts SET balance_minor = balance_minor + 1 WHERE id = :id", id=bobs)
    report = audit()

    assert not report.clean
    assert report.discrepancies == [f"account {bobs}: balance 120.01 != sum of postings 120.00"]
    assert f"account {bobs}" in report.render()


def test_the_audit_names_a_lost_notification(bank, database_urls):
    mixed_day(bank)
    assert audit_once_idle().clean

    corrupt(database_urls["notifications"], "DELETE FROM notifications WHERE id = (SELECT min(id) FROM notifications)")
    report = audit()

    assert not report.clean
    [discrepancy] = report.discrepancies
    assert "notified 0 times" in discrepancy
