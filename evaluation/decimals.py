"""Decimal helpers: the one arithmetic context, parsing and formatting of decimal strings.

Every amount and score in the evaluation is a ``decimal.Decimal`` computed in a local context
of precision 28 (intermediate results round half-even at the 28th significant digit, as
Python's default context does).  The values the design names (price score, each commercial
criterion's score, the technical score) are rounded once to two places, ROUND_HALF_UP.
Floats never appear: the scoring file carries decimal strings and they are parsed here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import (
    ROUND_HALF_EVEN,
    ROUND_HALF_UP,
    Context,
    Decimal,
    DivisionByZero,
    InvalidOperation,
    Overflow,
    localcontext,
)

PRECISION = 28
TWO_PLACES = Decimal("0.01")
ZERO = Decimal(0)
HUNDRED = Decimal(100)

# Plain decimal notation only: no exponent, no leading "+", no leading zeros, no bare ".5".
DECIMAL_PATTERN = r"^-?(0|[1-9][0-9]*)(\.[0-9]+)?$"
_DECIMAL_RE = re.compile(DECIMAL_PATTERN)


def make_context() -> Context:
    """The arithmetic context of every evaluation: precision 28, errors trap."""
    return Context(
        prec=PRECISION,
        rounding=ROUND_HALF_EVEN,
        traps=[InvalidOperation, DivisionByZero, Overflow],
    )


@contextmanager
def evaluation_context() -> Iterator[Context]:
    """Run a block in the evaluation context (a local context; the caller's is untouched)."""
    with localcontext(make_context()) as ctx:
        yield ctx


def is_decimal_string(value: object) -> bool:
    """True when ``value`` is a ``str`` in plain decimal notation (``"12"``, ``"-0.05"``)."""
    return isinstance(value, str) and _DECIMAL_RE.fullmatch(value) is not None


def parse_decimal(value: str) -> Decimal:
    """Parse a plain decimal string; anything else (numbers, floats, exponents) is refused."""
    if not is_decimal_string(value):
        raise ValueError(f"not a decimal string: {value!r}")
    return Decimal(value)


def round2(value: Decimal) -> Decimal:
    """Round once to two places, half up (the design's only rounding of a reported score)."""
    with evaluation_context():
        return _unsigned_zero(value.quantize(TWO_PLACES, rounding=ROUND_HALF_UP))


def fmt(value: Decimal) -> str:
    """A decimal as a plain string, no exponent; ``-0`` is written ``0``."""
    return format(_unsigned_zero(value), "f")


def _unsigned_zero(value: Decimal) -> Decimal:
    return value.copy_abs() if value.is_zero() else value
