"""The transactions database: every money movement a user asked for, and its outcome."""

from __future__ import annotations

from sqlalchemy import BigInteger, CheckConstraint, Column, Identity, Index, Integer, String, Table, UniqueConstraint

from microbank.platform.db import BigIntId, UTCDateTime, domain_metadata, utcnow
from microbank.platform.outbox import outbox_table

metadata = domain_metadata()

transactions = Table(
    "transactions",
    metadata,
    Column("id", BigIntId, Identity(), primary_key=True),
    Column("user_id", BigInteger, nullable=False),
    Column("idempotency_key", String(255), nullable=False),
    Column("request_hash", String(64), nullable=False),
    Column("type", String(16), nullable=False),
    Column("account_id", BigInteger, nullable=False),
    Column("to_account_id", BigInteger),
    Column("amount_minor", BigInteger, nullable=False),
    Column("description", String(200)),
    Column("status", String(16), nullable=False, default="pending"),
    Column("reason", String(64)),
    Column("currency", String(3)),
    Column("balance_after_minor", BigInteger),
    Column("created_at", UTCDateTime(), nullable=False, default=utcnow),
    Column("completed_at", UTCDateTime()),
    # Recovery bookkeeping: how often the postings call was re-driven, and when it may be next.
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UTCDateTime(), nullable=False),
    UniqueConstraint("user_id", "idempotency_key"),
    CheckConstraint("amount_minor > 0", name="amount_positive"),
    CheckConstraint("type IN ('deposit', 'withdrawal', 'transfer')", name="type"),
    CheckConstraint("status IN ('pending', 'completed', 'rejected')", name="status"),
    Index("ix_transactions_user_id_id", "user_id", "id"),
    Index("ix_transactions_status_next_attempt_at", "status", "next_attempt_at"),
)

outbox = outbox_table(metadata)
