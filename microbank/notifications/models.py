"""The notifications database: what each user was told, once per event."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Identity, Index, String, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from microbank.platform.db import BigIntId, UTCDateTime, domain_metadata, utcnow


class Base(DeclarativeBase):
    metadata = domain_metadata()


class Notification(Base):
    __tablename__ = "notifications"
    __table_args__ = (
        # One event tells each recipient once, however often it is delivered.
        UniqueConstraint("event_id", "user_id"),
        Index("ix_notifications_user_id_id", "user_id", "id"),
        Index("ix_notifications_user_id_occurred_at_id", "user_id", "occurred_at", "id"),
    )

    id: Mapped[int] = mapped_column(BigIntId, Identity(), primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger)
    event_id: Mapped[str] = mapped_column(String(36))
    event_type: Mapped[str] = mapped_column(String(64))
    message: Mapped[str] = mapped_column(String(500))
    transaction_id: Mapped[int | None] = mapped_column(BigInteger)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


metadata = Base.metadata
