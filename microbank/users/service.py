"""Users' use cases: sign up, log in, look up."""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta

from sqlalchemy import case, delete, literal, select
from sqlalchemy.orm import Session

from microbank.platform.auth import Caller
from microbank.platform.db import Database, UTCDateTime, upsert_into, utcnow
from microbank.platform.errors import Conflict, Invalid, NotFound, TooManyRequests, Unauthenticated
from microbank.platform.outbox import add_event
from microbank.platform.pagination import keyset
from microbank.users.events import user_registered
from microbank.users.models import FailedLogins, User, outbox
from microbank.users.passwords import decoy_hash, hash_password, verify_password

# Deliberately loose: one @, no spaces, a dot in the domain. Deliverability is the mail
# server's business, not a regex's.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

# Guessing a password: five tries per email per quarter of an hour, then wait out the quarter.
LOGIN_ATTEMPTS = 5
LOGIN_WINDOW = timedelta(minutes=15)


def canonical_email(email: str) -> str:
    """The form emails are stored and compared in: unique case-insensitively."""
    return email.strip().lower()


def normalize_email(email: str) -> str:
    normalized = canonical_email(email)
    if not _EMAIL.match(normalized):
        raise Invalid("email must look like name@example.com", field="email")
    return normalized


def register_user(*, db: Database, name: str, email: str, password: str) -> User:
    """Sign up a customer; the email is unique regardless of case."""
    email = normalize_email(email)
    if not name.strip():
        raise Invalid("name must not be blank", field="name")
    password_hash = hash_password(password)  # slow: done before a connection is taken
    with db.transaction() as session:
        if session.scalar(select(User.id).where(User.email == email)) is not None:
            raise Conflict("a user with this email already exists", code="email_taken", field="email")
        user = User(name=name.strip(), email=email, password_hash=password_hash, role="customer")
        session.add(user)
        session.flush()
        add_event(session, outbox, user_registered(user))
        return user


def authenticate(*, db: Database, email: str, password: str, now: datetime | None = None) -> Caller:
    """The caller these credentials belong to; the same error whether email or password is wrong.

    Each attempt is counted before the password is checked, so concurrent guesses cannot slip
    past the limit; over it, not even the right password is checked until the window is over.
    The right password within the limit clears the count.
    """
    email = canonical_email(email)
    now = now or utcnow()
    credentials = select(User.id, User.role, User.password_hash).where(User.email == email)
    with db.transaction() as session:
        full_window_started_at = count_login_attempt(session, email, now)
        # Over the limit, the credentials are not even read (and the refusal waits for the commit).
        row = None if full_window_started_at else session.execute(credentials).one_or_none()
    if full_window_started_at is not None:
        raise too_many_attempts(full_window_started_at, now)
    if row is None:
        verify_password(password, decoy_hash())
    elif verify_password(password, row.password_hash):
        with db.transaction() as session:
            session.execute(delete(FailedLogins).where(FailedLogins.email == email))
        return Caller(user_id=row.id, role=row.role)
    raise Unauthenticated("email or password is wrong", code="invalid_credentials")


def count_login_attempt(session: Session, email: str, now: datetime) -> datetime | None:
    """Count an attempt in the email's window (a new window once the old one is over); None while
    within the limit, else the start of the window that is full."""
    expired = FailedLogins.window_started_at <= now - LOGIN_WINDOW
    attempts, window_started_at = session.execute(
        upsert_into(session, FailedLogins)
        .values(email=email, attempts=1, window_started_at=now)
        .on_conflict_do_update(
            index_elements=[FailedLogins.email],
            set_={
                "attempts": case((expired, 1), else_=FailedLogins.attempts + 1),
                "window_started_at": case((expired, literal(now, UTCDateTime())), else_=FailedLogins.window_started_at),
            },
        )
        .returning(FailedLogins.attempts, FailedLogins.window_started_at)
    ).one()
    return window_started_at if attempts > LOGIN_ATTEMPTS else None


def too_many_attempts(window_started_at: datetime, now: datetime) -> TooManyRequests:
    wait = math.ceil((window_started_at + LOGIN_WINDOW - now).total_seconds())
    return TooManyRequests(
        f"too many log-in attempts for this email; try again in {wait} seconds",
        code="too_many_login_attempts",
        retry_after=max(wait, 1),
    )


def get_user(*, db: Database, user_id: int) -> User:
    with db.transaction() as session:
        user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"user {user_id} not found")
    return user


def list_users(*, db: Database, after: int | None, limit: int) -> list[User]:
    """Users by id, `limit` of them after the cursor (plus one, to tell if there are more)."""
    query = keyset(select(User), User.id, cursor=after, limit=limit)
    with db.transaction() as session:
        return list(session.scalars(query))


def grant_admin(*, db: Database, email: str) -> User:
    """Operator's command: give an existing user the admin role."""
    with db.transaction() as session:
        user = session.scalar(select(User).where(User.email == normalize_email(email)))
        if user is None:
            raise NotFound(f"no user with email {email}")
        user.role = "admin"
        return user
