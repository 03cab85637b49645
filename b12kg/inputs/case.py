"""The case format of shared/cases/README.md (YAML, JSON or a Python dict): a hand-written record,
read strictly: an unknown field, word or unit refuses the whole record, naming it."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from ..errors import InputError, Issue
from ..kb import vocabulary
from .. import units
from .normalise import (AGE_TOLERANCE_YEARS, FUTURE_TOLERANCE, MIN_PREGNANCY_AGE, NOT_TEXT, add_notes, ages_agree,
                        exact_age, finish, in_future, is_text, normalise_result, parse_date, parse_decimal, parse_time,
                        resolve_test, results_in_other_bands, run_time, shown_text, unknown_word_problem)
from .record import MAX_AGE, MAX_DECIMAL_PLACES, MAX_GESTATIONAL_WEEKS, MAX_RESULTS_PER_RECORD, PatientRecord, Result

_RESULT_FIELDS = frozenset({"value", "unit", "ref_high", "ref_low", "time", "comparator"})
# Top-level fields of a case record. The ignored ones are about the case, not the patient, and are
# not read (shared/cases/README.md: expect, claims; b12kg.synth: corruption; a free description).
_IGNORED_FIELDS = frozenset({"expect", "claims", "corruption", "description"})
_RECORD_FIELDS = frozenset({"id", "patient", "observations", "symptoms", "context", "profile"}) | _IGNORED_FIELDS


def record_from_case(data: Any, *, source: str | None = None, profile: str | None = None) -> PatientRecord:
    """Read the case format of shared/cases/README.md (already parsed from YAML or JSON)."""
    vocab = vocabulary()
    issues: list[Issue] = []
    if not isinstance(data, Mapping):
        raise InputError([Issue("record", type(data).__name__, "is not a mapping (a YAML or JSON object)")], source=source)
    for k in sorted((k for k in data if k not in _RECORD_FIELDS), key=str):
        issues.append(Issue(str(k) if str(k).strip() else repr(str(k)), None, "is not a field of a record (fields: "
                            f"{', '.join(sorted(_RECORD_FIELDS - _IGNORED_FIELDS))}): a misspelt field must not "
                            "drop what it holds silently"))
    rid = data.get("id")
    if rid is None:
        rid = source or "patient"
    if not isinstance(rid, (str, int)) or isinstance(rid, bool) or str(rid).strip() == "":
        issues.append(Issue("id", rid, "is not a non-empty string"))
        rid = "patient"
    rid = str(rid)
    if not is_text(rid):
        issues.append(Issue("id", shown_text(rid), NOT_TEXT))
        rid = "patient"
    patient = data.get("patient") or {}
    if not isinstance(patient, Mapping):
        issues.append(Issue("patient", patient, "is not a mapping"))
        patient = {}
    rec = PatientRecord(id=rid, source=source)
    _patient_fields(rec, patient, issues)
    prof = profile or data.get("profile") or "default"
    if not isinstance(prof, str) or prof not in vocab.profiles:
        issues.append(Issue("profile", prof, f"is not a profile (known: {', '.join(sorted(vocab.profiles))})"))
    else:
        rec.profile = prof
    obs = data.get("observations") or {}
    if not isinstance(obs, Mapping):
        issues.append(Issue("observations", obs, "is not a mapping from analyte key or LOINC code to a result"))
        obs = {}
    candidates: dict[str, list[Result]] = {}
    count = 0
    for name, entry in obs.items():
        fld = f"observations.{name}"
        info = resolve_test(str(name), vocab, fld, issues)
        entries = entry if isinstance(entry, list) else [entry]
        for i, e in enumerate(entries):
            count += 1
            if count > MAX_RESULTS_PER_RECORD:
                issues.append(Issue("observations", f"more than {MAX_RESULTS_PER_RECORD} results", "is too many for one record"))
                raise InputError(issues, source=source)
            efld = fld if len(entries) == 1 else f"{fld}[{i}]"
            if info is None:
                continue
            if type(e) is not dict and not isinstance(e, Mapping):
                issues.append(Issue(efld, e, "is not a result (a mapping with value and unit)"))
                continue
            unknown = e.keys() - _RESULT_FIELDS
            if unknown:
                issues.append(Issue(efld, ", ".join(sorted(map(str, unknown))), "are not fields of a result "
                                    "(value, unit, ref_high, ref_low, time, comparator)"))
                continue
            t = parse_time(e["time"], f"{efld}.time", issues) if "time" in e else None
            r = normalise_result(info, value=e.get("value"), unit=e.get("unit"), fld=efld, issues=issues,
                                 comparator=e.get("comparator"), ref_high=e.get("ref_high"), ref_low=e.get("ref_low"), time=t,
                                 loinc=str(name) if str(name) in info.loinc else None, vocab=vocab)
            if r is not None:
                candidates.setdefault(info.key, []).append(r)
    finish(rec, candidates, issues, vocab)
    rec.symptoms = _words(data.get("symptoms"), "symptoms", vocab.symptoms, vocab.symptom_aliases, issues)
    rec.contexts = _words(data.get("context"), "context", vocab.contexts, vocab.context_aliases, issues)
    if rec.pregnant and "postpartum" in rec.contexts:
        issues.append(Issue("context", "postpartum", "is recorded for a patient recorded as pregnant: a record both "
                            "pregnant and postpartum is refused (findings.md v2), since the two haemoglobin cut-offs differ"))
    if issues:
        raise InputError(issues, source=source)
    _check_dates(rec, patient, candidates, issues, vocab)
    if issues:
        raise InputError(issues, source=source)
    add_notes(rec)
    return rec


def _check_dates(rec: PatientRecord, patient: Mapping, candidates: dict[str, list[Result]], issues: list[Issue],
                 vocab) -> None:
    """Time and age are checked, not assumed (issue 11): no date in the future of the run or
    before birth; a specimen date that is the date of the latest result (within one day); an age
    given beside a birth date that agrees with it (normalise.ages_agree); every current result
    taken at an age in the same age band as the record's age; no pregnancy under MIN_PREGNANCY_AGE."""
    now = run_time()
    birth = parse_date(patient.get("birth_date"), "patient.birth_date", issues) if "birth_date" in patient else None
    specimen = parse_date(patient.get("specimen_date"), "patient.specimen_date", issues) \
        if patient.get("specimen_date") is not None else None
    if birth is not None and in_future(birth, now):
        issues.append(Issue("patient.birth_date", str(birth), f"is in the future of the run ({now.date()})"))
    if specimen is not None and in_future(specimen, now):
        issues.append(Issue("patient.specimen_date", str(specimen), f"is in the future of the run ({now.date()})"))
    for key, items in sorted(candidates.items()):
        for r in items:
            if r.time is not None and in_future(r.time, now):
                issues.append(Issue(f"observations.{key}.time", r.time.isoformat(),
                                    f"is in the future of the run ({now.isoformat(timespec='seconds')})"))
            elif r.time is not None and birth is not None and r.time.date() < birth:
                issues.append(Issue(f"observations.{key}.time", r.time.isoformat(), f"is before the birth date {birth}"))
    times = [r.time for r in rec.results.values() if r.time is not None]
    latest = max(times).date() if times else None
    if specimen is not None and latest is not None and abs((specimen - latest).days) > FUTURE_TOLERANCE.days:
        issues.append(Issue("patient.specimen_date", str(specimen), f"is not the date of the latest result ({latest}): "
                            "the age is computed at the specimen date, so the two must agree (within one day)"))
    if issues:
        return
    at = specimen or latest
    if birth is not None and at is not None:
        if at < birth:
            issues.append(Issue("patient.birth_date", str(birth), f"is after the specimen date {at}"))
            return
        age = exact_age(birth, at)
        if age >= MAX_AGE:
            issues.append(Issue("patient.birth_date", str(birth), f"gives an age of {age} years at {at}, which is not valid"))
            return
        if rec.age_years is None:
            rec.age_years = age
        elif not ages_agree(rec.age_years, age):
            issues.append(Issue("patient.age_years", patient.get("age_years"), f"does not agree with the birth date "
                                f"{birth}, which gives {units.format_decimal(age)} years at {at} (an age given beside "
                                f"dates must be within {AGE_TOLERANCE_YEARS} years of it, or its completed years)"))
            return
        for key, age_at in results_in_other_bands(rec, birth, vocab):
            issues.append(Issue(f"observations.{key}.time", rec.results[key].time.isoformat(),  # type: ignore[union-attr]
                                f"is a result taken at age {units.format_decimal(age_at)} years, in another age band "
                                f"than the record's age {units.format_decimal(rec.age_years)}: it would be judged by "
                                "the cut-offs of the wrong age; give it as a record of its own"))
    elif birth is not None and rec.age_years is None:
        rec.notes.append("Age not known: a birth date is recorded but no specimen date, so age-dependent criteria are "
                         "not assessed.")
    if rec.pregnant and rec.age_years is not None and rec.age_years < MIN_PREGNANCY_AGE:
        issues.append(Issue("patient.pregnant", True, f"is recorded for a patient of {units.format_decimal(rec.age_years)} "
                            f"years: a pregnancy under {MIN_PREGNANCY_AGE} years is not plausible"))


def _patient_fields(rec: PatientRecord, patient: Mapping, issues: list[Issue]) -> None:
    known = {"sex", "age_years", "birth_date", "pregnant", "gestational_weeks", "specimen_date"}
    unknown = set(patient) - known
    if unknown:
        issues.append(Issue("patient", ", ".join(sorted(map(str, unknown))), f"are not patient fields ({', '.join(sorted(known))})"))
    sex = patient.get("sex")
    if sex is not None:
        if not isinstance(sex, str) or sex.strip().lower() not in ("female", "male"):
            issues.append(Issue("patient.sex", sex, "is not female or male (leave it out when not recorded)"))
        else:
            rec.sex = sex.strip().lower()
    if "age_years" in patient:
        age = parse_decimal(patient.get("age_years"))
        if age is None or not (Decimal(0) <= age < MAX_AGE):
            issues.append(Issue("patient.age_years", patient.get("age_years"),
                                f"is not a valid age: it must be a number of years from 0 to under {MAX_AGE}, "
                                f"of at most {MAX_DECIMAL_PLACES} decimal places"))
        else:
            rec.age_years = age
    preg = patient.get("pregnant")
    if preg is not None:
        if not isinstance(preg, bool):
            issues.append(Issue("patient.pregnant", preg, "is not true or false"))
        else:
            rec.pregnant = preg
    if "gestational_weeks" in patient:
        gw = parse_decimal(patient.get("gestational_weeks"))
        if gw is None or not (Decimal(0) <= gw <= MAX_GESTATIONAL_WEEKS):
            issues.append(Issue("patient.gestational_weeks", patient.get("gestational_weeks"),
                                f"is not a number of completed weeks from 0 to {MAX_GESTATIONAL_WEEKS} "
                                f"(at most {MAX_DECIMAL_PLACES} decimal places)"))
        elif rec.pregnant is False:
            issues.append(Issue("patient.gestational_weeks", patient.get("gestational_weeks"),
                                "is given for a patient recorded as not pregnant"))
        else:
            rec.gestational_weeks = gw
            if rec.pregnant is None:
                rec.pregnant = True


def _words(value: Any, fld: str, known: Mapping[str, str], aliases: Mapping[str, str],
           issues: list[Issue]) -> list[str]:
    """The canonical keywords of a symptoms or context list, aliases resolved; an unknown word is
    an issue naming it, the nearest accepted words and their aliases (findings.md v2)."""
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        issues.append(Issue(fld, value, "is not a list of words"))
        return []
    ok = []
    for i, w in enumerate(value):
        if not isinstance(w, str):
            issues.append(Issue(f"{fld}[{i}]", w, "is not a word"))
            continue
        if not is_text(w):
            issues.append(Issue(f"{fld}[{i}]", shown_text(w), NOT_TEXT))
            continue
        word = w.strip()
        if not word:
            continue
        if word in known:
            ok.append(word)
        elif word in aliases:
            ok.append(aliases[word])
        else:
            issues.append(Issue(f"{fld}[{i}]", word, unknown_word_problem(
                word, known, dict(aliases), "symptom" if fld == "symptoms" else "context")))
    return sorted(set(ok))
