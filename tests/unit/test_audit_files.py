"""microbank audit pointed at a data directory that holds no bank."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from microbank.audit import run_audit
from microbank.platform.settings import load_settings
from microbank.roles import DOMAINS


def test_a_data_directory_without_the_databases_is_a_discrepancy_and_stays_empty(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for domain in DOMAINS:
        monkeypatch.delenv(f"{domain.upper()}_DATABASE_URL", raising=False)
    monkeypatch.setenv("DATA_DIR", str(tmp_path))

    report = run_audit(replace(load_settings(), role="all"))

    (discrepancy,) = report.discrepancies
    assert discrepancy.startswith("cannot read the databases: no database file at")
    assert str(tmp_path / "accounts.db") in discrepancy
    assert list(tmp_path.iterdir()) == []
