"""The accounts database: accounts, their balances, and the postings that make them."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    ForeignKey,
    Identity,
    Index,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from microbank.platform.db import BigIntId, UTCDateTime, domain_metadata, utcnow
from microbank.platform.outbox import outbox_table

metadata = domain_metadata()

accounts = Table(
    "accounts",
    metadata,
    Column("id", BigIntId, Identity(), primary_key=True),
    Column("user_id", BigInteger, nullable=False, index=True),
    Column("account_type", String(16), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("balance_minor", BigInteger, nullable=False, default=0),
    Column("created_at", UTCDateTime(), nullable=False, default=utcnow),
    # The backstop under every debit: no code path can leave a balance below zero.
    CheckConstraint("balance_minor >= 0", name="balance_not_negative"),
    CheckConstraint("account_type IN ('checking', 'savings')", name="account_type"),
)

# One signed change to one balance: append-only; the balance is their running sum.
postings = Table(
    "postings",
    metadata,
    Column("id", BigIntId, Identity(), primary_key=True),
    Column("account_id", ForeignKey("accounts.id"), nullable=False),
    Column("transaction_id", BigInteger, nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("balance_after_minor", BigInteger, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False, default=utcnow),
    UniqueConstraint("transaction_id", "account_id"),
    Index("ix_postings_account_id_id", "account_id", "id"),
)

# The first outcome of each transaction id, so a repeated postings call returns it unchanged.
applied_transactions = Table(
    "applied_transactions",
    metadata,
    Column("transaction_id", BigInteger, primary_key=True, autoincrement=False),
    Column("outcome", Text, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False, default=utcnow),
)

outbox = outbox_table(metadata)
