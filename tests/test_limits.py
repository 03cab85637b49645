"""Limits (issue 5): numbers b12kg cannot compare exactly, records with thousands of results, huge
and deeply nested inputs. Each is either handled in bounded time and memory or refused with an
InputError that names where the problem is."""

from __future__ import annotations

import time

import pytest

import b12kg
from b12kg import InputError

ADULT = {"sex": "female", "age_years": 40}


def _ferritin(value, **extra) -> dict:
    return {"id": "limits", "patient": dict(ADULT), "observations": {"ferritin": {"value": value, "unit": "ug/L", **extra}}}


def _refused(record, *words: str, seconds: float = 5.0) -> InputError:
    t0 = time.perf_counter()
    with pytest.raises(InputError) as exc:
        b12kg.assess(record)
    assert time.perf_counter() - t0 < seconds
    text = str(exc.value)
    for w in words:
        assert w in text, (w, text[:300])
    assert len(text) < 5000, "a refusal message stays short whatever the input"
    return exc.value


# ---------------------------------------------------------------------------------------------
# Numbers
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("value", [
    "1e1000000",            # overflowed the decimal context (decimal.Overflow escaped the loader)
    "1e999999999",
    "-1e999999999",
    "1e-999999999",         # its plain form is a billion characters: formatting it ran out of memory
    "1e21",
    "1e-21",
    "29.99999999999999999999999999999",   # 31 digits: rounded to 30 in the 28-digit context, not < 30
    "1" * 60,
])
def test_numbers_beyond_exact_comparison_are_refused_naming_the_field(value):
    _refused(_ferritin(value), "observations.ferritin.value", "not a number", seconds=2)


@pytest.mark.parametrize("value", ["<1e999999999", ">=1e-999999999"])
def test_censored_numbers_beyond_exact_comparison_are_refused(value):
    _refused(_ferritin(value), "observations.ferritin.value", seconds=2)


def test_huge_reference_limit_and_age_are_refused():
    rec = {"id": "x", "patient": dict(ADULT),
           "observations": {"mma": {"value": 0.3, "unit": "umol/L", "ref_high": "1e999999999"}}}
    _refused(rec, "observations.mma.ref_high", seconds=2)
    _refused({"id": "x", "patient": {"age_years": "1e-999999999"}}, "patient.age_years", seconds=2)


def test_twenty_significant_digits_are_still_read_exactly():
    a = b12kg.assess(_ferritin("29.999999999999999999"))     # 20 digits, below 30
    assert "LowFerritin" in a.codes
    a = b12kg.assess(_ferritin("30.000000000000000000"))     # trailing zeros are not significant
    assert "LowFerritin" not in a.codes
