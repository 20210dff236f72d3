"""microbank audit when it cannot read what it should vouch for."""

from __future__ import annotations

import uuid
from dataclasses import replace

from microbank.audit import run_audit
from microbank.platform.settings import load_settings
from tests.integration.conftest import create_database, drop_database


def test_an_unmigrated_database_is_a_discrepancy_not_a_crash(role_env, monkeypatch):
    name = f"mbtest_{uuid.uuid4().hex[:8]}_empty"
    monkeypatch.setenv("ACCOUNTS_DATABASE_URL", create_database(name))
    try:
        report = run_audit(replace(load_settings(), role="all"))
    finally:
        drop_database(name)

    assert not report.clean
    (discrepancy,) = report.discrepancies
    assert discrepancy.startswith("cannot read the databases")
    assert 'relation "accounts" does not exist' in discrepancy
