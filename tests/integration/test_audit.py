"""microbank audit when it cannot read what it should vouch for."""

from __future__ import annotations

from tests.integration.conftest import audit


def test_an_unmigrated_database_is_a_discrepancy_not_a_crash(role_env, fresh_database, monkeypatch):
    monkeypatch.setenv("ACCOUNTS_DATABASE_URL", fresh_database)
    report = audit()

    assert not report.clean
    (discrepancy,) = report.discrepancies
    assert discrepancy.startswith("cannot read the databases")
    assert 'relation "accounts" does not exist' in discrepancy
