"""Patient records: one normalised form for every input (case files, Python dicts, FHIR Bundles,
RDF), checked before any reasoning. Nothing is guessed: a result without a unit, with a unit that
is not a unit of its test, with a value that is not a number or outside the plausible range, or
with a code of another measurand, is refused with a message naming the field, the value and the
problem. Values are kept as given and as compared (profile-default.md, 'How values meet cut-offs')."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal


COMPARATORS = ("<=", ">=", "<", ">")
VALUE_RE = re.compile(r"^\s*(<=|>=|<|>|=)?\s*([-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)\s*$")
MAX_AGE = Decimal(150)
MAX_GESTATIONAL_WEEKS = Decimal(45)
MAX_RESULTS_PER_RECORD = 10_000
MAX_DIGITS = 20          # significant digits of a number b12kg reads
MAX_DEPTH = 64           # levels of nesting in one record (a case record has 4, a FHIR Bundle about 10)
MAX_INT_DIGITS = 64      # digits of an integer in a record (Python refuses to print one of over 4300)
MAX_MAGNITUDE = 20       # numbers from 1e-20 to under 1e21 (adjusted exponent), and 0
# Decimal places of a number b12kg reads or compares. The SPARQL stores compare xsd:decimal exactly
# only to a fixed number of places (oxigraph: 18; with more, a literal is not a decimal it can
# compare, and every comparison with it is silently an error). A value converted to another unit
# before it is compared is checked again after the conversion.
MAX_DECIMAL_PLACES = 18


@dataclass(slots=True)
class Result:
    """One laboratory result, as given and as compared (treat as read-only; not frozen only
    because a frozen dataclass is several times slower to build, which counts in cohorts)."""

    key: str
    test_iri: str
    source: str
    value_as_given: str
    unit_as_given: str | None = None
    comparator: str = "="
    value: Decimal | None = None
    compared_value: Decimal | None = None
    compared_unit: str | None = None
    canonical_value: Decimal | None = None
    canonical_unit: str | None = None
    ref_high_as_given: str | None = None
    ref_high_compared: Decimal | None = None
    ref_low_as_given: str | None = None
    ref_low_compared: Decimal | None = None
    qualitative: str | None = None
    time: datetime | None = None
    loinc: str | None = None
    derived_from: tuple[str, ...] = ()
    derivation: str | None = None


@dataclass
class PatientRecord:
    """A patient and the results that count, normalised and validated."""

    id: str
    sex: str | None = None                 # "female", "male" or None (not recorded)
    age_years: Decimal | None = None
    pregnant: bool | None = None           # None: not stated (taken as not pregnant)
    gestational_weeks: Decimal | None = None
    results: dict[str, Result] = field(default_factory=dict)
    superseded: list[Result] = field(default_factory=list)
    unusable_results: dict[str, str] = field(default_factory=dict)  # analyte key -> why a reported result could not be used (set only by system-export readers: FHIR, bulk, OMOP, long tables)
    unmapped_codes: list[str] = field(default_factory=list)          # "system|code" of coded symptoms, conditions or procedures b12kg could not map
    symptoms: list[str] = field(default_factory=list)
    contexts: list[str] = field(default_factory=list)
    unrecognised_symptoms: list[str] = field(default_factory=list)
    unrecognised_contexts: list[str] = field(default_factory=list)
    profile: str = "default"
    notes: list[str] = field(default_factory=list)
    source: str | None = None

    @property
    def trimester(self) -> str | None:
        if not self.pregnant:
            return None
        if self.gestational_weeks is None:
            return "unknown"
        weeks = int(self.gestational_weeks)  # completed weeks
        return "first" if weeks < 14 else "second" if weeks < 28 else "third"


