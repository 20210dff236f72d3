"""Bearer tokens: a verified token is remembered only until it expires, and a forged one never is."""

from __future__ import annotations

import time

import jwt
import pytest

from microbank.platform.auth import Caller, TokenIssuer, TokenVerifier, generate_keypair
from microbank.platform.errors import Unauthenticated


@pytest.fixture(scope="module")
def keys() -> tuple[str, str]:
    return generate_keypair()


def test_a_remembered_token_is_refused_once_it_has_expired(keys):
    verifier = TokenVerifier(keys[1])
    token = TokenIssuer(keys[0], ttl_seconds=1).issue(Caller(user_id=7, role="customer"))
    assert verifier.verify(token) == Caller(user_id=7, role="customer")

    time.sleep(2.1)  # past the token's whole-second expiry, however loaded the machine

    with pytest.raises(Unauthenticated) as refused:
        verifier.verify(token)
    assert refused.value.code == "token_expired"


def test_a_token_signed_with_another_key_is_refused_even_after_a_good_one(keys):
    verifier = TokenVerifier(keys[1])
    good = TokenIssuer(keys[0], ttl_seconds=60).issue(Caller(user_id=7, role="customer"))
    forged = TokenIssuer(generate_keypair()[0], ttl_seconds=60).issue(Caller(user_id=7, role="admin"))
    verifier.verify(good)

    with pytest.raises(Unauthenticated):
        verifier.verify(forged)


def test_an_unsigned_token_is_refused(keys):
    unsigned = jwt.encode({"sub": "1", "role": "admin"}, key=None, algorithm="none")

    with pytest.raises(Unauthenticated):
        TokenVerifier(keys[1]).verify(unsigned)
