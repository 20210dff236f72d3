"""Accounts over HTTP: open, list and look up; a customer only ever sees their own."""

from __future__ import annotations

import pytest

from tests.factories import count_rows, make_admin


def accounts_in_db(database_urls) -> int:
    return count_rows(database_urls["accounts"], "accounts")


def admin_headers(bank, database_urls) -> tuple[dict, dict[str, str]]:
    admin = bank.sign_up(name="Ada Admin")
    make_admin(database_urls["users"], admin["email"])
    return admin, bank.log_in(admin["email"])


# --- open ------------------------------------------------------------------------------


@pytest.mark.parametrize("account_type", ["checking", "savings"])
@pytest.mark.parametrize("currency", ["USD", "EUR", "CHF"])
def test_open_an_account(bank, database_urls, account_type, currency):
    user, headers = bank.customer()

    response = bank.http.post(
        "/api/accounts", json={"account_type": account_type, "currency": currency}, headers=headers
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"id", "user_id", "account_type", "currency", "balance", "created_at"}
    assert body["user_id"] == user["id"]
    assert body["account_type"] == account_type
    assert body["currency"] == currency
    assert body["balance"] == "0.00"
    assert accounts_in_db(database_urls) == 1


def test_the_currency_defaults_to_usd(bank):
    _, headers = bank.customer()
    response = bank.http.post("/api/accounts", json={"account_type": "savings"}, headers=headers)
    assert response.status_code == 201
    assert response.json()["currency"] == "USD"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"account_type": "gold"}, "account_type"),
        ({"account_type": "Checking"}, "account_type"),
        ({"currency": "USD"}, "account_type"),
        ({"account_type": "checking", "currency": "JPY"}, "currency"),
        ({"account_type": "checking", "currency": "usd"}, "currency"),
        ({"account_type": "checking", "currency": None}, "currency"),
        ({"account_type": "checking", "balance": 1000.00}, "balance"),
        ({"account_type": "checking", "user_id": 2}, "user_id"),
    ],
    ids=[
        "bad-type",
        "type-wrong-case",
        "missing-type",
        "bad-currency",
        "currency-lower-case",
        "currency-null",
        "seeded-balance",
        "someone-elses-user-id",
    ],
)
def test_an_invalid_account_is_a_400_and_writes_nothing(bank, database_urls, payload, field):
    _, headers = bank.customer()

    response = bank.http.post("/api/accounts", json=payload, headers=headers)

    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] == "invalid_request"
    assert any(e["field"] == field or f"`{field}`" in e["message"] for e in body["errors"]), body
    assert accounts_in_db(database_urls) == 0


@pytest.mark.parametrize("content", [b"{oops", b"[]", b'"checking"'], ids=["malformed", "array", "string"])
def test_a_body_that_is_not_a_json_object_is_a_400(bank, database_urls, content):
    _, headers = bank.customer()
    response = bank.http.post("/api/accounts", content=content, headers={**headers, "Content-Type": "application/json"})
    assert response.status_code == 400
    assert accounts_in_db(database_urls) == 0


def test_opening_an_account_needs_a_token(bank, database_urls):
    response = bank.http.post("/api/accounts", json={"account_type": "checking"})
    assert response.status_code == 401
    assert response.json()["error"] == "unauthenticated"
    assert accounts_in_db(database_urls) == 0


# --- list and look up ------------------------------------------------------------------


def test_a_customer_lists_only_their_own_accounts(bank):
    _, ann = bank.customer()
    _, bob = bank.customer()
    ann_accounts = [bank.open_account(ann), bank.open_account(ann, "savings", currency="EUR")]
    bob_accounts = [bank.open_account(bob)]

    assert bank.http.get("/api/accounts", headers=ann).json() == ann_accounts
    assert bank.http.get("/api/accounts", headers=bob).json() == bob_accounts


def test_a_customer_without_accounts_gets_an_empty_list(bank):
    _, ann = bank.customer()
    _, bob = bank.customer()
    bank.open_account(bob)

    response = bank.http.get("/api/accounts", headers=ann)

    assert response.status_code == 200
    assert response.json() == []


def test_listing_accounts_needs_a_token(bank):
    assert bank.http.get("/api/accounts").status_code == 401


def test_a_customer_gets_their_own_account(bank):
    _, headers = bank.customer()
    account = bank.open_account(headers, "savings")

    response = bank.http.get(f"/api/accounts/{account['id']}", headers=headers)

    assert response.status_code == 200
    assert response.json() == account


def test_someone_elses_account_looks_exactly_like_a_missing_one(bank):
    _, owner = bank.customer()
    _, snoop = bank.customer()
    theirs = bank.open_account(owner)["id"]
    missing = theirs + 1000

    other = bank.http.get(f"/api/accounts/{theirs}", headers=snoop)
    absent = bank.http.get(f"/api/accounts/{missing}", headers=snoop)

    assert other.status_code == absent.status_code == 404
    assert other.json()["error"] == "account_not_found"
    assert other.text.replace(str(theirs), "{id}") == absent.text.replace(str(missing), "{id}")
    assert "user_id" not in other.text


def test_getting_an_account_needs_a_token(bank):
    _, headers = bank.customer()
    account = bank.open_account(headers)
    assert bank.http.get(f"/api/accounts/{account['id']}").status_code == 401


@pytest.mark.parametrize("account_id", ["0", "-1", "99999999999999999999", str(2**63)])
def test_an_id_out_of_range_is_a_400(bank, account_id):
    _, headers = bank.customer()

    response = bank.http.get(f"/api/accounts/{account_id}", headers=headers)

    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid_request"
    assert [e["field"] for e in body["errors"]] == ["account_id"]


def test_the_largest_id_is_merely_not_found(bank):
    _, headers = bank.customer()
    response = bank.http.get(f"/api/accounts/{2**63 - 1}", headers=headers)
    assert response.status_code == 404
    assert response.json()["error"] == "account_not_found"


def test_an_id_that_is_not_a_number_is_no_route(bank):
    _, headers = bank.customer()
    response = bank.http.get("/api/accounts/abc", headers=headers)
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


# --- admin -----------------------------------------------------------------------------


def test_an_admin_sees_every_users_accounts(bank, database_urls):
    _, ann = bank.customer()
    _, bob = bank.customer()
    everyone = [bank.open_account(ann), bank.open_account(bob, "savings"), bank.open_account(ann)]
    _, admin = admin_headers(bank, database_urls)

    assert bank.http.get("/api/accounts", headers=admin).json() == everyone
    for account in everyone:
        response = bank.http.get(f"/api/accounts/{account['id']}", headers=admin)
        assert response.status_code == 200
        assert response.json() == account


def test_an_admins_own_account_belongs_to_the_admin(bank, database_urls):
    admin, headers = admin_headers(bank, database_urls)
    account = bank.open_account(headers)
    assert account["user_id"] == admin["id"]


# --- paging ----------------------------------------------------------------------------


def test_accounts_are_paged_with_a_cursor(bank):
    _, headers = bank.customer()
    _, other = bank.customer()
    mine = []
    for _ in range(3):
        mine.append(bank.open_account(headers))
        bank.open_account(other)  # interleaved: pages must skip them

    first = bank.http.get("/api/accounts", params={"limit": 2}, headers=headers)
    assert first.status_code == 200
    assert first.json() == mine[:2]
    cursor = first.headers["X-Next-Cursor"]

    second = bank.http.get("/api/accounts", params={"limit": 2, "cursor": cursor}, headers=headers)
    assert second.status_code == 200
    assert second.json() == mine[2:]
    assert "X-Next-Cursor" not in second.headers


def test_the_link_header_leads_to_the_next_page(bank):
    _, headers = bank.customer()
    mine = [bank.open_account(headers) for _ in range(3)]

    first = bank.http.get("/api/accounts", params={"limit": 2}, headers=headers)
    link = first.headers["Link"]
    assert link.endswith('>; rel="next"')
    next_url = link[1 : link.index(">")]

    assert bank.http.get(next_url, headers=headers).json() == mine[2:]


def test_a_full_last_page_has_no_next_cursor(bank):
    _, headers = bank.customer()
    mine = [bank.open_account(headers) for _ in range(2)]

    response = bank.http.get("/api/accounts", params={"limit": 2}, headers=headers)

    assert response.json() == mine
    assert "X-Next-Cursor" not in response.headers


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"cursor": 0}, "cursor"),
        ({"cursor": "x"}, "cursor"),
    ],
)
def test_out_of_range_paging_is_a_400(bank, params, field):
    _, headers = bank.customer()
    response = bank.http.get("/api/accounts", params=params, headers=headers)
    assert response.status_code == 400
    assert [e["field"] for e in response.json()["errors"]] == [field]


# --- the accounts role on its own ------------------------------------------------------


def test_the_accounts_role_serves_accounts_with_tokens_from_the_users_role(client_for, database_urls):
    users = client_for("users")
    accounts = client_for("accounts")
    user, headers = users.customer()

    opened = accounts.open_account(headers, "savings", currency="GBP")

    assert opened["user_id"] == user["id"]
    assert opened["balance"] == "0.00"
    assert accounts.http.get("/api/accounts", headers=headers).json() == [opened]
    assert accounts.http.get(f"/api/accounts/{opened['id']}", headers=headers).json() == opened
    assert accounts_in_db(database_urls) == 1

    _, stranger = users.customer()
    assert accounts.http.get(f"/api/accounts/{opened['id']}", headers=stranger).status_code == 404
    assert accounts.http.post("/api/accounts", json={"account_type": "checking"}).status_code == 401
