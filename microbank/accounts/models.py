"""The accounts database: accounts and their balances."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Identity,
    Index,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from microbank.platform.db import BigIntId, UTCDateTime, domain_metadata, utcnow
from microbank.platform.outbox import outbox_table


class Base(DeclarativeBase):
    metadata = domain_metadata()


class Account(Base):
    __tablename__ = "accounts"
    __table_args__ = (
        # The backstop under every debit: no code path can leave a balance below zero.
        CheckConstraint("balance_minor >= 0", name="balance_not_negative"),
        CheckConstraint("account_type IN ('checking', 'savings')", name="account_type"),
    )

    id: Mapped[int] = mapped_column(BigIntId, Identity(), primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, index=True)
    account_type: Mapped[str] = mapped_column(String(16))
    currency: Mapped[str] = mapped_column(String(3))
    balance_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Posting(Base):
    """One signed change to one balance: append-only; the balance is their running sum."""

    __tablename__ = "postings"
    __table_args__ = (
        UniqueConstraint("transaction_id", "account_id"),
        Index("ix_postings_account_id_id", "account_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigIntId, Identity(), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    transaction_id: Mapped[int] = mapped_column(BigInteger)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    balance_after_minor: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class AppliedTransaction(Base):
    """The first outcome of each transaction id, so a repeated postings call returns it unchanged."""

    __tablename__ = "applied_transactions"

    transaction_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    outcome: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


outbox = outbox_table(Base.metadata)
