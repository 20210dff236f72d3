"""Users' use cases: sign up, log in, look up."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from prometheus_client import Counter
from sqlalchemy import case, delete, literal, select
from sqlalchemy.orm import Session

from microbank.platform.auth import Caller
from microbank.platform.db import Database, UTCDateTime, upsert_into, utcnow
from microbank.platform.errors import Conflict, Invalid, NotFound, TooManyRequests, Unauthenticated
from microbank.platform.outbox import add_event
from microbank.platform.pagination import keyset
from microbank.users.events import user_registered
from microbank.users.models import LoginAttempts, User, outbox
from microbank.users.passwords import decoy_hash, hash_password, verify_password

# Deliberately loose: one @, no spaces, a dot in the domain. Deliverability is the mail
# server's business, not a regex's.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass(frozen=True)
class Throttle:
    attempts: int
    window: timedelta


# Guessing a password: five tries per email from one client address within five minutes, and
# twenty per email from all addresses within fifteen. An attacker's five wrong passwords lock out
# only the attacker's own address, for five minutes; locking the owner out everywhere takes
# twenty guesses, and stays a quarter of an hour at most.
CLIENT_LIMIT = Throttle(attempts=5, window=timedelta(minutes=5))
EMAIL_LIMIT = Throttle(attempts=20, window=timedelta(minutes=15))
ANY_CLIENT = ""

SIGNUPS = Counter("signups_total", "Customers who signed up")
LOGIN_ATTEMPTS = Counter("login_attempts_total", "Log-in attempts, by outcome", ["outcome"])


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
    SIGNUPS.inc()
    return user


def authenticate(*, db: Database, email: str, password: str, client: str, now: datetime | None = None) -> Caller:
    """The caller these credentials belong to; the same error whether email or password is wrong.

    Each attempt is counted, per email and client address and per email alone, before the
    password is checked, so concurrent guesses cannot slip past a limit; over either, not even
    the right password is checked until its window is over. The right password within the limits
    clears the caller's counts.
    """
    email, client = canonical_email(email), client[:64]
    now = now or utcnow()
    credentials = select(User.id, User.role, User.password_hash).where(User.email == email)
    with db.transaction() as session:
        waits = [
            count_login_attempt(session, email, client, now, CLIENT_LIMIT),
            count_login_attempt(session, email, ANY_CLIENT, now, EMAIL_LIMIT),
        ]
        wait = max((w for w in waits if w is not None), default=None)
        # Over a limit, the credentials are not even read (and the refusal waits for the commit).
        row = None if wait is not None else session.execute(credentials).one_or_none()
    if wait is not None:
        LOGIN_ATTEMPTS.labels("throttled").inc()
        raise too_many_attempts(wait)
    if row is None:
        verify_password(password, decoy_hash())
    elif verify_password(password, row.password_hash):
        with db.transaction() as session:
            session.execute(
                delete(LoginAttempts).where(
                    LoginAttempts.email == email, LoginAttempts.client.in_([client, ANY_CLIENT])
                )
            )
        LOGIN_ATTEMPTS.labels("succeeded").inc()
        return Caller(user_id=row.id, role=row.role)
    LOGIN_ATTEMPTS.labels("wrong_password").inc()
    raise Unauthenticated("email or password is wrong", code="invalid_credentials")


def count_login_attempt(session: Session, email: str, client: str, now: datetime, limit: Throttle) -> timedelta | None:
    """Count an attempt in its window (a new window once the old one is over); None while within
    the limit, else how long until the full window is over."""
    started = LoginAttempts.window_started_at
    expired = started <= now - limit.window
    attempts, window_started_at = session.execute(
        upsert_into(session, LoginAttempts)
        .values(email=email, client=client, attempts=1, window_started_at=now)
        .on_conflict_do_update(
            index_elements=[LoginAttempts.email, LoginAttempts.client],
            set_={
                "attempts": case((expired, 1), else_=LoginAttempts.attempts + 1),
                "window_started_at": case(
                    (expired, literal(now, UTCDateTime())), else_=LoginAttempts.window_started_at
                ),
            },
        )
        .returning(LoginAttempts.attempts, LoginAttempts.window_started_at)
    ).one()
    return window_started_at + limit.window - now if attempts > limit.attempts else None


def too_many_attempts(wait: timedelta) -> TooManyRequests:
    seconds = max(math.ceil(wait.total_seconds()), 1)
    return TooManyRequests(
        f"too many log-in attempts for this email; try again in {seconds} seconds",
        code="too_many_login_attempts",
        retry_after=seconds,
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
