"""The users database."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, Identity, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from microbank.platform.db import BigIntId, UTCDateTime, domain_metadata, utcnow
from microbank.platform.outbox import outbox_table


class Base(DeclarativeBase):
    metadata = domain_metadata()


class User(Base):
    __tablename__ = "users"
    __table_args__ = (CheckConstraint("role IN ('customer', 'admin')", name="role"),)

    id: Mapped[int] = mapped_column(BigIntId, Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    # Stored lower-cased: the unique constraint makes email unique case-insensitively.
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16), default="customer")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class LoginAttempts(Base):
    """Log-in attempts in the current throttling window, for emails with and without an account
    alike, so that throttling reveals nothing: one row per email and client address, and one per
    email from any address (client ""). A successful log-in removes the caller's rows."""

    __tablename__ = "login_attempts"

    email: Mapped[str] = mapped_column(String(254), primary_key=True)
    client: Mapped[str] = mapped_column(String(64), primary_key=True)
    attempts: Mapped[int]
    window_started_at: Mapped[datetime] = mapped_column(UTCDateTime())


outbox = outbox_table(Base.metadata)

metadata = Base.metadata
