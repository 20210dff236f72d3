"""Settings a Kubernetes pod hands over as files, and the broker topology mode."""

from __future__ import annotations

from pathlib import Path

import pytest

from microbank.platform.settings import ConfigError, load_settings


def test_a_database_url_comes_from_its_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "database-url"
    secret.write_text("postgresql+psycopg2://users:pw@users-db:5432/users\n")
    for name in ("DATABASE_URL", "USERS_DATABASE_URL", "USERS_DATABASE_URL_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ROLE", "users")
    monkeypatch.setenv("DATABASE_URL_FILE", str(secret))

    assert load_settings().database_url("users") == "postgresql+psycopg2://users:pw@users-db:5432/users"


def test_a_missing_url_file_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("USERS_DATABASE_URL", raising=False)
    monkeypatch.setenv("USERS_DATABASE_URL_FILE", str(tmp_path / "absent"))

    with pytest.raises(ConfigError, match="USERS_DATABASE_URL_FILE"):
        load_settings().database_url("users")


@pytest.mark.parametrize(("value", "mode"), [(None, "declare"), ("declare", "declare"), ("verify", "verify")])
def test_the_roles_declare_the_topology_unless_told_to_verify(value, mode, monkeypatch: pytest.MonkeyPatch) -> None:
    if value is None:
        monkeypatch.delenv("RABBIT_TOPOLOGY", raising=False)
    else:
        monkeypatch.setenv("RABBIT_TOPOLOGY", value)

    assert load_settings().rabbit_topology == mode


def test_an_unknown_topology_mode_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RABBIT_TOPOLOGY", "create")

    with pytest.raises(ConfigError, match="declare or verify"):
        load_settings()
