"""Money parsing and formatting: the edge where client amounts become integer minor units."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from microbank.platform.errors import Invalid
from microbank.platform.money import MAX_AMOUNT_MINOR, display, format_minor, to_minor


@pytest.mark.parametrize(
    ("value", "minor"),
    [
        ("200.00", 20000),
        (Decimal("200.0"), 20000),
        (200, 20000),
        ("0.01", 1),
        ("1.5", 150),
        ("1000000000.00", MAX_AMOUNT_MINOR),
    ],
)
def test_to_minor_accepts_decimal_amounts(value, minor):
    assert to_minor(value) == minor


@pytest.mark.parametrize(
    "value",
    [
        "1.005",  # three decimal places: a fraction of a cent
        "NaN",
        "sNaN",
        "Infinity",
        "-Infinity",
        "-1.00",
        "0",
        "0.00",
        "abc",
        "",
        "   ",
        True,
        False,
        0.30000000000000004,  # 0.1 + 0.2 as a client's binary float computes it
        1.005,
        float("nan"),
        float("inf"),
        1e30,
        "1_000",  # Python's Decimal() reads digit grouping; a decimal string does not have it
        "\u0661\u0660",  # Arabic-Indic digits
        "1e2",
        " 5.00 ",  # padding and a plus sign are not part of a decimal string
        "+5",
        None,
        [1],
        "1000000000.01",  # one cent above MAX_AMOUNT_MINOR
        10**30,
    ],
)
def test_to_minor_refuses_invalid_amounts(value):
    with pytest.raises(Invalid):
        to_minor(value)


def test_the_error_names_the_field_it_was_given():
    with pytest.raises(Invalid) as caught:
        to_minor("abc", field="deposit")
    assert caught.value.field == "deposit"
    assert "deposit" in caught.value.detail
    assert caught.value.status == 400


def test_the_default_field_name_is_amount():
    with pytest.raises(Invalid) as caught:
        to_minor("-1.00")
    assert caught.value.field == "amount"


@pytest.mark.parametrize(("number", "minor"), [(200.0, 20000), (0.1, 10), (19.99, 1999), (1e9, 100_000_000_000)])
def test_a_json_number_with_at_most_two_decimals_is_read_exactly(number, minor):
    assert to_minor(number) == minor


def test_a_string_that_is_not_a_plain_decimal_gets_the_decimal_string_hint():
    with pytest.raises(Invalid, match=r'decimal string like "200.00"'):
        to_minor("1_000")


def test_zero_is_allowed_only_when_asked_for():
    with pytest.raises(Invalid, match="greater than zero"):
        to_minor("0")
    assert to_minor("0", allow_zero=True) == 0
    assert to_minor("0.00", allow_zero=True) == 0
    with pytest.raises(Invalid, match="zero or more"):
        to_minor("-0.01", allow_zero=True)


def test_the_upper_bound_message_shows_the_maximum():
    with pytest.raises(Invalid, match=r"at most 1000000000\.00"):
        to_minor("1000000000.01")


@pytest.mark.parametrize("value", ["1E+999999", "9E+999999999"])
def test_an_absurd_exponent_is_an_invalid_amount_not_a_crash(value):
    with pytest.raises(Invalid):
        to_minor(value)


@pytest.mark.parametrize(
    ("minor", "text"),
    [(90000, "900.00"), (5, "0.05"), (0, "0.00"), (100, "1.00"), (-5, "-0.05"), (-12345, "-123.45")],
)
def test_format_minor(minor, text):
    assert format_minor(minor) == text


@pytest.mark.parametrize(
    ("minor", "currency", "text"),
    [
        (20000, "USD", "$200.00"),
        (123456789, "EUR", "€1,234,567.89"),
        (-20000, "USD", "-$200.00"),
        (5, "GBP", "£0.05"),
        (100, "XYZ", "XYZ 1.00"),
    ],
)
def test_display(minor, currency, text):
    assert display(minor, currency) == text


@given(st.integers(min_value=1, max_value=MAX_AMOUNT_MINOR))
def test_format_then_parse_round_trips(minor):
    assert to_minor(format_minor(minor)) == minor


@given(st.integers(min_value=MAX_AMOUNT_MINOR + 1, max_value=MAX_AMOUNT_MINOR * 10))
def test_every_amount_above_the_maximum_is_refused(minor):
    with pytest.raises(Invalid):
        to_minor(format_minor(minor))
