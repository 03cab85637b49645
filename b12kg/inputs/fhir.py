"""FHIR R4 input: a Bundle with one Patient and what b12kg reads about that patient.

Use what can be used, say what was not (issue 10). A system export is read leniently, resource by
resource; only a record unusable as a whole is refused: not a Bundle, no Patient, two Patients, or
a Patient that is not valid FHIR R4. Every error and every note names the resource, in one style:
``Bundle.entry[7].resource(Immunization/abc).status``.

- Only the resource types b12kg reads are validated, each with its own fhir.resources model (the R4B
  models, which read R4 as is for these types): Patient, Observation, Condition, MedicationStatement,
  MedicationRequest, Procedure. A resource of another type is named in the notes, unread. A resource
  of a read type that is not valid is listed in the notes with why and skipped.
- Patient: gender and birthDate (age at the specimen date of the latest result). A sex for clinical
  use (the patient-sexParameterForClinicalUse extension, else the US Core individual-sex extension)
  wins over gender; gender other or unknown is sex not recorded.
- Observations of laboratory tests are read by LOINC code, or by b12kg analyte key under the system
  https://w3id.org/b12kg/analyte. A result of a test b12kg reads that cannot be used (no value,
  dataAbsentReason, a unit it cannot read exactly, an implausible value, a status that does not
  count, a partial specimen date) is listed in the notes and in ``PatientRecord.unusable_results``.
- Units: the UCUM code, or any valid UCUM spelling that denotes an accepted unit (g/dl for g/dL,
  pg/{cell} for pg: decided with ucumvert); a unit given only as display text is read when that text
  is itself such a UCUM expression. The notes say so in both cases. Values stay exact decimals.
- Context: pregnancy status (LOINC 82810-3), gestational age, delivery date (postpartum: within six
  weeks of the specimen date), Conditions (clinically active, not refuted or entered in error),
  medicines (MedicationStatement, MedicationRequest: active or completed), Procedures (completed),
  symptom codes of Observations and Conditions, all mapped through the ontology
  (Vocabulary.clinical_codes, Vocabulary.fhir_roles). A Condition, Observation (clinical finding, not
  a LOINC test) or Procedure code that b12kg cannot map is listed in the notes and in
  ``PatientRecord.unmapped_codes``.
- Nothing is fetched: references are only compared as strings.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Mapping

from .. import units
from ..errors import InputError, Issue
from ..kb import vocabulary
from ..rdf.terms import ANALYTE_SYSTEM
from .files import check_structure
from .normalise import (MIN_PREGNANCY_AGE, add_notes, decimal_places, exact_age, finish, in_future, limit_in_unit,
                        limit_problem, normalise_result, parse_decimal, results_in_other_bands, run_time)
from .record import (MAX_AGE, MAX_DECIMAL_PLACES, MAX_GESTATIONAL_WEEKS, MAX_RESULTS_PER_RECORD, PatientRecord,
                     Result)

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
SNOMED = "http://snomed.info/sct"
B12KG_ANALYTE = ANALYTE_SYSTEM
COUNTING_STATUS = ("final", "amended", "corrected")
# Observation statuses that say a result was reported but is not (yet) usable: the result goes to
# unusable_results. cancelled and entered-in-error say there is no result at all: notes only.
REPORTED_STATUS = ("registered", "preliminary", "unknown")
ACTIVE_CONDITION = ("active", "recurrence", "relapse")
NOT_COUNTED_VERIFICATION = ("refuted", "entered-in-error")
COUNTING_MEDICATION = ("active", "completed")
COUNTING_PROCEDURE = ("completed",)
SPCU_URL = "http://hl7.org/fhir/StructureDefinition/patient-sexParameterForClinicalUse"
INDIVIDUAL_SEX_URL = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-individual-sex"
POSTPARTUM_WINDOW = timedelta(weeks=6)       # docs/verification-v2.tsv: postpartum = up to 6 weeks after delivery
PREGNANCY_STATUS_VALID = timedelta(weeks=42)  # a status older than a pregnancy lasts says nothing now
READ_TYPES = {
    "Patient": ("fhir.resources.R4B.patient", "Patient"),
    "Observation": ("fhir.resources.R4B.observation", "Observation"),
    "Condition": ("fhir.resources.R4B.condition", "Condition"),
    "MedicationStatement": ("fhir.resources.R4B.medicationstatement", "MedicationStatement"),
    "MedicationRequest": ("fhir.resources.R4B.medicationrequest", "MedicationRequest"),
    "Procedure": ("fhir.resources.R4B.procedure", "Procedure"),
}
_FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


def is_bundle(data: Any) -> bool:
    return isinstance(data, Mapping) and data.get("resourceType") == "Bundle"


def _model(rtype: str):
    module, name = READ_TYPES[rtype]
    return getattr(importlib.import_module(module), name)


def _where(i: int, rtype: str, rid: Any) -> str:
    shown = rid if isinstance(rid, str) and _FHIR_ID.match(rid) else "?"
    return f"Bundle.entry[{i}].resource({rtype}/{shown})"


def _validation_problems(exc: Exception, where: str) -> list[Issue]:
    issues = []
    errors = getattr(exc, "errors", None)
    if callable(errors):
        try:
            errs = errors()
        except Exception:
            errs = []
        for e in errs[:20]:
            loc = ".".join(str(x) for x in e.get("loc", ()) if x != "__root__")
            value = e.get("input")
            issues.append(Issue(f"{where}.{loc}" if loc else where,
                                None if isinstance(value, (dict, list)) else value, e.get("msg", "is not valid FHIR R4")))
    return issues or [Issue(where, None, f"is not valid FHIR R4: {exc}")]


def _codings(cc) -> list:
    return list(cc.coding or []) if cc is not None else []


OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"


def _is_laboratory(obs) -> bool:
    """An Observation in the category laboratory: a test, never a sign or symptom."""
    return any(c.system == OBSERVATION_CATEGORY and c.code == "laboratory"
               for cc in (obs.category or []) for c in _codings(cc))


def _code_key(c) -> str:
    return f"{c.system or ''}|{c.code or ''}"


def _status_code(cc) -> str | None:
    for c in _codings(cc):
        if c.code:
            return str(c.code)
    return None


class _Reader:
    """One Bundle read into one PatientRecord, collecting notes as it goes."""

    def __init__(self, data: Mapping, source: str | None, profile: str):
        self.data = data
        self.source = source
        self.profile = profile
        self.vocab = vocabulary()
        self.notes: list[str] = []
        self.unusable: dict[str, tuple[str, datetime | None]] = {}
        self.unmapped: list[str] = []
        self.contexts: dict[str, str] = {}      # keyword -> where it came from
        self.symptoms: dict[str, str] = {}
        self.pregnancy: list[tuple[datetime | None, str, str]] = []     # (time, role, where)
        self.gestation: list[tuple[datetime | None, Decimal, str]] = []
        self.deliveries: list[tuple[datetime, str]] = []
        self.unread: dict[str, list[str]] = {}  # what b12kg does not read, grouped (type or test) -> places
        self.now = run_time()

    # -- the record as a whole ---------------------------------------------------------------
    def read(self) -> PatientRecord:
        src = self.source
        if not is_bundle(self.data):
            raise InputError([Issue("Bundle", None, "is not a FHIR Bundle (resourceType 'Bundle')")], source=src)
        check_structure(self.data, source=src)
        entries = self.data.get("entry")
        if entries is None:
            entries = []
        if not isinstance(entries, list):
            raise InputError([Issue("Bundle.entry", None, "is not a list of entries")], source=src)
        n_obs = sum(1 for e in entries if isinstance(e, Mapping) and isinstance(e.get("resource"), Mapping)
                    and e["resource"].get("resourceType") == "Observation")
        if n_obs > MAX_RESULTS_PER_RECORD:
            raise InputError([Issue("Bundle.entry", f"{n_obs} Observations", f"are more than the {MAX_RESULTS_PER_RECORD} "
                                    "results one record may hold")], source=src)
        patients, others = [], []
        for i, entry in enumerate(entries):
            if not isinstance(entry, Mapping) or not isinstance(entry.get("resource"), Mapping):
                self.notes.append(f"Bundle.entry[{i}] holds no resource: not read.")
                continue
            raw = entry["resource"]
            rtype = raw.get("resourceType")
            where = _where(i, rtype if isinstance(rtype, str) else "?", raw.get("id"))
            if rtype not in READ_TYPES:
                kind = f"{rtype} resources" if isinstance(rtype, str) else "resources of no type"
                self.unread.setdefault(kind, []).append(where)
                continue
            try:
                res = _model(rtype).model_validate(raw)
            except Exception as exc:  # pydantic.ValidationError and the models' own checks
                problems = _validation_problems(exc, where)
                if rtype == "Patient":
                    raise InputError(problems, source=src) from None
                self.notes.append(f"{where} is not valid FHIR R4 and is not used: "
                                  + "; ".join(str(p)[len(where):].lstrip(".: ") or str(p) for p in problems[:3]) + ".")
                continue
            full_url = entry.get("fullUrl") if isinstance(entry.get("fullUrl"), str) else None
            (patients if rtype == "Patient" else others).append((i, where, full_url, res))
        if len(patients) != 1:
            raise InputError([Issue("Bundle.entry", f"{len(patients)} Patient resources",
                                    "must be exactly one Patient per Bundle (one patient is assessed at a time)")], source=src)
        pi, pwhere, pfull, patient = patients[0]
        self.patient_refs = {r for r in (pfull, f"Patient/{patient.id}" if patient.id else None) if r}
        self.patient_ids = {(i.system, i.value) for i in patient.identifier or [] if i.value}
        rec = PatientRecord(id=str(patient.id or pfull or "patient"), source=src, profile=self.profile)
        self._sex(rec, patient, pwhere)
        self.sex = rec.sex
        self.birth = patient.birthDate if isinstance(patient.birthDate, date) else None
        candidates: dict[str, list[Result]] = {}
        for i, where, _full, res in others:
            if not self._about_patient(res, where):
                continue
            rtype = res.get_resource_type()
            if rtype == "Observation":
                self._observation(res, where, candidates)
            elif rtype == "Condition":
                self._condition(res, where)
            elif rtype in ("MedicationStatement", "MedicationRequest"):
                self._medication(res, where)
            elif rtype == "Procedure":
                self._procedure(res, where)
        self._results(rec, candidates)
        at = self._specimen_date(rec)
        self._age(rec, patient, pwhere, at)
        self._pregnancy(rec, at)
        self._ages_of_results(rec, patient)
        self._words(rec)
        rec.unusable_results = {k: why for k, (why, _t) in sorted(self.unusable.items())}
        rec.unmapped_codes = sorted(set(self.unmapped))
        for kind, places in self.unread.items():
            shown = ", ".join(places[:3]) + (f" and {len(places) - 3} more" if len(places) > 3 else "")
            self.notes.append(f"Not read by b12kg: {len(places)} {kind} ({shown}).")
        rec.notes.extend(self.notes)
        add_notes(rec)
        return rec

    def _about_patient(self, res, where: str) -> bool:
        """A resource counts only when its subject is the Bundle's Patient: by reference (the
        entry's fullUrl or Patient/<id>) or by a logical identifier (system and value) the Patient
        carries. An Observation about something else of the patient (``focus``) is not a result of
        the patient. Anything else is named in the notes and not used (issue 11)."""
        subj = getattr(res, "subject", None)
        focus = getattr(res, "focus", None)
        if focus:
            self.notes.append(f"{where}.focus names what it is about ({', '.join(_ref_text(f) for f in focus)}), "
                              "not the Patient itself: not used.")
            return False
        if subj is None:
            self.notes.append(f"{where} has no subject, so it is not known to be about the Bundle's Patient: not used.")
            return False
        ref = subj.reference
        if ref is not None:
            if ref in self.patient_refs:
                return True
            why = "does not refer to the Bundle's Patient" if self.patient_refs else \
                "cannot be matched: the Bundle's Patient has neither an id nor a fullUrl"
            self.notes.append(f"{where}.subject.reference {ref!r} {why}: not used.")
            return False
        ident = subj.identifier
        if ident is not None and ident.value:
            if (ident.system, ident.value) in self.patient_ids:
                return True
            self.notes.append(f"{where}.subject.identifier {ident.system or 'no system'}|{ident.value} is not an "
                              "identifier of the Bundle's Patient: not used.")
            return False
        self.notes.append(f"{where}.subject names no reference and no identifier, so it is not known to be about the "
                          "Bundle's Patient: not used.")
        return False

    # -- Patient -----------------------------------------------------------------------------
    def _sex(self, rec: PatientRecord, patient, where: str) -> None:
        gender = patient.gender
        clinical = None
        for ext in patient.extension or []:
            if ext.url == SPCU_URL:
                for sub in ext.extension or []:
                    if sub.url == "value" and sub.valueCodeableConcept is not None:
                        clinical = clinical or self._sex_of(_codings(sub.valueCodeableConcept), f"{where}.extension(sexParameterForClinicalUse)")
        if clinical is None:
            for ext in patient.extension or []:
                if ext.url == INDIVIDUAL_SEX_URL:
                    codings = [ext.valueCoding] if ext.valueCoding is not None else _codings(ext.valueCodeableConcept)
                    clinical = clinical or self._sex_of(codings, f"{where}.extension(us-core-individual-sex)")
        if clinical is not None:
            sex, origin = clinical
            rec.sex = sex
            if gender in ("female", "male") and gender != sex:
                self.notes.append(f"Sex {sex} is read from the sex for clinical use ({origin}); Patient.gender is {gender!r}.")
            elif gender not in ("female", "male"):
                self.notes.append(f"Sex {sex} is read from the sex for clinical use ({origin}).")
        elif gender in ("female", "male"):
            rec.sex = gender
        elif gender is not None:
            self.notes.append(f"{where}.gender is {gender!r} and no sex for clinical use is given: sex is taken as "
                              "not recorded, so sex-dependent criteria are not assessed.")

    def _sex_of(self, codings, origin: str) -> tuple[str, str] | None:
        for c in codings:
            role = self.vocab.fhir_roles.get(_code_key(c))
            if role in ("sex-female", "sex-male"):
                return role[4:], origin
        if codings:
            self.notes.append(f"{origin} holds {', '.join(_code_key(c) for c in codings)}: not a female or male "
                              "sex for clinical use, not read.")
        return None

    def _age(self, rec: PatientRecord, patient, where: str, at: date | None) -> None:
        birth = patient.birthDate
        if birth is None:
            return
        if not isinstance(birth, date):
            self.notes.append(f"{where}.birthDate {str(birth)!r} is a partial date: {_PARTIAL}; age is not known.")
            return
        if at is None:
            self.notes.append("No specimen date on any result: age cannot be computed from the birth date.")
            return
        if in_future(birth, self.now):
            self.notes.append(f"{where}.birthDate {birth} is in the future of the run ({self.now.date()}): age is not "
                              "known.")
            return
        if at < birth:
            self.notes.append(f"{where}.birthDate {birth} is after the specimen date {at}: age is not known.")
            return
        age = exact_age(birth, at)
        if age >= MAX_AGE:
            self.notes.append(f"{where}.birthDate {birth} gives an age of {age} years at {at}, which is not valid: "
                              "age is not known.")
            return
        rec.age_years = age

    # -- Observations ------------------------------------------------------------------------
    def _observation(self, obs, where: str, candidates: dict[str, list[Result]]) -> None:
        codings = _codings(obs.code)
        for c in codings:
            role = self.vocab.fhir_roles.get(_code_key(c))
            if role in ("pregnancy-status", "gestational-age", "delivery-date"):
                return self._obs_context(obs, where, role, c)
        info, code, shown, conflict = self._test_of(codings, where)
        if conflict is not None:
            keys, why = conflict
            self.notes.append(f"{why}: not used.")
            for key in keys:
                self._unusable(key, why, _specimen_time(obs)[0])
            return
        if info is None:
            mapped = self._clinical(codings, where, "Observation")
            if mapped:
                if obs.status not in COUNTING_STATUS:
                    self.notes.append(f"{where} has status {obs.status!r}: only final, amended or corrected "
                                      "observations count, so it is not used.")
                    return
                self._take(mapped, where, counts=True)
                return
            if shown is not None:
                finding = [c for c in codings if c.system not in (LOINC, B12KG_ANALYTE) and c.code]
                if finding and not _is_laboratory(obs):     # a laboratory test is never a sign
                    self._unmapped(finding, where)
                else:
                    self.unread.setdefault(f"Observations of {shown}, not a test b12kg reads", []).append(where)
            return
        key = info.key
        when, time_problem = _specimen_time(obs)
        if obs.status not in COUNTING_STATUS:
            why = (f"{where} ({key}) has status {obs.status!r}: only final, amended or corrected results count, "
                   "so it is not used.")
            self.notes.append(why)
            if obs.status in REPORTED_STATUS:
                self._unusable(key, why, when)
            return
        if time_problem is not None:
            why = f"{where}.{time_problem}"
            self.notes.append(why)
            self._unusable(key, why, None)
            return
        if when is not None and in_future(when, self.now):
            why = (f"{where} ({key}) has a specimen time {when.isoformat()} in the future of the run "
                   f"({self.now.isoformat(timespec='seconds')}): not used.")
            self.notes.append(why)
            self._unusable(key, why, None)
            return
        if obs.dataAbsentReason is not None:
            reason = _status_code(obs.dataAbsentReason) or obs.dataAbsentReason.text or "given"
            why = f"{where} ({key}) has no value (dataAbsentReason {reason}): not used."
            self.notes.append(why)
            self._unusable(key, why, when)
            return
        issues: list[Issue] = []
        src = where.split("(", 1)[1].rstrip(")") if "(" in where else where
        if info.qualitative:
            r = normalise_result(info, value=_qualitative_value(obs), unit=None, fld=f"{where}.value[x]", issues=issues,
                                 time=when, loinc=code, source=src, vocab=self.vocab)
        else:
            r = self._quantity(obs, info, where, code, when, src, issues)
        if r is None:
            if issues:
                why = "; ".join(str(x) for x in issues)
                self.notes.append(f"{why}: the {key} result is not used.")
                self._unusable(key, why, when)
            return
        candidates.setdefault(key, []).append(r)

    def _quantity(self, obs, info, where, code, when, src, issues: list[Issue]) -> Result | None:
        q = obs.valueQuantity
        key = info.key
        if q is None:
            other = next((n for n in ("valueString", "valueCodeableConcept", "valueInteger", "valueRatio", "valueRange")
                          if getattr(obs, n, None) is not None), None)
            issues.append(Issue(f"{where}.valueQuantity", None, f"is missing{f' ({other} given instead)' if other else ''}: "
                                f"a {key} result needs a value with a UCUM unit"))
            return None
        unit = self._unit(info, q, f"{where}.valueQuantity", issues)
        if unit is None:
            return None
        ref_high, ref_low = self._reference_range(obs, info, unit, where, when)
        r = normalise_result(info, value=q.value, unit=unit, fld=f"{where}.valueQuantity", issues=issues,
                             comparator=q.comparator, ref_high=ref_high, time=when, loinc=code, source=src,
                             vocab=self.vocab)
        if r is not None and ref_low is not None:
            factor = self.vocab.compared_units[(info.iri, unit)][1]
            low = units.convert(ref_low, factor)
            if decimal_places(low) <= MAX_DECIMAL_PLACES:
                r = replace(r, ref_low_as_given=str(ref_low), ref_low_compared=low)
        return r

    def _unit(self, info, q, fld: str, issues: list[Issue]) -> str | None:
        """The accepted unit a Quantity's unit denotes exactly, or None (with the reason in issues)."""
        accepted = ", ".join(info.units) or "none"
        if q.code is not None and q.system not in (None, UCUM):
            issues.append(Issue(f"{fld}.system", q.system, f"is not UCUM ({UCUM}): b12kg reads units only as UCUM "
                                f"(accepted for {info.key}: {accepted})"))
            return None
        given, origin = (q.code, "code") if q.code is not None else (q.unit, "unit")
        if given is None or not str(given).strip():
            issues.append(Issue(f"{fld}.code", None, f"is missing: a {info.key} result needs a UCUM unit "
                                f"(accepted: {accepted}); no unit is ever assumed"))
            return None
        given = str(given)
        text = _disagreeing_text(q)
        if text is not None:
            issues.append(Issue(f"{fld}.unit", text, f"disagrees with the UCUM code {given!r} of the same quantity "
                                "(the text is a UCUM unit of its own): b12kg cannot tell which unit the value is in"))
            return None
        match = _accepted_spelling(given, info.units)
        if match is None:
            if origin == "unit":
                issues.append(Issue(f"{fld}.unit", given, f"is the only unit given (no UCUM code) and is not a UCUM "
                                    f"expression of a unit accepted for {info.key} (accepted: {accepted})"))
            elif not units.is_valid_ucum(given):
                issues.append(Issue(f"{fld}.code", given, f"is not a valid UCUM unit; {info.key} is accepted in: {accepted}"))
            else:
                issues.append(Issue(f"{fld}.code", given, f"is not an accepted unit of {info.key} (accepted: {accepted}); "
                                    "it is not converted"))
            return None
        if origin == "unit":
            self.notes.append(f"{fld}: the unit {given!r} came from the display text (valueQuantity.unit; no UCUM code "
                              f"given) and is read as the UCUM unit {match}.")
        elif match != given:
            self.notes.append(f"{fld}.code {given!r} is read as {match} (the same UCUM unit, spelled otherwise).")
        return match

    def _reference_range(self, obs, info, unit: str, where: str, when: datetime | None
                         ) -> tuple[Decimal | None, Decimal | None]:
        """The laboratory's limits, in the result's unit: from the one reference range that applies
        to the patient (its type normal or not given; its appliesTo matched to the patient's sex;
        its age band holding the age at the result), or none, with a note saying why (issue 11)."""
        chosen: list[tuple[int, Decimal | None, Decimal | None]] = []
        for k, rr in enumerate(obs.referenceRange or []):
            fld = f"{where}.referenceRange[{k}]"
            why = self._range_does_not_apply(rr, when)
            if why is not None:
                self.notes.append(f"{fld} {why}: the laboratory limit is not used.")
                continue
            high = self._limit(rr.high, info, unit, f"{fld}.high")
            low = self._limit(rr.low, info, unit, f"{fld}.low")
            if high is not None or low is not None:
                chosen.append((k, high, low))
        if len({(h, lo) for _k, h, lo in chosen}) > 1:
            self.notes.append(f"{where}.referenceRange: ranges {', '.join(str(k) for k, _h, _l in chosen)} all apply to "
                              "the patient and differ: no laboratory limit is used.")
            return None, None
        return chosen[0][1:] if chosen else (None, None)

    def _range_does_not_apply(self, rr, when: datetime | None) -> str | None:
        types = [c.code for c in _codings(rr.type) if c.code]
        if types and "normal" not in types:
            return f"is of type {', '.join(types)}, not the normal range"
        for cc in rr.appliesTo or []:
            codes = _codings(cc)
            roles = {self.vocab.fhir_roles.get(_code_key(c)) for c in codes}
            sexes = {r[4:] for r in roles if r in ("sex-female", "sex-male")}
            if sexes:
                if self.sex not in sexes:
                    return f"applies to sex {', '.join(sorted(sexes))}, and the patient's sex is {self.sex or 'not recorded'}"
                continue
            shown = ", ".join(_code_key(c) for c in codes) or (cc.text and repr(cc.text)) or "no code"
            return f"applies to {shown}, which b12kg cannot match to the patient"
        if rr.age is not None:
            return self._age_range_does_not_apply(rr.age, when)
        return None

    def _age_range_does_not_apply(self, age_range, when: datetime | None) -> str | None:
        if self.birth is None or when is None or when.date() < self.birth:
            return "applies to an age range, and the age at the result is not known"
        years = exact_age(self.birth, when.date())
        days = Decimal((when.date() - self.birth).days)
        in_unit = {"a": years, "mo": years * 12, "wk": days / 7, "d": days}
        for name, q, inside in (("low", age_range.low, lambda a, b: a >= b), ("high", age_range.high, lambda a, b: a <= b)):
            if q is None or q.value is None:
                continue
            u = str(q.code if q.code is not None else q.unit or "")
            bound = parse_decimal(q.value)
            if u not in in_unit or bound is None:
                return f"applies to an age range whose {name} {q.value} {u!r} is not in a, mo, wk or d"
            if not inside(in_unit[u], bound):
                return (f"applies to ages {'from' if name == 'low' else 'up to'} {units.format_decimal(bound)} {u}, and "
                        f"the patient is {units.format_decimal(years)} years at the result")
        return None

    def _limit(self, q, info, unit: str, fld: str) -> Decimal | None:
        """A reference limit in the result's unit: its own unit must be a unit of the test (then it
        is converted exactly) and not contradicted by the unit text; else it is not used (noted)."""
        if q is None or q.value is None:
            return None
        spelled = q.code if q.code is not None else q.unit
        if spelled is None or not str(spelled).strip():
            self.notes.append(f"{fld} has no unit: the laboratory limit is not used (no unit is ever assumed).")
            return None
        text = _disagreeing_text(q)
        if text is not None:
            self.notes.append(f"{fld}.unit {text!r} disagrees with its code {q.code!r}: the laboratory limit is not used.")
            return None
        limit_unit = _accepted_spelling(str(spelled), info.units)
        if limit_unit is None:
            self.notes.append(f"{fld} is in {spelled!r}, not a unit of {info.key} b12kg reads: the laboratory limit is "
                              "not used.")
            return None
        d = parse_decimal(q.value)
        if d is None or d <= 0:
            self.notes.append(f"{fld} {q.value!r} is not a positive number: the laboratory limit is not used.")
            return None
        problem = limit_problem(info, limit_unit, d)
        if problem is not None:
            self.notes.append(f"{fld} {units.to_decimal_string(d)} {limit_unit} {problem}: the laboratory limit is not used.")
            return None
        value = limit_in_unit(info, d, limit_unit, unit)
        if value is None:
            self.notes.append(f"{fld} {units.to_decimal_string(d)} {limit_unit} cannot be converted exactly to the "
                              f"result's unit {unit}: the laboratory limit is not used.")
            return None
        if limit_unit != unit:
            self.notes.append(f"{fld} {units.format_decimal(d)} {limit_unit} is read as "
                              f"{units.format_decimal(value)} {unit}, the result's unit.")
        return value

    def _test_of(self, codings, where: str):
        """(info, LOINC code, shown, conflict): the test the Observation's codings name. It is read
        only when every coding of a test agrees on one analyte: an accepted code beside a refused
        one (serum B12 2132-9 with whole-blood 16695-9, in either order), beside a code of another
        analyte (a b12kg key beside a LOINC ferritin code), or beside a LOINC code b12kg does not
        know, is a conflict: (the analyte keys involved, why), and nothing is read."""
        found: list[tuple[Any, str | None, str]] = []     # (info, LOINC code, shown)
        refused: list[tuple[Any, str, str]] = []          # (info, code, reason)
        unknown: list[str] = []
        shown = None
        for c in codings:
            if c.system == LOINC and c.code:
                if c.code in self.vocab.refused_codes:
                    info, reason = self.vocab.refused_codes[c.code]
                    refused.append((info, c.code, reason))
                elif c.code in self.vocab.tests_by_loinc:
                    found.append((self.vocab.tests_by_loinc[c.code], c.code, f"LOINC {c.code}"))
                else:
                    unknown.append(f"LOINC {c.code}")
                    shown = shown or f"LOINC {c.code}"
            elif c.system == B12KG_ANALYTE and c.code in self.vocab.tests_by_key:
                found.append((self.vocab.tests_by_key[c.code], None, f"b12kg analyte {c.code}"))
            elif c.code:
                shown = shown or f"{c.system or 'no system'} {c.code}"
        if not codings:
            shown = "no code"
        keys = sorted({f[0].key for f in found} | {r[0].key for r in refused})
        if not found:
            if refused:
                info, code, reason = refused[0]
                return None, None, f"LOINC {code}, refused: {reason}", None
            return None, None, shown, None
        if len(keys) == 1 and not refused and not unknown:
            info, code, _ = next((f for f in found if f[1] is not None), found[0])
            return info, code, None, None
        said = [f"{text} is {info.key}" for info, _c, text in found]
        said += [f"LOINC {code} is refused ({reason})" for _i, code, reason in refused]
        said += [f"{u} is not a code b12kg knows, so it may name another measurand" for u in unknown]
        return None, None, None, (keys, f"{where}.code holds codings that do not agree on one test ({'; '.join(said)})")

    def _obs_context(self, obs, where: str, role: str, coding) -> None:
        if obs.status not in COUNTING_STATUS:
            self.notes.append(f"{where} ({coding.code}) has status {obs.status!r}: only final, amended or corrected "
                              "observations count, so it is not used.")
            return
        when, problem = _specimen_time(obs)
        if problem is not None:
            self.notes.append(f"{where}.{problem}; not used.")
            return
        if role == "pregnancy-status":
            answer = None
            for c in _codings(obs.valueCodeableConcept):
                answer = answer or self.vocab.fhir_roles.get(_code_key(c))
            if answer not in ("pregnant", "not-pregnant", "pregnancy-unknown"):
                self.notes.append(f"{where} (pregnancy status) has no answer b12kg reads "
                                  "(LOINC LA15173-0/LA26683-5/LA4489-6 or SNOMED 77386006/60001007/261665006): not used.")
                return
            self.pregnancy.append((when, answer, where))
        elif role == "gestational-age":
            q = obs.valueQuantity
            weeks = None
            if q is not None and q.value is not None:
                spelled = str(q.code if q.code is not None else q.unit or "")
                d = parse_decimal(q.value)
                if d is not None and _accepted_spelling(spelled, {"wk": None}):
                    weeks = d
                elif d is not None and _accepted_spelling(spelled, {"d": None}):
                    weeks = d / 7
            if weeks is None or not (0 <= weeks <= MAX_GESTATIONAL_WEEKS):
                self.notes.append(f"{where} (gestational age) is not a number of weeks (wk) or days (d) from 0 to "
                                  f"{MAX_GESTATIONAL_WEEKS} weeks: not used.")
                return
            self.gestation.append((when, weeks, where))
        elif role == "delivery-date":
            value = obs.valueDateTime
            if isinstance(value, datetime):
                t = value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)
            elif isinstance(value, date):
                t = datetime(value.year, value.month, value.day, tzinfo=timezone.utc)
            else:
                self.notes.append(f"{where} (delivery date) has no full valueDateTime: not used.")
                return
            self.deliveries.append((t, where))

    # -- Conditions, medicines, procedures -----------------------------------------------------
    def _clinical(self, codings, where: str, rtype: str) -> list[tuple[str, str, str]]:
        out = []
        for c in codings:
            hit = self.vocab.clinical_codes.get(_code_key(c))
            if hit is not None:
                out.append((hit[0], hit[1], f"{where} ({_code_key(c)})"))
        return out

    def _take(self, mapped, where: str, *, counts: bool) -> None:
        for kind, word, origin in mapped:
            (self.contexts if kind == "context" else self.symptoms).setdefault(word, origin)

    def _unmapped(self, codings, where: str) -> None:
        keys = [_code_key(c) for c in codings if c.code]
        if not keys:
            self.notes.append(f"{where} has no code: not used.")
            return
        self.unmapped.extend(keys)
        self.notes.append(f"{where} ({', '.join(keys)}) is a code b12kg cannot map: not used, and listed as unmapped.")

    def _condition(self, cond, where: str) -> None:
        clinical = _status_code(cond.clinicalStatus)
        verification = _status_code(cond.verificationStatus)
        if verification in NOT_COUNTED_VERIFICATION:
            self.notes.append(f"{where} is {verification}: not used.")
            return
        if clinical not in ACTIVE_CONDITION:
            self.notes.append(f"{where} is not clinically active (clinicalStatus {clinical or 'not given'}): not used.")
            return
        codings = _codings(cond.code)
        mapped = self._clinical(codings, where, "Condition")
        if mapped:
            self._take(mapped, where, counts=True)
        else:
            self._unmapped(codings, where)

    def _medication(self, med, where: str) -> None:
        if med.status not in COUNTING_MEDICATION:
            self.notes.append(f"{where} has status {med.status!r}: only active or completed medicines count, so it is "
                              "not used.")
            return
        cc = getattr(med, "medicationCodeableConcept", None)
        if cc is None:
            self.notes.append(f"{where} names its medicine by reference only (medicationReference): not read.")
            return
        codings = _codings(cc)
        mapped = self._clinical(codings, where, "Medication")
        if mapped:
            self._take(mapped, where, counts=True)
        else:
            keys = ", ".join(_code_key(c) for c in codings if c.code) or "no code"
            self.notes.append(f"{where} ({keys}) is a medicine b12kg does not map (only ingredient codes with a "
                              "verified mapping are read): not used.")

    def _procedure(self, proc, where: str) -> None:
        if proc.status not in COUNTING_PROCEDURE:
            self.notes.append(f"{where} has status {proc.status!r}: only completed procedures count, so it is not used.")
            return
        codings = _codings(proc.code)
        mapped = self._clinical(codings, where, "Procedure")
        if mapped:
            self._take(mapped, where, counts=True)
        else:
            self._unmapped(codings, where)

    # -- results, dates, pregnancy, words --------------------------------------------------------
    def _unusable(self, key: str, why: str, when: datetime | None) -> None:
        old = self.unusable.get(key)
        if old is None or (when is not None and (old[1] is None or when >= old[1])):
            self.unusable[key] = (why, when)

    def _results(self, rec: PatientRecord, candidates: dict[str, list[Result]]) -> None:
        issues: list[Issue] = []
        finish(rec, candidates, issues, self.vocab)
        for issue in issues:  # the latest result of a test could not be told (no times, or disagreeing)
            key = issue.field.rsplit(".", 1)[-1]
            why = f"{issue}"
            self.notes.append(f"{why}: no {key} result is used.")
            self.unusable[key] = (why, None)
        for key, (why, when) in list(self.unusable.items()):
            usable = rec.results.get(key)
            if usable is None:
                continue
            if when is None or usable.time is None or usable.time >= when:
                # a later (or as late) usable result is the one that counts
                del self.unusable[key]
                self.notes.append(f"An unusable {key} result was reported, but a usable one of the same or a later "
                                  f"time ({usable.source}) is the one used.")
            else:
                rec.superseded.append(rec.results.pop(key))
                self.notes.append(f"The latest {key} result cannot be used, so the earlier {key} result "
                                  f"({usable.source}) is not used either: it is superseded.")
        if "tsat" in rec.results and rec.results["tsat"].derived_from and (
                "iron" not in rec.results or "tibc" not in rec.results):
            del rec.results["tsat"]

    def _ages_of_results(self, rec: PatientRecord, patient) -> None:
        """Each result is judged at the age on its own date: a current result taken before birth, or
        at an age in another age band than the record's age, is unusable (issue 11); a pregnancy
        read for a patient under MIN_PREGNANCY_AGE is not used."""
        birth = patient.birthDate
        if isinstance(birth, date) and not in_future(birth, self.now):
            for key, r in sorted(rec.results.items()):
                if r.time is not None and not r.derived_from and r.time.date() < birth:
                    self._not_usable(rec, key, f"the {key} result of {r.time.date()} ({r.source}) is before the birth "
                                     f"date {birth}")
            for key, age_at in results_in_other_bands(rec, birth, self.vocab):
                if key in rec.results:
                    self._not_usable(rec, key, f"the {key} result ({rec.results[key].source}) was taken at age "
                                     f"{units.format_decimal(age_at)} years, in another age band than the age "
                                     f"{units.format_decimal(rec.age_years)} the record is assessed at, so it would be "
                                     "judged by the wrong cut-offs")
        if rec.pregnant and rec.age_years is not None and rec.age_years < MIN_PREGNANCY_AGE:
            self.notes.append(f"A pregnancy is recorded for a patient of {units.format_decimal(rec.age_years)} years, "
                              f"under {MIN_PREGNANCY_AGE}: not plausible, so pregnancy is taken as not stated.")
            rec.pregnant, rec.gestational_weeks = None, None

    def _not_usable(self, rec: PatientRecord, key: str, why: str) -> None:
        rec.superseded.append(rec.results.pop(key))
        self.notes.append(f"{why}: not used.")
        self.unusable[key] = (why, None)
        if key in ("iron", "tibc") and "tsat" in rec.results and rec.results["tsat"].derived_from:
            del rec.results["tsat"]

    def _specimen_date(self, rec: PatientRecord) -> date | None:
        times = [r.time for r in rec.results.values() if r.time is not None]
        return max(times).date() if times else None

    def _pregnancy(self, rec: PatientRecord, at: date | None) -> None:
        ref = datetime(at.year, at.month, at.day, 23, 59, 59, tzinfo=timezone.utc) if at is not None else None
        delivery = None
        if self.deliveries and ref is not None:
            past = [(t, w) for t, w in self.deliveries if t <= ref]
            if past:
                t, w = max(past)
                if ref - t <= POSTPARTUM_WINDOW:
                    delivery = t
                    self.contexts.setdefault("postpartum", f"{w} (delivered {t.date()}, within 6 weeks of {at})")
                else:
                    self.notes.append(f"{w}: the delivery on {t.date()} is more than 6 weeks before the specimen date "
                                      f"{at}: not postpartum.")
        elif self.deliveries:
            self.notes.append("A delivery date is recorded but no result has a specimen date: postpartum is not assessed.")
        status = None
        if self.pregnancy:
            usable = [(t, r, w) for t, r, w in self.pregnancy if ref is None or t is None or t <= ref]
            timed = [x for x in usable if x[0] is not None]
            pick = max(timed, key=lambda x: x[0]) if timed else (usable[-1] if usable else None)
            if pick is not None:
                t, role, w = pick
                if ref is not None and t is not None and ref - t > PREGNANCY_STATUS_VALID:
                    self.notes.append(f"{w}: the pregnancy status of {t.date()} is more than 42 weeks before the "
                                      f"specimen date {at}: not used.")
                elif delivery is not None and t is not None and t <= delivery:
                    self.notes.append(f"{w}: the pregnancy status of {t.date()} is before the delivery on "
                                      f"{delivery.date()}: not used.")
                    status = "not-pregnant"
                else:
                    status = role
                    self.notes.append(f"Pregnancy status {role} is read from {w}.")
        if delivery is not None and status is None:
            status = "not-pregnant"
        if status == "pregnant":
            rec.pregnant = True
        elif status == "not-pregnant":
            rec.pregnant = False
        if self.gestation:
            timed = [x for x in self.gestation if x[0] is not None]
            t, weeks, w = max(timed, key=lambda x: x[0]) if timed else self.gestation[-1]
            if rec.pregnant is False:
                self.notes.append(f"{w}: a gestational age is given for a patient read as not pregnant: not used.")
                return
            if t is not None and ref is not None and t <= ref:
                weeks = weeks + Decimal((ref.date() - t.date()).days) / 7
            weeks = units.round6(weeks)
            if weeks > MAX_GESTATIONAL_WEEKS:
                self.notes.append(f"{w}: the gestational age at the specimen date would be {weeks} weeks, more than "
                                  f"{MAX_GESTATIONAL_WEEKS}: not used.")
                return
            rec.gestational_weeks = weeks
            if rec.pregnant is None:
                rec.pregnant = True
            self.notes.append(f"Gestational age {units.format_decimal(weeks)} weeks at the specimen date is read from {w}.")

    def _words(self, rec: PatientRecord) -> None:
        for kind, found, known in (("context", self.contexts, self.vocab.contexts),
                                   ("symptom", self.symptoms, self.vocab.symptoms)):
            ok, other = [], []
            for word, origin in sorted(found.items()):
                (ok if word in known else other).append(word)
                self.notes.append(f"{kind.capitalize()} {word!r} is read from {origin}.")
            if kind == "context":
                rec.contexts, rec.unrecognised_contexts = sorted(ok), sorted(other)
            else:
                rec.symptoms, rec.unrecognised_symptoms = sorted(ok), sorted(other)


def record_from_bundle(data: Mapping, *, source: str | None = None, profile: str = "default") -> PatientRecord:
    """A FHIR R4 Bundle (already parsed from JSON) as a PatientRecord; refused (InputError) only when
    the record is unusable as a whole."""
    return _Reader(data, source, profile).read()


_PARTIAL = ("a year or a year and month, where b12kg needs the day (to tell which result is the latest "
            "and to compute the exact age)")


def _disagreeing_text(q) -> str | None:
    """The unit text of a Quantity when it is itself a UCUM unit other than its code (code pmol/L,
    text pg/mL): which of the two the value is in cannot be told. A text that is not UCUM
    ("picomoles per litre") is display only and never disagrees."""
    if q.code is None or q.unit is None:
        return None
    text = str(q.unit).strip()
    if not text or text == str(q.code) or not units.is_valid_ucum(text):
        return None
    return None if units.same_unit(text, str(q.code)) else text


def _ref_text(ref) -> str:
    if ref.reference:
        return repr(ref.reference)
    if ref.identifier is not None and ref.identifier.value:
        return f"identifier {ref.identifier.system or 'no system'}|{ref.identifier.value}"
    return "a reference with no target"


def _accepted_spelling(unit: str, accepted: Mapping[str, Any]) -> str | None:
    """The accepted unit that ``unit`` spells exactly (itself, or the same UCUM unit spelled otherwise:
    g/dl for g/dL, pg/{cell} for pg), else None."""
    if unit in accepted:
        return unit
    if not units.is_valid_ucum(unit):
        return None
    for a in sorted(accepted):
        if units.same_unit(unit, a):
            return a
    return None


def _specimen_time(obs) -> tuple[datetime | None, str | None]:
    """The specimen time: effectiveDateTime, else effectivePeriod.start, else issued. FHIR allows a
    date alone (read as that day, 00:00 UTC, as in case files) and a partial date (not usable: the
    second value says why)."""
    for name, value in (("effectiveDateTime", obs.effectiveDateTime),
                        ("effectivePeriod.start", obs.effectivePeriod.start if obs.effectivePeriod else None),
                        ("issued", obs.issued)):
        if value is None:
            continue
        if isinstance(value, datetime):
            return (value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)), None
        if isinstance(value, date):
            return datetime(value.year, value.month, value.day, tzinfo=timezone.utc), None
        return None, f"{name} {str(value)!r} is a partial date: {_PARTIAL}"
    return None, None


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
