"""Password hashing: salted scrypt, verification that never raises."""

from __future__ import annotations

import pytest

from microbank.users.passwords import hash_password, verify_password

SECRET = "correct horse battery staple"


@pytest.fixture(scope="module")
def stored() -> str:
    return hash_password(SECRET)


def test_the_same_password_hashes_differently_each_time(stored):
    again = hash_password(SECRET)
    assert again != stored
    # Different salts, not only different digests.
    assert again.split("$")[4] != stored.split("$")[4]
    assert verify_password(SECRET, again)


def test_the_right_password_verifies(stored):
    assert verify_password(SECRET, stored) is True


@pytest.mark.parametrize("attempt", ["", "correct horse battery stapl", "Correct horse battery staple", SECRET + " "])
def test_a_wrong_password_does_not_verify(stored, attempt):
    assert verify_password(attempt, stored) is False


def test_the_stored_form_never_contains_the_plaintext(stored):
    assert SECRET not in stored
    assert "horse" not in stored
    assert stored.startswith("scrypt$")


def test_unicode_passwords_work():
    password = "pässwörd-日本語-🔑"
    assert verify_password(password, hash_password(password))
    assert not verify_password("passwort-日本語-🔑", hash_password(password))


@pytest.mark.parametrize(
    "corrupt",
    [
        "",
        "garbage",
        "scrypt$16384$8$1$not base64!$also not",
        "scrypt$16384$8$1$c2FsdA==",  # a field missing
        "scrypt$abc$8$1$c2FsdA==$ZGlnZXN0",  # a non-numeric cost
        "bcrypt$16384$8$1$c2FsdA==$ZGlnZXN0",  # another scheme
        "scrypt$3$8$1$c2FsdA==$ZGlnZXN0",  # n not a power of two: scrypt refuses
    ],
)
def test_a_corrupted_stored_hash_verifies_false_without_raising(corrupt):
    assert verify_password(SECRET, corrupt) is False


def test_a_tampered_digest_does_not_verify(stored):
    *head, digest = stored.split("$")
    flipped = ("A" if digest[0] != "A" else "B") + digest[1:]
    assert verify_password(SECRET, "$".join([*head, flipped])) is False
