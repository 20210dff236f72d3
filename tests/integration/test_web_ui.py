"""ROLE=all (what `microbank dev` serves): the web app at /, the API under /api beside it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.factories import BankClient

PAGE = "<!doctype html><title>microbank</title>"


def test_the_app_and_the_api_share_the_origin_as_the_ingress_routes_them(
    client_for: Callable[[str], BankClient], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "dist").mkdir()
    (tmp_path / "dist" / "index.html").write_text(PAGE)
    monkeypatch.setenv("UI_DIST_DIR", str(tmp_path / "dist"))
    bank = client_for("all")

    for path in ("/", "/accounts/3"):
        page = bank.http.get(path)
        assert (page.status_code, page.text) == (200, PAGE), path
        assert "script-src 'self'" in page.headers["content-security-policy"]

    _, headers = bank.customer()
    assert bank.http.get("/api/accounts", headers=headers).json() == []
    assert bank.http.get("/api/accounts").status_code == 401
    unknown = bank.http.post("/api/savings/1", headers=headers)
    assert (unknown.status_code, unknown.json()["error"]) == (404, "not_found")
    assert bank.http.get("/api/schema/openapi.json").json()["info"]["title"] == "microbank all"
