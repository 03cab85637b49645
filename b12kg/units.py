"""UCUM units: parsing and dimension checks with a maintained UCUM library (ucumvert, which
parses UCUM with the official grammar into pint quantities), exact conversions with decimals.

The conversion factors themselves are ontology data (analytes.tsv): mass-to-molar factors are not
UCUM facts. UCUM is used to tell whether a unit string is valid UCUM at all, whether two units are
the same unit under another spelling (pg/mL and ng/L), and whether a refused unit at least has
the right dimension, so that error messages say what is wrong."""

from __future__ import annotations

import functools
import threading
from decimal import ROUND_HALF_EVEN, Decimal

_lock = threading.Lock()


@functools.lru_cache(maxsize=1)
def _registry():
    from ucumvert import PintUcumRegistry  # imported lazily: it builds a grammar and a unit registry

    return PintUcumRegistry()


@functools.lru_cache(maxsize=512)
def parse(unit: str):
    """The pint unit of a UCUM string, or None if it is not valid UCUM."""
    with _lock:
        try:
            return _registry().from_ucum(unit)
        except Exception:  # ucumvert raises lark and pint errors of several kinds
            return None


def is_valid_ucum(unit: str) -> bool:
    return parse(unit) is not None


@functools.lru_cache(maxsize=512)
def ucum_factor(from_unit: str, to_unit: str) -> float | None:
    """The factor from one UCUM unit to another if they have the same dimension, else None."""
    a, b = parse(from_unit), parse(to_unit)
    if a is None or b is None:
        return None
    with _lock:
        try:
            return float((1 * a).to(b).magnitude)
        except Exception:
            return None


def same_unit(a: str, b: str) -> bool:
    """True when two UCUM strings denote the same unit (factor 1 between them)."""
    if a == b:
        return True
    f = ucum_factor(a, b)
    return f is not None and abs(f - 1.0) < 1e-12


SIX_PLACES = Decimal("0.000001")


def to_decimal_string(d: Decimal) -> str:
    """A plain decimal lexical form (xsd:decimal): no exponent, no trailing zeros beyond one."""
    s = format(d, "f")
    if "." in s:
        s = s.rstrip("0")
        if s.endswith("."):
            s += "0"
    else:
        s += ".0"
    if s in ("-0.0",):
        s = "0.0"
    return s


def format_decimal(d: Decimal | None) -> str | None:
    """A decimal as people read it: the plain form without a trailing ".0" (None stays None).

    >>> format_decimal(Decimal("105.00")), format_decimal(Decimal("0.280")), format_decimal(None)
    ('105', '0.28', None)
    """
    if d is None:
        return None
    s = to_decimal_string(d)
    return s[:-2] if s.endswith(".0") else s


def convert(value: Decimal, factor: Decimal) -> Decimal:
    """Exact decimal conversion; a product of two decimals needs no rounding."""
    return value * factor


def round6(value: Decimal) -> Decimal:
    return value.quantize(SIX_PLACES, rounding=ROUND_HALF_EVEN)
