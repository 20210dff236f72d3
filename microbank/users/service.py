"""Users' use cases: sign up, log in, look up."""

from __future__ import annotations

import re

from sqlalchemy import select

from microbank.platform.auth import Caller
from microbank.platform.db import Database
from microbank.platform.errors import Conflict, Invalid, NotFound, Unauthenticated
from microbank.platform.outbox import add_event
from microbank.platform.pagination import keyset
from microbank.users.events import user_registered
from microbank.users.models import User, outbox
from microbank.users.passwords import decoy_hash, hash_password, verify_password

# Deliberately loose: one @, no spaces, a dot in the domain. Deliverability is the mail
# server's business, not a regex's.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def normalize_email(email: str) -> str:
    normalized = email.strip().lower()
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


def authenticate(*, db: Database, email: str, password: str) -> Caller:
    """The caller these credentials belong to; the same error whether email or password is wrong."""
    with db.transaction() as session:
        row = session.execute(
            select(User.id, User.role, User.password_hash).where(User.email == email.strip().lower())
        ).one_or_none()
    if row is None:
        verify_password(password, decoy_hash())
    elif verify_password(password, row.password_hash):
        return Caller(user_id=row.id, role=row.role)
    raise Unauthenticated("email or password is wrong", code="invalid_credentials")


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
