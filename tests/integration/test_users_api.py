"""Users over HTTP: sign up, log in, who am I, and the admin's list of users."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from microbank.platform.auth import Caller, TokenIssuer, generate_keypair
from tests.factories import PASSWORD, BankClient, bearer, count_rows, make_admin, metric_value, query_value

VALID = {"name": "Ann Lee", "email": "ann@example.com", "password": PASSWORD}


def users_in_db(database_urls) -> int:
    return count_rows(database_urls["users"], "users")


# --- sign up ---------------------------------------------------------------------------


def test_sign_up_returns_the_new_customer(bank, database_urls):
    response = bank.http.post(
        "/api/users", json={"name": "  Ann Lee ", "email": " Ann.Lee@Example.COM ", "password": PASSWORD}
    )

    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"id", "name", "email", "role", "created_at"}
    assert isinstance(body["id"], int)
    assert body["name"] == "Ann Lee"
    assert body["email"] == "ann.lee@example.com"
    assert body["role"] == "customer"
    assert body["created_at"]
    assert PASSWORD not in response.text
    assert "scrypt" not in response.text
    assert "password" not in response.text
    assert users_in_db(database_urls) == 1


def test_an_email_is_taken_whatever_its_case(bank, database_urls):
    bank.sign_up(email="ann@example.com")

    response = bank.http.post("/api/users", json={**VALID, "email": "ANN@Example.com"})

    assert response.status_code == 409
    body = response.json()
    assert body["status"] == 409
    assert body["error"] == "email_taken"
    assert body["errors"][0]["field"] == "email"
    assert users_in_db(database_urls) == 1


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"name": "Ann Lee", "email": "ann@example.com"}, "password"),
        ({"email": "ann@example.com", "password": PASSWORD}, "name"),
        ({**VALID, "role": "admin"}, "role"),
        ({**VALID, "password": "x" * 11}, "password"),
        ({**VALID, "name": "   "}, "name"),
        ({**VALID, "name": ""}, "name"),
        ({**VALID, "name": "n" * 101}, "name"),
        ({**VALID, "name": 42}, "name"),
        ({**VALID, "email": "not-an-email"}, "email"),
        ({**VALID, "email": "ann@example"}, "email"),
        ({**VALID, "email": "ann lee@example.com"}, "email"),
        ({**VALID, "password": None}, "password"),
    ],
    ids=[
        "missing-password",
        "missing-name",
        "unknown-field",
        "password-11-chars",
        "blank-name",
        "empty-name",
        "name-101-chars",
        "name-not-a-string",
        "email-no-at",
        "email-no-dot",
        "email-with-space",
        "password-null",
    ],
)
def test_an_invalid_sign_up_is_a_400_naming_the_field_and_writes_nothing(bank, database_urls, payload, field):
    response = bank.http.post("/api/users", json=payload)

    assert response.status_code == 400, response.text
    body = response.json()
    assert body["status"] == 400
    assert body["error"] == "invalid_request"
    assert body["detail"]
    # The field is named: as the error's field, or (for missing/unknown keys) in its message.
    assert any(e["field"] == field or f"`{field}`" in e["message"] for e in body["errors"]), body
    assert users_in_db(database_urls) == 0


def test_a_name_of_exactly_100_characters_is_accepted(bank):
    assert bank.sign_up(name="n" * 100)["name"] == "n" * 100


def test_a_password_of_exactly_12_characters_is_accepted(bank):
    user = bank.sign_up(password="x" * 12)
    assert bank.log_in(user["email"], "x" * 12)


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b"{not json", "application/json"),
        (b"", "application/json"),
        (b'[{"name": "Ann Lee", "email": "ann@example.com", "password": "x"}]', "application/json"),
        (b'"ann@example.com"', "application/json"),
        (b"null", "application/json"),
    ],
    ids=["malformed", "empty", "array", "string", "null"],
)
def test_a_body_that_is_not_a_json_object_is_a_400_and_writes_nothing(bank, database_urls, content, content_type):
    response = bank.http.post("/api/users", content=content, headers={"Content-Type": content_type})

    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_request"
    assert users_in_db(database_urls) == 0


@pytest.mark.parametrize(
    ("payload", "field"),
    [({"name": "Ann Lee", "email": "ann@example.com"}, "password"), ({**VALID, "role": "admin"}, "role")],
    ids=["missing", "unknown"],
)
def test_the_error_field_is_the_body_key_not_data(bank, payload, field):
    response = bank.http.post("/api/users", json=payload)
    assert response.status_code == 400
    assert [e["field"] for e in response.json()["errors"]] == [field]


@pytest.mark.parametrize(
    "payload",
    [{**VALID, "name": "Ann\x00Lee"}, {**VALID, "email": "ann\x00@example.com"}],
    ids=["name", "email"],
)
def test_a_nul_character_in_sign_up_is_a_400(bank, database_urls, payload):
    response = bank.http.post("/api/users", json=payload)
    assert response.status_code == 400, response.text
    assert users_in_db(database_urls) == 0


# --- log in ----------------------------------------------------------------------------


def test_log_in_issues_a_bearer_token(bank):
    bank.sign_up(email="ann@example.com")

    response = bank.http.post("/api/auth/token", json={"email": "ann@example.com", "password": PASSWORD})

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in"}
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 900
    me = bank.http.get("/api/users/me", headers=bearer(body["access_token"]))
    assert me.status_code == 200
    assert me.json()["email"] == "ann@example.com"


def test_log_in_ignores_the_case_and_spaces_of_the_email(bank):
    bank.sign_up(email="ann@example.com")
    response = bank.http.post("/api/auth/token", json={"email": " ANN@example.com ", "password": PASSWORD})
    assert response.status_code == 200


def test_a_wrong_password_and_an_unknown_email_are_refused_alike(bank):
    bank.sign_up(email="ann@example.com")

    wrong_password = bank.http.post(
        "/api/auth/token", json={"email": "ann@example.com", "password": "not the password"}
    )
    unknown_email = bank.http.post("/api/auth/token", json={"email": "nobody@example.com", "password": PASSWORD})

    assert wrong_password.status_code == unknown_email.status_code == 401
    assert wrong_password.json() == unknown_email.json()
    assert wrong_password.json()["error"] == "invalid_credentials"
    assert "access_token" not in wrong_password.text


def test_a_nul_character_in_the_login_email_is_refused_not_a_crash(bank):
    response = bank.http.post("/api/auth/token", json={"email": "ann\x00@example.com", "password": PASSWORD})
    assert response.status_code in (400, 401), response.text


# --- log-in throttling -----------------------------------------------------------------


def log_in_as(http, email: str, password: str, *, address: str | None = None):
    """POST /api/auth/token; `address` poses as that client (X-Forwarded-For, which a role trusts
    from 127.0.0.1, as it would from its proxy)."""
    headers = {"X-Forwarded-For": address} if address else {}
    return http.post("/api/auth/token", json={"email": email, "password": password}, headers=headers)


def test_a_sixth_attempt_from_one_address_within_5_minutes_is_refused_even_with_the_right_password(bank):
    bank.sign_up(email="ann@example.com")
    bank.sign_up(email="bob@example.com")

    guesses = [log_in_as(bank.http, "ann@example.com", f"guess number {n}").status_code for n in range(5)]
    refused = log_in_as(bank.http, "ANN@example.com", PASSWORD)

    assert guesses == [401] * 5
    assert refused.status_code == 429
    assert refused.json()["error"] == "too_many_login_attempts"
    assert 290 <= int(refused.headers["Retry-After"]) <= 300
    assert "access_token" not in refused.text
    assert log_in_as(bank.http, "bob@example.com", PASSWORD).status_code == 200


def test_an_attackers_guesses_do_not_lock_the_owner_out(role_process):
    users = role_process("users").start()
    with httpx.Client(base_url=users.url, timeout=30) as http:
        BankClient(http).sign_up(email="ann@example.com")
        guesses = [
            log_in_as(http, "ann@example.com", f"guess {n}", address="203.0.113.9").status_code for n in range(6)
        ]
        owner = log_in_as(http, "ann@example.com", PASSWORD, address="198.51.100.7")
        attacker_with_the_password = log_in_as(http, "ann@example.com", PASSWORD, address="203.0.113.9")

    assert guesses == [401] * 5 + [429]
    assert owner.status_code == 200, owner.text
    assert attacker_with_the_password.status_code == 429


def test_twenty_guesses_from_many_addresses_lock_the_email_for_15_minutes(role_process):
    users = role_process("users").start()
    with httpx.Client(base_url=users.url, timeout=30) as http:
        BankClient(http).sign_up(email="ann@example.com")
        guesses = [log_in_as(http, "ann@example.com", "guess", address=f"203.0.113.{n}").status_code for n in range(20)]
        refused = log_in_as(http, "ann@example.com", PASSWORD, address="198.51.100.7")

    assert guesses == [401] * 20
    assert refused.status_code == 429
    assert 890 <= int(refused.headers["Retry-After"]) <= 900


def test_an_unknown_email_is_throttled_like_a_known_one(bank):
    statuses = [log_in_as(bank.http, "nobody@example.com", PASSWORD).status_code for _ in range(6)]
    assert statuses == [401] * 5 + [429]


def test_the_right_password_within_the_limit_clears_the_count(bank):
    bank.sign_up(email="ann@example.com")
    before = [log_in_as(bank.http, "ann@example.com", "a wrong guess").status_code for _ in range(4)]
    assert log_in_as(bank.http, "ann@example.com", PASSWORD).status_code == 200
    after = [log_in_as(bank.http, "ann@example.com", "a wrong guess").status_code for _ in range(5)]
    assert before + after == [401] * 9


def test_the_throttle_lifts_when_its_window_is_over(bank, database_urls):
    bank.sign_up(email="ann@example.com")
    for _ in range(6):
        log_in_as(bank.http, "ann@example.com", "a wrong guess")
    assert log_in_as(bank.http, "ann@example.com", PASSWORD).status_code == 429

    query_value(
        database_urls["users"],
        "WITH moved AS (UPDATE login_attempts SET window_started_at = window_started_at - interval '5 minutes'"
        " RETURNING 1) SELECT count(*) FROM moved",
    )

    assert log_in_as(bank.http, "ann@example.com", PASSWORD).status_code == 200


def test_concurrent_guesses_get_no_more_than_five_tries(role_process):
    users = role_process("users").start()
    with httpx.Client(base_url=users.url, timeout=30) as http:
        BankClient(http).sign_up(email="ann@example.com")

    async def guess_together() -> list[int]:
        async with httpx.AsyncClient(base_url=users.url, timeout=60) as http:
            guesses = [log_in_as(http, "ann@example.com", f"guess number {n}") for n in range(20)]
            return [response.status_code for response in await asyncio.gather(*guesses)]

    assert sorted(asyncio.run(guess_together())) == [401] * 5 + [429] * 15


def test_sign_ups_and_log_in_attempts_are_counted_by_outcome(bank):
    def counted() -> list[float]:
        attempts = [metric_value(bank.http, "login_attempts_total", outcome=o) for o in LOGIN_OUTCOMES]
        return [metric_value(bank.http, "signups_total"), *attempts]

    before = counted()
    bank.sign_up(email="ann@example.com")
    log_in_as(bank.http, "ann@example.com", PASSWORD)
    for _ in range(6):
        log_in_as(bank.http, "ann@example.com", "a wrong guess")

    assert [after - earlier for after, earlier in zip(counted(), before, strict=True)] == [1, 1, 5, 1]


LOGIN_OUTCOMES = ("succeeded", "wrong_password", "throttled")


# --- who am I --------------------------------------------------------------------------


def test_me_is_the_callers_own_profile(bank):
    ann, ann_headers = bank.customer(name="Ann Lee")
    bob, bob_headers = bank.customer(name="Bob Roe")

    assert bank.http.get("/api/users/me", headers=ann_headers).json() == ann
    assert bank.http.get("/api/users/me", headers=bob_headers).json() == bob


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "unauthenticated"),
        ({"Authorization": "Bearer"}, "unauthenticated"),
        ({"Authorization": "Basic YW5uOnB3"}, "unauthenticated"),
        ({"Authorization": "Bearer garbage"}, "invalid_token"),
        ({"Authorization": "Bearer a.b.c"}, "invalid_token"),
    ],
    ids=["none", "empty-bearer", "basic", "garbage", "three-parts"],
)
def test_me_without_a_valid_token_is_401(bank, headers, code):
    bank.sign_up()
    response = bank.http.get("/api/users/me", headers=headers)
    assert response.status_code == 401
    assert response.json()["error"] == code
    assert "email" not in response.json()


def test_a_token_signed_with_another_key_is_401(bank):
    user = bank.sign_up()
    forged = TokenIssuer(generate_keypair()[0], ttl_seconds=900).issue(Caller(user_id=user["id"], role="admin"))

    response = bank.http.get("/api/users/me", headers=bearer(forged))

    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"


def test_an_expired_token_is_401_token_expired(bank, keypair):
    user = bank.sign_up()
    expired = TokenIssuer(keypair[0], ttl_seconds=-10).issue(Caller(user_id=user["id"], role="customer"))

    response = bank.http.get("/api/users/me", headers=bearer(expired))

    assert response.status_code == 401
    assert response.json()["error"] == "token_expired"


def test_a_token_signed_with_the_bank_key_is_accepted(bank, keypair):
    """Control for the two tests above: only the key or the expiry made them fail."""
    user = bank.sign_up()
    token = TokenIssuer(keypair[0], ttl_seconds=60).issue(Caller(user_id=user["id"], role="customer"))
    assert bank.http.get("/api/users/me", headers=bearer(token)).json() == user


# --- the admin's list ------------------------------------------------------------------


def test_a_customer_may_not_list_users(bank):
    _, headers = bank.customer()
    response = bank.http.get("/api/users", headers=headers)
    assert response.status_code == 403
    assert response.json()["error"] == "forbidden"


def test_listing_users_needs_a_token(bank):
    assert bank.http.get("/api/users").status_code == 401


def test_an_admin_lists_every_user(bank, database_urls):
    admin = bank.sign_up(name="Ada Admin")
    others = [bank.sign_up(name=name) for name in ("Bob Roe", "Cy Doe")]
    make_admin(database_urls["users"], admin["email"])
    headers = bank.log_in(admin["email"])

    response = bank.http.get("/api/users", headers=headers)

    assert response.status_code == 200
    assert response.json() == [{**admin, "role": "admin"}, *others]
    assert "X-Next-Cursor" not in response.headers


def test_a_token_issued_before_the_grant_stays_a_customer_token(bank, database_urls):
    admin, old_headers = bank.customer()
    make_admin(database_urls["users"], admin["email"])

    assert bank.http.get("/api/users", headers=old_headers).status_code == 403
    assert bank.http.get("/api/users", headers=bank.log_in(admin["email"])).status_code == 200


def test_users_are_paged_with_a_cursor(bank, database_urls):
    admin = bank.sign_up()
    users = [admin, bank.sign_up(), bank.sign_up()]
    make_admin(database_urls["users"], admin["email"])
    headers = bank.log_in(admin["email"])

    first = bank.http.get("/api/users", params={"limit": 2}, headers=headers)
    assert first.status_code == 200
    assert [u["id"] for u in first.json()] == [users[0]["id"], users[1]["id"]]
    cursor = first.headers["X-Next-Cursor"]
    assert f"cursor={cursor}" in first.headers["Link"]

    second = bank.http.get("/api/users", params={"limit": 2, "cursor": cursor}, headers=headers)
    assert second.status_code == 200
    assert [u["id"] for u in second.json()] == [users[2]["id"]]
    assert "X-Next-Cursor" not in second.headers
    assert "Link" not in second.headers


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"cursor": 0}, "cursor"),
        ({"cursor": 2**63}, "cursor"),
    ],
)
def test_out_of_range_paging_is_a_400(bank, database_urls, params, field):
    admin = bank.sign_up()
    make_admin(database_urls["users"], admin["email"])
    headers = bank.log_in(admin["email"])

    response = bank.http.get("/api/users", params=params, headers=headers)

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert [e["field"] for e in response.json()["errors"]] == [field]


def test_limit_100_is_accepted(bank, database_urls):
    admin = bank.sign_up()
    make_admin(database_urls["users"], admin["email"])
    response = bank.http.get("/api/users", params={"limit": 100}, headers=bank.log_in(admin["email"]))
    assert response.status_code == 200


# --- roles -----------------------------------------------------------------------------


def test_the_users_role_serves_sign_up_log_in_and_me(client_for, database_urls):
    users = client_for("users")

    user, headers = users.customer(email="solo@example.com")

    assert users.http.get("/api/users/me", headers=headers).json() == user
    assert users_in_db(database_urls) == 1
    # The users role does not serve accounts.
    assert users.http.get("/api/accounts", headers=headers).status_code == 404


def test_the_accounts_role_does_not_serve_users_but_trusts_their_tokens(client_for):
    users = client_for("users")
    accounts = client_for("accounts")
    _, headers = users.customer()

    for method, path in [("GET", "/api/users"), ("GET", "/api/users/me"), ("POST", "/api/users")]:
        response = accounts.http.request(method, path, headers=headers, json=VALID)
        assert response.status_code == 404, (method, path)
        assert response.json()["error"] == "not_found"
    assert accounts.http.post("/api/auth/token", json=VALID).status_code == 404

    listed = accounts.http.get("/api/accounts", headers=headers)
    assert listed.status_code == 200
    assert listed.json() == []
    assert accounts.http.get("/api/accounts").status_code == 401
