"""Alembic per domain database: one named section and one script folder per domain."""

from __future__ import annotations

import logging.config
from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, MetaData, pool, text

from microbank.platform.settings import load_settings

_PACKAGE = Path(__file__).resolve().parents[1]


def migrations_dir() -> Path:
    """`migrations/` beside the package in a checkout; `microbank/_migrations` in a wheel."""
    for candidate in (_PACKAGE.parent / "migrations", _PACKAGE / "_migrations"):
        if (candidate / "alembic.ini").is_file():
            return candidate
    raise FileNotFoundError("no migrations/alembic.ini beside the microbank package")


def alembic_config(domain: str, url: str | None = None) -> Config:
    cfg = Config(str(migrations_dir() / "alembic.ini"), ini_section=domain)
    if url:
        cfg.attributes["url"] = url
    cfg.attributes["configure_logging"] = False
    return cfg


def upgrade(domain: str, url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(domain, url), revision)


def downgrade(domain: str, url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(domain, url), revision)


@cache
def head_revision(domain: str) -> str | None:
    return ScriptDirectory.from_config(alembic_config(domain)).get_current_head()


def run_env(metadata: MetaData) -> None:
    """The body of every domain's env.py: migrate the URL the caller or the environment names."""
    from alembic import context

    config = context.config
    if config.attributes.get("configure_logging", True) and config.config_file_name:
        logging.config.fileConfig(config.config_file_name, disable_existing_loggers=False)
    domain = config.config_ini_section
    url = (
        config.attributes.get("url")
        or context.get_x_argument(as_dictionary=True).get("url")
        or load_settings().database_url(domain)
    )
    if context.is_offline_mode():
        context.configure(url=url, target_metadata=metadata, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    from sqlalchemy import create_engine

    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            render_as_batch=True,
            render_item=_render_portable_types,
        )
        with context.begin_transaction():
            _one_migrator_at_a_time(connection, domain)
            context.run_migrations()
    engine.dispose()


def _one_migrator_at_a_time(connection: Connection, domain: str) -> None:
    """Replicas that start together (Kubernetes init containers) migrate one after another: the
    next waits for this transaction's lock, then finds the database at the head."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(hashtext(:name))"), {"name": f"migrate {domain}"})


def _render_portable_types(type_: str, obj: object, autogen_context: object) -> str | bool:
    """Autogenerate writes our column types as plain SQLAlchemy ones, so migrations never
    import application code that may later change."""
    from microbank.platform.db import UTCDateTime

    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False
