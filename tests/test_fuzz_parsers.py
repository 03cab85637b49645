"""Parsers under fuzzing (issue 5): malformed YAML, JSON, FHIR Bundles, Turtle, N-Triples, JSON-LD
and cohort CSV/NDJSON never raise anything but b12kg.InputError for a single record (through
b12kg.load_record, b12kg.assess and ``b12kg validate``), and every refusal names where the
problem is: a field path, or for text that does not parse a line and column (or byte offset).
A cohort run never stops for a bad record: it goes to rejects.ndjson with its reason and row.

The inputs mutated are the shared acceptance cases, the shared FHIR Bundle, and RDF written from
them: byte flips, truncation, insertion of syntax and hostile tokens, type swaps (number, string,
list, mapping, null), deep nesting, huge numbers, NaN and Infinity, unicode. The number of
examples is bounded for ``make test`` (B12KG_FUZZ_EXAMPLES, default 40 per property);
tests/fuzz/run_fuzz.py runs the same properties for minutes with many more."""

from __future__ import annotations

import copy
import io
import json
import os
import re
from contextlib import redirect_stderr, redirect_stdout
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import b12kg
from b12kg import InputError

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO / "vendor" / "shared" / "cases"
BUNDLE = SHARED / "fhir" / "p21-dual-deficiency.bundle.json"

EXAMPLES = int(os.environ.get("B12KG_FUZZ_EXAMPLES", "40"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=os.environ.get("B12KG_FUZZ_RANDOM") is None,
                suppress_health_check=list(HealthCheck), database=None)


def _bundle() -> dict:
    return json.loads(BUNDLE.read_text(encoding="utf-8"))


# ---------------------------------------------------------------------------------------------
# What a refusal must look like
# ---------------------------------------------------------------------------------------------
_POSITION = re.compile(r"line \d+|column \d+|byte \d+|character \d+|char \d+|position \d+|Invalid line")


def assert_located(err: InputError) -> None:
    """Every issue names a field; an issue about the whole text (it does not parse) names a place
    in it, unless it is about the file itself (size, cannot be read)."""
    assert isinstance(err, InputError)
    assert err.issues, err
    for issue in err.issues:
        assert isinstance(issue.field, str) and issue.field.strip(), issue
        assert isinstance(issue.problem, str) and issue.problem.strip(), issue
        if issue.field in ("file", "document") and not re.search(r"byte limit|cannot be read|is not \.ttl", issue.problem):
            assert _POSITION.search(issue.problem), f"no place named in: {issue}"
    str(err)                                   # printable
    json.dumps(err.to_json(), ensure_ascii=False)


def load_or_refuse(source):
    """load_record, which must either return a record or raise a located InputError."""
    try:
        return b12kg.load_record(source)
    except InputError as err:
        assert_located(err)
        return None


def assess_or_refuse(source):
    try:
        return b12kg.assess(source)
    except InputError as err:
        assert_located(err)
        return None


# ---------------------------------------------------------------------------------------------
# FHIR regressions
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("birth", ["2026", "1982-03"])
def test_fhir_partial_birth_date_is_refused_naming_it(birth):
    # Before: TypeError comparing the date of the specimen with the string '2026'.
    b = _bundle()
    b["entry"][0]["resource"]["birthDate"] = birth
    with pytest.raises(InputError) as exc:
        b12kg.assess(b)
    assert [i.field for i in exc.value.issues] == ["Patient.birthDate"] and "partial date" in str(exc.value)


@pytest.mark.parametrize("field,value", [("effectiveDateTime", "2026"), ("effectiveDateTime", "2026-10"),
                                         ("issued", None)])
def test_fhir_partial_specimen_time_is_refused_naming_it(field, value):
    b = _bundle()
    res = b["entry"][1]["resource"]
    if field == "issued":
        del res["effectiveDateTime"]
        res["effectivePeriod"] = {"start": "2026"}
        field = "effectivePeriod.start"
    else:
        res[field] = value
    with pytest.raises(InputError) as exc:
        b12kg.assess(b)
    assert any(i.field.endswith(f"(Observation/obs-1).{field}") for i in exc.value.issues), exc.value


def test_fhir_date_only_specimen_time_mixed_with_date_times_is_read_as_that_day():
    # Before: TypeError comparing a date with the datetimes of the other results.
    b = _bundle()
    b["entry"][1]["resource"]["effectiveDateTime"] = "2026-10-02"
    a = b12kg.assess(b)
    assert a.codes == b12kg.assess(_bundle()).codes


def test_fhir_two_results_one_date_only_the_latest_counts():
    b = _bundle()
    hb = copy.deepcopy(b["entry"][1])
    hb["fullUrl"] = "urn:uuid:older-hb"
    hb["resource"]["id"] = "older-hb"
    hb["resource"]["effectiveDateTime"] = "2026-09-01"
    hb["resource"]["valueQuantity"]["value"] = 15.0
    b["entry"].append(hb)
    a = b12kg.assess(b)
    assert "Anemia" in a.codes                    # the later 9.9 g/dL counts, not the 15.0 of September


@pytest.mark.parametrize("birth", ["1800-10-03", "0001-01-01"])
def test_fhir_birth_date_giving_an_age_of_150_or_more_is_refused(birth):
    # Before: accepted as an adult of 226 or 2025 years (the case format refuses such ages).
    b = _bundle()
    b["entry"][0]["resource"]["birthDate"] = birth
    with pytest.raises(InputError, match="gives an age of"):
        b12kg.assess(b)


def test_fhir_bundle_with_more_observations_than_a_record_may_hold_is_refused_before_parsing():
    # Before: a Bundle of 10,001 Observations was parsed and assessed (the case format refuses
    # more than 10,000 results).
    import time

    from b12kg.record import MAX_RESULTS_PER_RECORD

    b = _bundle()
    obs = b["entry"][1]
    t0 = datetime(2020, 1, 1)
    for i in range(MAX_RESULTS_PER_RECORD + 1 - 6):
        e = copy.deepcopy(obs)
        e["fullUrl"] = f"urn:uuid:x-{i}"
        e["resource"]["id"] = f"x{i}"
        e["resource"]["effectiveDateTime"] = (t0 + timedelta(minutes=i)).isoformat() + "+00:00"
        b["entry"].append(e)
    start = time.perf_counter()
    with pytest.raises(InputError) as exc:
        b12kg.assess(b)
    assert time.perf_counter() - start < 2.0
    assert exc.value.issues[0].field == "Bundle.entry" and "10001 Observations" in str(exc.value)
