"""Each role's OpenAPI document says what the role does: its refusals in the bank's error shape,
which routes take no token, which headers are required."""

from __future__ import annotations

import httpx
import pytest

from microbank.drills.stack import BankStack

API_ROLES = ("users", "accounts", "transactions", "notifications")
PUBLIC_OPERATIONS = {("post", "/api/users"), ("post", "/api/auth/token")}


def document_of(split_bank: BankStack, role: str) -> dict:
    response = httpx.get(f"{split_bank.roles[role].url}/api/{role}/schema/openapi.json", timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def operations(document: dict):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield method, path, operation


@pytest.mark.parametrize("role", API_ROLES)
def test_refusals_are_documented_in_the_shape_they_are_sent(split_bank, role):
    document = document_of(split_bank, role)
    error_body = document["components"]["schemas"]["ErrorBody"]
    assert set(error_body["required"]) == {"status", "error", "detail"}

    for method, path, operation in operations(document):
        refusals = {code: spec for code, spec in operation["responses"].items() if code >= "400"}
        expected = {"400", "503"} | ({"401"} if (method, path) not in PUBLIC_OPERATIONS else set())
        assert expected <= set(refusals), f"{method.upper()} {path} documents {sorted(refusals)}"
        if "requestBody" in operation:
            assert {"413", "415"} <= set(refusals), f"{method.upper()} {path}"
        if "{" in path:
            assert "404" in refusals, f"{method.upper()} {path}"
        for code, spec in refusals.items():
            schema = spec["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorBody"}, f"{method.upper()} {path} {code}"


@pytest.mark.parametrize("role", API_ROLES)
def test_only_sign_up_and_log_in_are_documented_as_needing_no_token(split_bank, role):
    document = document_of(split_bank, role)
    assert document["security"] == [{"bearer": []}]

    public = {(method, path) for method, path, operation in operations(document) if operation.get("security") == []}

    assert public == {op for op in PUBLIC_OPERATIONS if op[1] in document["paths"]}


def test_the_idempotency_key_is_documented_as_required(split_bank):
    operation = document_of(split_bank, "transactions")["paths"]["/api/transactions"]["post"]

    (key,) = [p for p in operation["parameters"] if p["name"] == "Idempotency-Key"]

    assert key["in"] == "header"
    assert key["required"] is True


def test_log_in_documents_its_throttle(split_bank):
    operation = document_of(split_bank, "users")["paths"]["/api/auth/token"]["post"]

    assert {"401", "429"} <= set(operation["responses"])
