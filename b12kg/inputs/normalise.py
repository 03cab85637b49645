"""The checks every input shares, under public names: numbers (exact decimals, bounded), units
(UCUM, accepted units, the unit a result is compared in), plausibility, times and ages, the latest
result of a test, derived TSAT, and the notes on what a record leaves open. Nothing is guessed:
a result without a unit, with a unit that is not a unit of its test, with a value that is not a
number or outside the plausible range, or with a code of another measurand, is refused with a
message naming the field, the value and the problem."""

from __future__ import annotations

import bisect
import difflib
import math
import numbers
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from collections.abc import Iterable
from typing import Any

from .. import units
from ..errors import InputError, Issue
from ..kb import LabTestInfo, Vocabulary, vocabulary
from .record import (VALUE_RE, COMPARATORS, MAX_DECIMAL_PLACES, MAX_DIGITS, MAX_MAGNITUDE, PatientRecord, Result)


def parse_decimal(value: Any) -> Decimal | None:
    """A number as an exact, bounded Decimal (None when it is not one): Python and NumPy numbers
    (numpy.float64 is a float whose repr is 'np.float64(1.5)'), decimals and numeric text."""
    if isinstance(value, bool) or (hasattr(value, "dtype") and value.dtype.kind == "b"):
        return None
    if isinstance(value, numbers.Integral):
        return _bounded(Decimal(int(value)))
    if isinstance(value, float) or (isinstance(value, numbers.Real) and not isinstance(value, Decimal)):
        value = float(value)
        if not math.isfinite(value):
            return None
        return _bounded(Decimal(repr(value)))
    if isinstance(value, Decimal):
        return _bounded(value)
    if isinstance(value, str):
        try:
            d = Decimal(value.strip())
        except (InvalidOperation, ValueError):
            return None
        return _bounded(d)
    return None


def decimal_places(d: Decimal) -> int:
    """Places after the decimal point, trailing zeros not counted (0 for an integer)."""
    sign, digits, exponent = d.normalize().as_tuple()
    assert isinstance(exponent, int)
    return max(0, -exponent)


def _bounded(d: Decimal) -> Decimal | None:
    """A finite number of at most MAX_DIGITS significant digits, at most MAX_DECIMAL_PLACES
    decimal places and a magnitude under 1e21, else None: such a number stays exact through every
    conversion (the decimal context keeps 28 digits) and in every store b12kg compares it in, and
    its plain form is short; 1e999999999 would overflow the context and 1e-999999999 would be a
    billion characters long."""
    if d.is_zero():
        return Decimal(0)
    sign, digits, exponent = d.as_tuple()
    if not isinstance(exponent, int):           # NaN or infinity
        return None
    n = len(digits)
    if n > 2 * MAX_DIGITS + 2 * MAX_MAGNITUDE:
        return None
    if not -MAX_MAGNITUDE <= exponent + n - 1 <= MAX_MAGNITUDE:
        return None
    significant = n
    while digits[significant - 1] == 0:
        significant -= 1
    places = -(exponent + n - significant)
    return d if significant <= MAX_DIGITS and places <= MAX_DECIMAL_PLACES else None


NOT_TEXT = "is not valid Unicode text (it holds a lone surrogate code point, which no IRI or RDF literal can carry)"


def is_text(s: str) -> bool:
    """True when the string is valid Unicode (encodable as UTF-8): ids and words go into IRIs and
    literals, which a lone surrogate such as '\\ud800' (possible in JSON) would break."""
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def shown_text(s: str) -> str:
    """The string with any lone surrogate written as an escape, so a message can carry it."""
    return s.encode("utf-8", "backslashreplace").decode("utf-8")


def parse_value(value: Any) -> tuple[str, Decimal] | None:
    """('=', 12.5) from 12.5 or '12.5'; ('<', 50) from '<50'. None when it is not a number."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (numbers.Real, Decimal)):
        d = parse_decimal(value)
        return None if d is None else ("=", d)
    if isinstance(value, str) and len(value) <= 64:
        m = VALUE_RE.match(value)
        if m:
            d = parse_decimal(m.group(2))
            if d is not None:
                return (m.group(1) or "=", d)
    return None


def resolve_test(name: str, vocab: Vocabulary, fld: str, issues: list[Issue]) -> LabTestInfo | None:
    """An analyte key (analytes.tsv) or an accepted LOINC code; refused codes say why."""
    if name in vocab.tests_by_key:
        return vocab.tests_by_key[name]
    if name in vocab.tests_by_loinc:
        return vocab.tests_by_loinc[name]
    if name in vocab.refused_codes:
        info, reason = vocab.refused_codes[name]
        issues.append(Issue(fld, name, f"is refused: {reason}"))
        return None
    issues.append(Issue(fld, name, "is not a known analyte key or accepted LOINC code "
                        f"(known keys: {', '.join(sorted(vocab.tests_by_key))})"))
    return None


def normalise_result(info: LabTestInfo, *, value: Any, unit: Any, fld: str, issues: list[Issue],
                     comparator: str | None = None, ref_high: Any = None, ref_low: Any = None,
                     time: datetime | None = None,
                     loinc: str | None = None, source: str | None = None,
                     vocab: Vocabulary | None = None) -> Result | None:
    """Check one result and compute the value as compared; append issues and return None if refused."""
    vocab = vocab or vocabulary()
    source = source or fld
    n_before = len(issues)
    if info.qualitative:
        word = str(value).strip().lower() if isinstance(value, str) else None
        if word not in vocab.qualitative_values:
            issues.append(Issue(f"{fld}.value", value, f"is not a result of {info.key} "
                                f"(expected one of: {', '.join(sorted(vocab.qualitative_values))})"))
            return None
        return Result(key=info.key, test_iri=info.iri, source=source, value_as_given=str(value),
                      qualitative=vocab.qualitative_values[word], time=time, loinc=loinc)
    if value is None:
        issues.append(Issue(f"{fld}.value", None, "is missing: a result needs a value"))
        return None
    parsed = parse_value(value)
    if parsed is None:
        issues.append(Issue(f"{fld}.value", value, f"is not a number b12kg reads (a decimal number of at most {MAX_DIGITS} "
                            f"significant digits and {MAX_DECIMAL_PLACES} decimal places, optionally after <, <=, > or >=)"))
    if comparator is not None:
        if comparator not in COMPARATORS:
            issues.append(Issue(f"{fld}.comparator", comparator, "is not a comparator b12kg reads (<, <=, >, >=)"))
        elif parsed is not None:
            if parsed[0] != "=":
                issues.append(Issue(f"{fld}.comparator", comparator, f"conflicts with the comparator in the value {value!r}"))
            parsed = (comparator, parsed[1])
    accepted = ", ".join(info.units)
    if unit is None or (isinstance(unit, str) and not unit.strip()):
        issues.append(Issue(f"{fld}.unit", None, f"is missing: a unit is required for {info.key} "
                            f"(accepted: {accepted}); no unit is ever assumed"))
    elif not isinstance(unit, str):
        issues.append(Issue(f"{fld}.unit", unit, "is not a UCUM unit string"))
    elif unit not in info.units:
        issues.append(Issue(f"{fld}.unit", unit, _unit_problem(info, unit)))
    if len(issues) > n_before or parsed is None:
        return None
    cmp_, number = parsed
    assert isinstance(unit, str)
    canonical = units.convert(number, info.units[unit].factor_to_canonical)
    lo, hi = info.plausible_low, info.plausible_high
    if lo is not None and hi is not None and not (lo <= canonical <= hi):
        shown = f"{units.to_decimal_string(number)} {unit}"
        if unit != info.canonical_unit:
            shown += f" (= {units.to_decimal_string(canonical)} {info.canonical_unit})"
        issues.append(Issue(f"{fld}.value", value, f"is not plausible for {info.key}: {shown} is outside "
                            f"{units.to_decimal_string(lo)}-{units.to_decimal_string(hi)} {info.canonical_unit}"))
        return None
    compared_unit, factor = _compared_unit(info, unit)
    compared = units.convert(number, factor)
    if factor != 1 and decimal_places(compared) > MAX_DECIMAL_PLACES:
        issues.append(Issue(f"{fld}.value", value, f"has too many decimal places to compare exactly: "
                            f"converted to {compared_unit} (x {units.to_decimal_string(factor)}) it has "
                            f"{decimal_places(compared)}, and at most {MAX_DECIMAL_PLACES} are compared; "
                            "round it to fewer places"))
        return None
    limits: dict[str, Decimal | None] = {}
    for name, given, what in (("ref_high", ref_high, "upper"), ("ref_low", ref_low, "lower")):
        limits[name] = None
        if given is None:
            continue
        r = parse_value(given)
        if r is None or r[0] != "=" or r[1] <= 0:
            issues.append(Issue(f"{fld}.{name}", given, f"is not a positive number (the laboratory's {what} "
                                "reference limit, in the result's own unit)"))
            return None
        problem = limit_problem(info, unit, r[1])
        if problem is not None:
            issues.append(Issue(f"{fld}.{name}", given, problem))
            return None
        limits[name] = units.convert(r[1], factor)
        if decimal_places(limits[name]) > MAX_DECIMAL_PLACES:
            issues.append(Issue(f"{fld}.{name}", given, f"has too many decimal places to compare exactly: "
                                f"converted to {compared_unit} it has {decimal_places(limits[name])}, and at most "
                                f"{MAX_DECIMAL_PLACES} are compared; round it to fewer places"))
            return None
    if limits["ref_high"] is not None and limits["ref_low"] is not None and limits["ref_low"] >= limits["ref_high"]:
        issues.append(Issue(f"{fld}.ref_low", ref_low, f"is not below the upper reference limit {ref_high}"))
        return None
    return Result(key=info.key, test_iri=info.iri, source=source,
                  value_as_given=(cmp_ if cmp_ != "=" else "") + _given_number(value),
                  unit_as_given=unit, comparator=cmp_, value=number, compared_value=compared,
                  compared_unit=compared_unit, canonical_value=canonical, canonical_unit=info.canonical_unit,
                  ref_high_as_given=None if ref_high is None else str(ref_high), ref_high_compared=limits["ref_high"],
                  ref_low_as_given=None if ref_low is None else str(ref_low), ref_low_compared=limits["ref_low"],
                  time=time, loinc=loinc)


def limit_problem(info: LabTestInfo, unit: str, limit: Decimal) -> str | None:
    """Why a laboratory reference limit in ``unit`` is not plausible for the test (outside the
    test's plausible range, as a result would be), or None."""
    canonical = units.convert(limit, info.units[unit].factor_to_canonical)
    lo, hi = info.plausible_low, info.plausible_high
    if lo is None or hi is None or lo <= canonical <= hi:
        return None
    return (f"is not plausible as a reference limit of {info.key}: {units.to_decimal_string(canonical)} "
            f"{info.canonical_unit} is outside {units.to_decimal_string(lo)}-{units.to_decimal_string(hi)} "
            f"{info.canonical_unit}")


def limit_in_unit(info: LabTestInfo, limit: Decimal, limit_unit: str, unit: str) -> Decimal | None:
    """A reference limit given in one accepted unit of the test, exactly in another (None when the
    conversion does not end within MAX_DECIMAL_PLACES places: never rounded)."""
    if limit_unit == unit:
        return limit
    num, den = info.units[limit_unit].factor_to_canonical, info.units[unit].factor_to_canonical
    value = limit * num / den
    if value * den != limit * num or decimal_places(value) > MAX_DECIMAL_PLACES:
        return None
    return value


def _given_number(value: Any) -> str:
    if isinstance(value, str):
        m = VALUE_RE.match(value)
        return m.group(2) if m else value.strip()
    if isinstance(value, float) and value.is_integer():
        return repr(value)
    return str(value)


def _unit_problem(info: LabTestInfo, unit: str) -> str:
    accepted = ", ".join(info.units)
    if info.key == "rdw" and unit == "fL":
        return ("is not a unit of rdw (RDW-CV, in %): a value in fL is RDW-SD (LOINC 21000-5), "
                "a different measurand that is never converted")
    if not units.is_valid_ucum(unit):
        return f"is not a valid UCUM unit; {info.key} is accepted in: {accepted}"
    if info.canonical_unit and units.ucum_factor(unit, info.canonical_unit) is not None:
        return (f"is not an accepted unit of {info.key} (accepted: {accepted}); a value in {unit} "
                "is implausible for this test, so it is refused rather than converted")
    return f"is not a unit of {info.key}: it measures another kind of quantity (accepted: {accepted})"


def _compared_unit(info: LabTestInfo, unit: str) -> tuple[str, Decimal]:
    """Compare in the result's own unit when a cut-off states it (or the same unit spelled
    otherwise, as ng/L for pg/mL); else convert to the canonical unit (Vocabulary.compared_units,
    which holds every accepted unit of every test)."""
    return vocabulary().compared_units[(info.iri, unit)]


def parse_time(value: Any, fld: str, issues: list[Issue]) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, date):
        dt = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            issues.append(Issue(fld, value, "is not an ISO 8601 date or date-time"))
            return None
    else:
        issues.append(Issue(fld, value, "is not an ISO 8601 date or date-time"))
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt


def parse_date(value: Any, fld: str, issues: list[Issue]) -> date | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:                                   # a date, or a full date-time whose day counts:
            return date.fromisoformat(text) if len(text) == 10 else \
                datetime.fromisoformat(text.replace("Z", "+00:00")).date()
        except ValueError:                     # never the first ten characters of anything
            pass
    issues.append(Issue(fld, value, "is not an ISO 8601 date (YYYY-MM-DD)"))
    return None


def exact_age(birth: date, at: date) -> Decimal:
    """Exact age in years: completed years plus the fraction of the current year of age."""
    years = at.year - birth.year - ((at.month, at.day) < (birth.month, birth.day))
    last = _add_years(birth, years)
    nxt = _add_years(birth, years + 1)
    frac = Decimal((at - last).days) / Decimal((nxt - last).days)
    return units.round6(Decimal(years) + frac)


def _add_years(d: date, n: int) -> date:
    try:
        return d.replace(year=d.year + n)
    except ValueError:  # 29 February
        return d.replace(year=d.year + n, month=3, day=1)


def select_latest(candidates: Iterable[Result], key: str, issues: list[Issue], fld: str) -> tuple[Result | None, list[Result]]:
    """The latest result of a test by specimen time; the others are superseded."""
    items = list(candidates)
    if not items:
        return None, []
    if len(items) == 1:
        return items[0], []
    if any(r.time is None for r in items):
        issues.append(Issue(fld, f"{len(items)} results", f"of {key} without specimen times for all of them: "
                            "b12kg cannot tell which is the latest"))
        return None, []
    items.sort(key=lambda r: r.time)  # type: ignore[arg-type, return-value]
    latest = items[-1]
    same_time = [r for r in items if r.time == latest.time]
    if len(same_time) > 1 and len({(r.compared_value, r.comparator, r.qualitative) for r in same_time}) > 1:
        issues.append(Issue(fld, f"{len(same_time)} results", f"of {key} at the same time {latest.time.isoformat()} "
                            "disagree: b12kg cannot tell which counts"))
        return None, []
    return latest, items[:-1]


def derive_tsat(results: dict[str, Result], vocab: Vocabulary, issues: list[Issue] | None = None,
                notes: list[str] | None = None) -> Result | None:
    """TSAT = serum iron / TIBC x 100 (same units), when TSAT was not reported and both are exact
    and from one specimen (their times within SAME_SPECIMEN_WINDOW, or neither timed; else it is not
    derived and ``notes`` says why). Serum iron above TIBC (a saturation over 100 %) is impossible:
    refused, naming both. The quotient is exact when it ends within MAX_DECIMAL_PLACES places
    (15.9999999 stays 15.9999999, never 16); else it is rounded to TSAT_PLACES places, which keeps
    every comparison with a cut-off of fewer places (tests/test_hostile_inputs.py checks the TSAT
    cut-offs have fewer), unless the rounding lands on a number of fewer places: then it is not
    derived (the notes say why)."""
    iron, tibc = results.get("iron"), results.get("tibc")
    if "tsat" in results or iron is None or tibc is None:
        return None
    if iron.comparator != "=" or tibc.comparator != "=" or not tibc.canonical_value:
        return None
    assert iron.canonical_value is not None
    say = notes.append if notes is not None else (lambda _n: None)
    if (iron.time is None) != (tibc.time is None):
        timed, untimed = ("iron", "TIBC") if iron.time is not None else ("TIBC", "iron")
        say(f"Transferrin saturation is not derived: the {timed} result has a specimen time and the {untimed} "
            "result has none, so b12kg cannot tell that they are from one specimen.")
        return None
    if iron.time is not None and tibc.time is not None and abs(iron.time - tibc.time) > SAME_SPECIMEN_WINDOW:
        say(f"Transferrin saturation is not derived: serum iron ({iron.time.isoformat()}) and TIBC "
            f"({tibc.time.isoformat()}) are more than {_window_text(SAME_SPECIMEN_WINDOW)} apart, so not from one "
            "specimen.")
        return None
    exact = iron.canonical_value / tibc.canonical_value * 100
    info = vocab.tests_by_key["tsat"]
    assert info.plausible_high is not None
    if exact > info.plausible_high:
        if issues is not None:
            issues.append(Issue("observations.iron", iron.value_as_given, f"is above the TIBC {tibc.value_as_given}: "
                                f"transferrin saturation would be {units.to_decimal_string(units.round6(exact))} %, "
                                "over 100 %; one of the two is wrong"))
        return None
    value = exact if decimal_places(exact) <= MAX_DECIMAL_PLACES else units.round6(exact)
    if value != exact and decimal_places(value) < TSAT_PLACES:
        say(f"Transferrin saturation is not derived: serum iron / TIBC x 100 = {exact} does not end within "
            f"{MAX_DECIMAL_PLACES} decimal places and rounds onto {units.to_decimal_string(value)}, which could be a "
            "cut-off it is not equal to, so it cannot be compared exactly.")
        return None
    times = [t for t in (iron.time, tibc.time) if t is not None]
    return Result(key="tsat", test_iri=info.iri, source=f"derived from {iron.source} and {tibc.source}",
                  value_as_given=units.to_decimal_string(value), unit_as_given="%", comparator="=", value=value,
                  compared_value=value, compared_unit="%", canonical_value=value, canonical_unit="%",
                  time=max(times) if times else None, derived_from=("iron", "tibc"),
                  derivation="serum iron / TIBC x 100, same units (findings.md)")


TSAT_PLACES = 6


def _window_text(w: timedelta) -> str:
    hours = int(w.total_seconds() // 3600)
    return f"{hours} hours" if hours % 24 else f"{hours // 24} day{'s' if hours != 24 else ''}"


def finish(rec: PatientRecord, candidates: dict[str, list[Result]], issues: list[Issue], vocab: Vocabulary) -> None:
    for key, items in candidates.items():
        latest, older = select_latest(items, key, issues, f"observations.{key}")
        if latest is not None:
            rec.results[key] = latest
            rec.superseded.extend(older)
    tsat = derive_tsat(rec.results, vocab, issues, rec.notes)
    if tsat is not None:
        rec.results["tsat"] = tsat


# -- time and identity (issue 11, point 2) ----------------------------------------------------
# A date up to FUTURE_TOLERANCE after the run's UTC clock is not in the future: a specimen taken
# this morning in a time zone ahead of UTC carries tomorrow's UTC date.
FUTURE_TOLERANCE = timedelta(days=1)
# Serum iron and TIBC combined into a TSAT must be from one specimen: their times at most this apart.
SAME_SPECIMEN_WINDOW = timedelta(hours=24)
# An age given beside dates agrees with the age the dates give when it differs by at most this, or
# when it is a whole number equal to the completed years the dates give (the way an age is written).
AGE_TOLERANCE_YEARS = Decimal("0.1")
# A pregnancy recorded below this age is refused as implausible (a case record) or not read (FHIR).
MIN_PREGNANCY_AGE = Decimal(10)


def run_time() -> datetime:
    """The time of the run (UTC): dates after it (beyond FUTURE_TOLERANCE) are in the future."""
    return datetime.now(timezone.utc)


def in_future(t: date | datetime, now: datetime) -> bool:
    if isinstance(t, datetime):
        return t > now + FUTURE_TOLERANCE
    return t > (now + FUTURE_TOLERANCE).date()


def ages_agree(given: Decimal, computed: Decimal) -> bool:
    """True when an age given in years agrees with the exact age computed from dates (see
    AGE_TOLERANCE_YEARS)."""
    if abs(given - computed) <= AGE_TOLERANCE_YEARS:
        return True
    return given == given.to_integral_value() and Decimal(int(computed)) == given


def age_band(age: Decimal, boundaries: tuple[Decimal, ...]) -> int:
    """Which of the age bands between consecutive ``boundaries`` holds ``age``."""
    return bisect.bisect_right(boundaries, age)


def results_in_other_bands(rec: PatientRecord, birth: date, vocab: Vocabulary) -> list[tuple[str, Decimal]]:
    """The current results taken at an age in another age band of their test's cut-offs
    (Vocabulary.age_boundaries) than the record's age: each result is judged at the age on its own
    date, and the record carries one age. (key, age at the result)."""
    if rec.age_years is None:
        return []
    out = []
    for key, r in sorted(rec.results.items()):
        bounds = vocab.age_boundaries.get(r.test_iri, ())
        if r.time is None or r.derived_from or r.time.date() < birth or not bounds:
            continue
        at = exact_age(birth, r.time.date())
        if age_band(at, bounds) != age_band(rec.age_years, bounds):
            out.append((key, at))
    return out


def add_notes(rec: PatientRecord) -> None:
    """The warnings the output carries about what the record leaves open (findings.md)."""
    notes = rec.notes
    if rec.pregnant is None:
        notes.append("Pregnancy not stated: the patient is taken as not pregnant.")
    if rec.pregnant and rec.sex != "female":
        notes.append(f"Pregnancy recorded with sex {rec.sex or 'not recorded'}: pregnancy cut-offs apply and "
                     "sex-dependent criteria outside pregnancy are not assessed.")
    if rec.sex is None:
        notes.append("Sex not recorded: sex-dependent criteria (anaemia from 15 years outside pregnancy, "
                     "high ferritin, high transferrin saturation) are not assessed.")
    if rec.age_years is None:
        notes.append("Age not recorded: age-dependent criteria (anaemia, ferritin, MCV) are not assessed.")
    elif rec.age_years < Decimal("0.5"):
        notes.append("Under 6 months of age: ferritin is not used and anaemia is not assessed.")
    if rec.pregnant and rec.gestational_weeks is None:
        notes.append("Pregnant with no gestational age: the trimester is unknown.")
    for w in rec.unrecognised_contexts:
        notes.append(f"Context {w!r} is not understood by b12kg; it is kept and has no effect.")
    for w in rec.unrecognised_symptoms:
        notes.append(f"Symptom {w!r} is not understood by b12kg; it is kept and has no effect.")
    if "tsat" in rec.results and rec.results["tsat"].derived_from:
        notes.append("Transferrin saturation was derived from serum iron and TIBC (iron / TIBC x 100).")


# Whether the rules read b12:UnusableResult (findings.md v2, S1: a result reported but unusable
# makes what is built on it unassessed). They do: an unusable result is undecided against every
# cut-off of its test (rules/derive.ttl drv-compare-unusable), and the three-valued companions
# (rules/unassessed.ttl) leave what depends on it unassessed; OralB12Replacement needs SevereAnemia
# decided false, so an unusable haemoglobin never chooses oral B12.
RULES_READ_UNUSABLE_RESULTS = True


def check_assessable(rec: PatientRecord) -> PatientRecord:
    """The record, or an InputError when it holds a reported result the rules cannot yet treat as
    unassessed (see RULES_READ_UNUSABLE_RESULTS): naming each such result and why it is unusable."""
    if rec.unusable_results and not RULES_READ_UNUSABLE_RESULTS:
        raise InputError([Issue(f"results.{key}", None, f"was reported but cannot be used ({why}); b12kg's rules "
                                "cannot yet mark what depends on it as unassessed, so the record is not assessed "
                                "rather than assessed as if the test had not been done")
                          for key, why in sorted(rec.unusable_results.items())], source=rec.source)
    return rec


def check_profile(profile: Any, *, source: str | None = None) -> str:
    """The profile name, or an InputError naming it and the known ones."""
    known = vocabulary().profiles
    if not isinstance(profile, str) or profile not in known:
        raise InputError([Issue("profile", profile, f"is not a profile (known: {', '.join(sorted(known))})")],
                         source=source)
    return profile


def with_profile(rec: PatientRecord, profile: str) -> PatientRecord:
    return replace(rec, profile=check_profile(profile))


def unknown_word_problem(word: str, known: Iterable[str], aliases: dict[str, str], kind: str) -> str:
    """The refusal of a symptom or context word that is neither a word of findings.md nor an alias:
    the nearest accepted words (difflib) and the aliases of each (findings.md v2: an unknown word is
    refused, naming it, the nearest accepted words and their aliases)."""
    canonical = sorted(set(known))
    by_word: dict[str, list[str]] = {}
    for al, kw in aliases.items():
        by_word.setdefault(kw, []).append(al)
    candidates = canonical + sorted(aliases)
    near: list[str] = []
    for c in difflib.get_close_matches(word.lower(), candidates, n=5, cutoff=0.5):
        kw = aliases.get(c, c)
        if kw not in near:
            near.append(kw)
    def shown(kw: str) -> str:
        return kw + (f" ({', '.join(sorted(by_word[kw]))})" if kw in by_word else "")
    hint = (f"nearest accepted: {', '.join(shown(k) for k in near[:3])}" if near
            else f"accepted: {', '.join(shown(k) for k in canonical)}")
    return (f"is not a {kind} word b12kg knows ({hint}); a record with an unknown word is refused as a whole "
            "(findings.md v2), so that a sign it cannot read is never silently dropped")
