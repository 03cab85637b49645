"""FHIR R4 input: a Bundle with one Patient and its laboratory Observations, parsed and validated
with fhir.resources (the R4B models, which for Bundle, Patient and Observation read R4 as is).

- Patient.gender and Patient.birthDate; age is computed at the specimen date of the latest result.
- Observations are read by LOINC code (system http://loinc.org), or by b12kg analyte key under the
  system https://w3id.org/b12kg/analyte (for tests with no verified LOINC code: holotc,
  if_antibody). Only status final, amended or corrected counts; others are listed in the notes.
- valueQuantity must carry a UCUM code (system http://unitsofmeasure.org); its comparator makes the
  result censored; referenceRange.high gives the laboratory's upper limit. valueCodeableConcept or
  valueString 'positive'/'negative' for qualitative tests.
- Observations of tests b12kg does not read are listed in the notes, never silently dropped; codes
  of other measurands that look like ours (whole-blood B12 16695-9, ...) are refused with the reason.
- Nothing is fetched: references are only compared as strings.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any, Mapping

from ..errors import InputError, Issue
from ..kb import vocabulary
from ..rdf.terms import ANALYTE_SYSTEM
from .files import check_structure
from .normalise import add_notes, exact_age, finish, normalise_result
from .record import MAX_AGE, MAX_RESULTS_PER_RECORD, PatientRecord, Result

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
B12KG_ANALYTE = ANALYTE_SYSTEM
COUNTING_STATUS = ("final", "amended", "corrected")


def is_bundle(data: Any) -> bool:
    return isinstance(data, Mapping) and data.get("resourceType") == "Bundle"


def _pydantic_issues(exc: Exception) -> list[Issue]:
    issues = []
    errors = getattr(exc, "errors", None)
    if callable(errors):
        for e in errors()[:20]:
            loc = ".".join(str(x) for x in e.get("loc", ()))
            issues.append(Issue(f"Bundle.{loc}" if loc else "Bundle", e.get("input") if not isinstance(e.get("input"), (dict, list)) else None,
                                e.get("msg", "is not valid FHIR R4")))
    return issues or [Issue("Bundle", None, f"is not a valid FHIR R4 Bundle: {exc}")]


def record_from_bundle(data: Mapping, *, source: str | None = None, profile: str = "default") -> PatientRecord:
    from fhir.resources.R4B.bundle import Bundle

    check_structure(data, source=source)
    entries = data.get("entry")
    if isinstance(entries, list):
        n_obs = sum(1 for e in entries if isinstance(e, Mapping) and isinstance(e.get("resource"), Mapping)
                    and e["resource"].get("resourceType") == "Observation")
        if n_obs > MAX_RESULTS_PER_RECORD:
            raise InputError([Issue("Bundle.entry", f"{n_obs} Observations", f"are more than the {MAX_RESULTS_PER_RECORD} "
                                    "results one record may hold")], source=source)
    try:
        bundle = Bundle.model_validate(data)
    except Exception as exc:  # pydantic.ValidationError and the model's own checks
        raise InputError(_pydantic_issues(exc), source=source) from None
    vocab = vocabulary()
    issues: list[Issue] = []
    notes: list[str] = []
    patients = []
    observations = []
    for i, entry in enumerate(bundle.entry or []):
        res = entry.resource
        if res is None:
            continue
        rtype = res.get_resource_type()
        if rtype == "Patient":
            patients.append((i, entry, res))
        elif rtype == "Observation":
            observations.append((i, entry, res))
        else:
            notes.append(f"Bundle.entry[{i}] is a {rtype}: not read by b12kg.")
    if len(patients) != 1:
        issues.append(Issue("Bundle.entry", f"{len(patients)} Patient resources",
                            "must be exactly one Patient per Bundle (one patient is assessed at a time)"))
        raise InputError(issues, source=source)
    pi, pentry, patient = patients[0]
    pid = patient.id or (pentry.fullUrl or "patient")
    patient_refs = {r for r in (pentry.fullUrl, f"Patient/{patient.id}" if patient.id else None) if r}
    rec = PatientRecord(id=str(pid), source=source, profile=profile)
    if patient.gender in ("female", "male"):
        rec.sex = patient.gender
    elif patient.gender is not None:
        notes.append(f"Patient.gender is {patient.gender!r}: sex-dependent criteria are not assessed.")
    candidates: dict[str, list[Result]] = {}
    for i, entry, obs in observations:
        fld = f"Bundle.entry[{i}].resource(Observation/{obs.id or i})"
        subj = obs.subject.reference if obs.subject is not None else None
        if subj is not None and patient_refs and subj not in patient_refs:
            issues.append(Issue(f"{fld}.subject.reference", subj, "does not refer to the Bundle's Patient"))
            continue
        info, code = _test_of(obs, vocab, fld, issues)
        if info is None:
            if code is not None:
                notes.append(f"Observation {obs.id or i} ({code}) is not a test b12kg reads: not used.")
            continue
        if obs.status not in COUNTING_STATUS:
            notes.append(f"Observation {obs.id or i} ({info.key}) has status {obs.status!r}: only final, amended "
                         "or corrected results count, so it is not used.")
            continue
        when = _specimen_time(obs, fld, issues)
        ref_high = None
        for rr in obs.referenceRange or []:
            if rr.high is not None and rr.high.value is not None:
                if rr.high.code is not None and obs.valueQuantity is not None and rr.high.code != obs.valueQuantity.code:
                    issues.append(Issue(f"{fld}.referenceRange.high.code", rr.high.code,
                                        f"differs from the result's unit {obs.valueQuantity.code!r}"))
                ref_high = rr.high.value
                break
        if info.qualitative:
            value = _qualitative_value(obs)
            r = normalise_result(info, value=value, unit=None, fld=f"{fld}.value[x]", issues=issues, time=when,
                                 loinc=code, source=f"Observation/{obs.id or i}", vocab=vocab)
        else:
            q = obs.valueQuantity
            if q is None:
                issues.append(Issue(f"{fld}.valueQuantity", None, f"is missing: a {info.key} result needs a value with a UCUM unit"))
                continue
            unit = q.code if (q.system == UCUM or (q.system is None and q.code is not None)) else None
            if unit is None:
                issues.append(Issue(f"{fld}.valueQuantity.code", q.unit,
                                    f"is missing: the unit must be a UCUM code (system {UCUM}); b12kg does not read "
                                    "the display unit or assume one"))
                continue
            r = normalise_result(info, value=q.value, unit=unit, fld=f"{fld}.valueQuantity", issues=issues,
                                 comparator=q.comparator, ref_high=ref_high, time=when, loinc=code,
                                 source=f"Observation/{obs.id or i}", vocab=vocab)
        if r is not None:
            candidates.setdefault(info.key, []).append(r)
    finish(rec, candidates, issues, vocab)
    if issues:
        raise InputError(issues, source=source)
    if isinstance(patient.birthDate, str):
        raise InputError([Issue("Patient.birthDate", patient.birthDate, f"is a partial date: {_PARTIAL}")], source=source)
    if patient.birthDate is not None:
        times = [r.time for r in rec.results.values() if r.time is not None]
        if times:
            at = max(times).date()
            if at < patient.birthDate:
                raise InputError([Issue("Patient.birthDate", str(patient.birthDate), f"is after the specimen date {at}")], source=source)
            rec.age_years = exact_age(patient.birthDate, at)
            if rec.age_years >= MAX_AGE:
                raise InputError([Issue("Patient.birthDate", str(patient.birthDate), f"gives an age of {rec.age_years} "
                                        f"years at {at}, which is not valid")], source=source)
        else:
            notes.append("No specimen date on any result: age cannot be computed from the birth date.")
    rec.notes.extend(notes)
    add_notes(rec)
    return rec


_PARTIAL = ("a year or a year and month, where b12kg needs the day (to tell which result is the latest "
            "and to compute the exact age)")


def _specimen_time(obs, fld: str, issues: list[Issue]) -> datetime | None:
    """The specimen time: effectiveDateTime, else effectivePeriod.start, else issued. FHIR allows a
    date alone (read as that day, 00:00 UTC, as in case files) and a partial date (refused)."""
    for name, value in (("effectiveDateTime", obs.effectiveDateTime),
                        ("effectivePeriod.start", obs.effectivePeriod.start if obs.effectivePeriod else None),
                        ("issued", obs.issued)):
        if value is None:
            continue
        if isinstance(value, datetime):
            return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)
        if isinstance(value, date):
            return datetime(value.year, value.month, value.day, tzinfo=timezone.utc)
        issues.append(Issue(f"{fld}.{name}", str(value), f"is a partial date: {_PARTIAL}"))
        return None
    return None


def _test_of(obs, vocab, fld: str, issues: list[Issue]):
    codings = list(obs.code.coding or []) if obs.code is not None else []
    shown = None
    for c in codings:
        if c.system == LOINC and c.code:
            if c.code in vocab.refused_codes:
                info, reason = vocab.refused_codes[c.code]
                issues.append(Issue(f"{fld}.code", c.code, f"is refused: {reason}"))
                return None, None
            if c.code in vocab.tests_by_loinc:
                return vocab.tests_by_loinc[c.code], c.code
            shown = shown or f"LOINC {c.code}"
        elif c.system == B12KG_ANALYTE and c.code in vocab.tests_by_key:
            return vocab.tests_by_key[c.code], None
        elif c.code:
            shown = shown or f"{c.system or 'no system'} {c.code}"
    if not codings:
        shown = f"code.text {obs.code.text!r}" if obs.code is not None and obs.code.text else "no code"
    return None, shown


def _qualitative_value(obs) -> Any:
    if obs.valueString is not None:
        return obs.valueString
    cc = obs.valueCodeableConcept
    if cc is not None:
        if cc.text:
            return cc.text
        for c in cc.coding or []:
            if c.display:
                return c.display
            if c.code:
                return c.code
    return None
