"""schemathesis against each role's OpenAPI document, with a customer's token and without one:
no 5xx, every answer as documented, no route but sign-up and log-in open without a token, and
no row written by a request the role refused. A failure prints the request as a curl command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from microbank.drills.stack import BankStack
from tests.factories import PASSWORD, BankClient, count_rows

SCHEMATHESIS = Path(sys.executable).parent / "st"
# The rows a role's API can create, per role; what a run adds must come from its 2xx answers.
CREATED_BY = {
    "users": ("users", "POST", "/api/users"),
    "accounts": ("accounts", "POST", "/api/accounts"),
    "transactions": ("transactions", "POST", "/api/transactions"),
    "notifications": ("notifications", None, None),
}
# Excluded, and why:
# - positive_data_acceptance: some valid-looking requests are refused by rules JSON Schema cannot
#   state (a transfer needs to_account_id and a deposit must not have one; an amount sent as a JSON
#   number may have at most two decimals; times are RFC 3339 text); each is a documented 400.
# - allow_header_conformance: Litestar 2.25 answers OPTIONS on a path with the methods of only
#   one of its handlers (`Allow: GET, OPTIONS` on /api/accounts, which takes POST too); the Allow
#   header of a 405 is right.
EXCLUDED_CHECKS = "positive_data_acceptance,allow_header_conformance"
# The stream never ends; the hostile corpus sends it what it can be sent.
EXCLUDED_PATHS = ("/api/notifications/stream",)
# No signing up and logging in of its own: "without a token" means without one.
CONFIG = "[auth]\nauto-signup = false\n"


@pytest.fixture(scope="module")
def customer_token(split_bank: BankStack) -> str:
    with httpx.Client(base_url=split_bank.roles["users"].url, timeout=30) as http:
        user = BankClient(http).sign_up(email="fuzzed@example.com")
        return BankClient(http).log_in(user["email"], PASSWORD)["Authorization"]


def fuzz(role_url: str, schema_url: str, workdir: Path, headers: list[str]) -> tuple[int, str, list[dict]]:
    config = workdir / "schemathesis.toml"
    config.write_text(CONFIG)
    har = workdir / "requests.har"
    command = [
        str(SCHEMATHESIS),
        "--config-file",
        str(config),
        "run",
        schema_url,
        "--url",
        role_url,
        "--checks",
        "all",
        "--exclude-checks",
        EXCLUDED_CHECKS,
        *(arg for path in EXCLUDED_PATHS for arg in ("--exclude-path", path)),
        "--phases",
        "examples,coverage,fuzzing",
        "--max-examples",
        "10",
        "--generation-deterministic",
        "--request-timeout",
        "10",
        # One worker: with two threads, hypothesis' ast.parse of lambdas races in CPython 3.11
        # ("AST constructor recursion depth mismatch", seen once in CI as a schemathesis error).
        "--workers",
        "1",
        "--no-color",
        "--report",
        "har",
        "--report-har-path",
        str(har),
        *(arg for header in headers for arg in ("--header", header)),
    ]
    run = subprocess.run(command, capture_output=True, text=True, timeout=170, cwd=workdir)
    entries = json.loads(har.read_text())["log"]["entries"] if har.exists() else []
    return run.returncode, run.stdout + run.stderr, entries


@pytest.mark.parametrize("with_token", [True, False], ids=["with-a-token", "without-a-token"])
@pytest.mark.parametrize("role", list(CREATED_BY))
def test_the_role_answers_the_fuzzer_as_its_document_says(split_bank, customer_token, tmp_path, role, with_token):
    process = split_bank.roles[role]
    table, method, path = CREATED_BY[role]
    rows_before = count_rows(split_bank.database_urls[role], table)

    headers = [f"Authorization: {customer_token}"] if with_token else []
    status, output, entries = fuzz(process.url, f"{process.url}/api/{role}/schema/openapi.json", tmp_path, headers)

    assert status == 0, f"schemathesis found failures against the {role} role:\n{output}"
    assert entries, f"schemathesis recorded no request:\n{output}"
    created = [
        e
        for e in entries
        if e["request"]["method"] == method
        and httpx.URL(e["request"]["url"]).path.rstrip("/") == path
        and 200 <= e["response"]["status"] < 300
    ]
    rows_added = count_rows(split_bank.database_urls[role], table) - rows_before
    assert rows_added == len(created), f"{rows_added} {table} rows written by {len(created)} accepted requests"
    if not with_token and role != "users":
        assert rows_added == 0
