"""Request bodies: how deep they nest and whether a key repeats, read from the raw text."""

from __future__ import annotations

import msgspec
import pytest

from microbank.platform.bodies import MAX_DEPTH, decode_body, nested_too_deep, repeated_key
from microbank.platform.errors import Invalid, UnsupportedMediaType


@pytest.mark.parametrize(
    ("body", "too_deep"),
    [
        (b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1), True),
        (b"[" * MAX_DEPTH + b"]" * MAX_DEPTH, False),
        (b'{"a": "' + b"[" * 40 + b'"}', False),  # brackets inside a string do not nest
        (b'{"a": "\\"' + b"[" * 40 + b'"}', False),  # nor after an escaped quote
        (b"[" * 5000, True),  # unclosed: as deep as it opens
        (b"[" + b"[1]," * 100 + b"[1]]", False),  # many brackets, shallow
    ],
)
def test_nesting_is_measured_outside_strings(body, too_deep):
    assert nested_too_deep(body) is too_deep


@pytest.mark.parametrize(
    ("body", "repeated"),
    [
        (b'{"type": "deposit", "type": "withdrawal"}', "type"),
        (b'{"a": {"b": 1, "b": 2}}', "b"),
        (b'{"a": "x:y", "b": 1}', None),
        (b'{"a": "x:y", "b": 1, "b": 2}', "b"),
        (b'[{"a": 1}, {"a": 2}]', None),
    ],
)
def test_a_repeated_key_is_found_even_beside_colons_in_strings(body, repeated):
    assert repeated_key(body, msgspec.json.decode(body)) == repeated


class Deposit(msgspec.Struct):
    account_id: int


@pytest.mark.parametrize("body", [b'{"account_id": "1"}', b'{"account_id": 1.0}', b'{"account_id": true}'])
def test_ids_are_taken_only_as_json_integers(body):
    with pytest.raises(Invalid) as refused:
        decode_body(body, "application/json", Deposit)
    assert refused.value.field == "account_id"


def test_only_json_media_types_are_decoded():
    assert decode_body(b'{"account_id": 1}', "application/problem+json", Deposit) == Deposit(account_id=1)
    with pytest.raises(UnsupportedMediaType):
        decode_body(b'{"account_id": 1}', "application/jsonp", Deposit)
