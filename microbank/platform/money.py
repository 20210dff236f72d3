"""Money at the edge: decimal strings or two-decimal JSON numbers in, integer minor units inside."""

from __future__ import annotations

import math
import re
from decimal import Decimal

from microbank.platform.errors import Invalid

MINOR_PER_MAJOR = 100
# One billion in any currency: far above any retail amount, far below BIGINT's range,
# so sums of many postings can never overflow.
MAX_AMOUNT_MINOR = 1_000_000_000 * MINOR_PER_MAJOR
MAX_AMOUNT = Decimal(MAX_AMOUNT_MINOR) / MINOR_PER_MAJOR

CURRENCY_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "CAD": "CA$", "AUD": "A$", "CHF": "CHF "}


# What a client may send: a decimal string, or a JSON number, which Litestar's JSON decoder
# has already turned into an int or a binary float.
AmountIn = str | int | float

# ASCII digits only and nothing around them: Python's Decimal() would also take "1_000",
# non-Latin digits, " 5 " or "+5". A minus is read, so that "-5" is refused for what it is.
_DECIMAL_STRING = re.compile(r"-?[0-9]+(\.[0-9]+)?")


def to_minor(value: AmountIn | Decimal, *, field: str = "amount", allow_zero: bool = False) -> int:
    """Parse an amount a client sent into minor units, or raise Invalid naming the field."""
    amount = _as_decimal(value, field)
    if not amount.is_finite():
        raise Invalid(f"{field} must be a finite number", field=field)
    if amount.as_tuple().exponent < -2:  # type: ignore[operator]
        raise Invalid(f"{field} must have at most two decimal places", field=field)
    if amount < 0 or (amount == 0 and not allow_zero):
        bound = "zero or more" if allow_zero else "greater than zero"
        raise Invalid(f"{field} must be {bound}", field=field)
    # Compared before scaling: multiplying an exponent like 1E+999999 would overflow.
    if amount > MAX_AMOUNT:
        raise Invalid(f"{field} must be at most {format_minor(MAX_AMOUNT_MINOR)}", field=field)
    return int(amount * MINOR_PER_MAJOR)


def _as_decimal(value: AmountIn | Decimal, field: str) -> Decimal:
    if isinstance(value, str) and _DECIMAL_STRING.fullmatch(value):
        return Decimal(value)
    if isinstance(value, float) and math.isfinite(value):
        # The shortest text that reads back as this float: 200.0 for 200.00, and
        # 0.30000000000000004 for 0.1 + 0.2, which then fails the two-decimal rule. Below
        # MAX_AMOUNT a two-decimal amount has at most 12 digits, which a float holds exactly.
        return Decimal(repr(value))
    if isinstance(value, Decimal | int) and not isinstance(value, bool):
        return Decimal(value)
    raise Invalid(f'{field} must be a decimal string like "200.00"', field=field)


def format_minor(minor: int) -> str:
    """Minor units as the decimal string clients see: 90000 -> "900.00"."""
    sign = "-" if minor < 0 else ""
    whole, cents = divmod(abs(minor), MINOR_PER_MAJOR)
    return f"{sign}{whole}.{cents:02d}"


def display(minor: int, currency: str) -> str:
    """Human text for messages: 20000, "USD" -> "$200.00"."""
    symbol = CURRENCY_SYMBOLS.get(currency, f"{currency} ")
    whole, cents = divmod(abs(minor), MINOR_PER_MAJOR)
    return f"{'-' if minor < 0 else ''}{symbol}{whole:,}.{cents:02d}"
