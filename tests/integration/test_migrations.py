"""Each domain's migrations on a fresh PostgreSQL database: up, matching the models, down, up again."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import MetaData, create_engine, inspect

from microbank.platform.migrations import downgrade, head_revision, migrations_dir, upgrade
from microbank.roles import DOMAINS

ALEMBIC = Path(sys.executable).parent / "alembic"


def domain_metadata(domain: str) -> MetaData:
    return importlib.import_module(f"microbank.{domain}.models").metadata


def table_names(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return set(inspect(connection).get_table_names())
    finally:
        engine.dispose()


def schema_differences(url: str, metadata: MetaData) -> list:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return compare_metadata(MigrationContext.configure(connection), metadata)
    finally:
        engine.dispose()


def revision_of(url: str) -> str | None:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


@pytest.mark.parametrize("domain", DOMAINS)
def test_migrations_go_up_match_the_models_go_down_and_up_again(domain: str, fresh_database: str) -> None:
    metadata = domain_metadata(domain)
    model_tables = set(metadata.tables)
    assert model_tables, f"{domain} declares no tables"

    upgrade(domain, fresh_database)
    assert table_names(fresh_database) == model_tables | {"alembic_version"}
    assert revision_of(fresh_database) == head_revision(domain)
    assert schema_differences(fresh_database, metadata) == []

    downgrade(domain, fresh_database)
    assert table_names(fresh_database) <= {"alembic_version"}
    assert revision_of(fresh_database) is None

    upgrade(domain, fresh_database)
    assert table_names(fresh_database) == model_tables | {"alembic_version"}
    assert schema_differences(fresh_database, metadata) == []


def test_the_alembic_cli_migrates_a_domain_as_documented(fresh_database: str) -> None:
    env = {**os.environ, "USERS_DATABASE_URL": fresh_database}
    env.pop("DATABASE_URL", None)
    result = subprocess.run(
        [str(ALEMBIC), "-n", "users", "upgrade", "head"],
        cwd=migrations_dir(),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "users" in table_names(fresh_database)
    assert revision_of(fresh_database) == head_revision("users")


@pytest.mark.parametrize("domain", DOMAINS)
def test_each_domain_expects_the_head_of_its_migrations(domain: str) -> None:
    """Readiness compares the database with this revision: a new migration must move it too."""
    assert importlib.import_module(f"microbank.{domain}").domain.schema_revision == head_revision(domain)
