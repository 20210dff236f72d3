"""What crosses the wire for users."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

from microbank.platform.text import NO_CONTROL_CHARACTERS

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=100), NO_CONTROL_CHARACTERS]
Email = Annotated[str, msgspec.Meta(min_length=3, max_length=254), NO_CONTROL_CHARACTERS]
# Long enough to resist guessing; bounded so hashing cost stays predictable.
Password = Annotated[str, msgspec.Meta(min_length=12, max_length=1024), NO_CONTROL_CHARACTERS]


class SignUp(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    email: Email
    password: Password


class Credentials(msgspec.Struct, forbid_unknown_fields=True):
    email: Email
    password: Annotated[str, msgspec.Meta(min_length=1, max_length=1024), NO_CONTROL_CHARACTERS]


class AccessToken(msgspec.Struct):
    access_token: str
    token_type: str
    expires_in: int


class UserOut(msgspec.Struct):
    id: int
    name: str
    email: str
    role: str
    created_at: datetime
