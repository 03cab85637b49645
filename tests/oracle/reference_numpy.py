"""A hand-written, vectorized NumPy implementation of findings.md VERSION 2 (profiles ``default``,
``who-2020`` and ``who-2011``): an independent oracle for the rules.

Written from the specification only (shared/spec/findings.md v2, profile-default.md), never from
rules/*.ttl, the ontology modules or b12kg/engines: every cut-off is a literal below, in the unit
the profile states it in, with a comment naming the profile row. It reads records the loader has
already normalised (``PatientRecord``: values as compared, in the unit compared, TSAT derived).

- ``columns_from_records(records) -> Columns``: one Python pass building columnar arrays
  (demographics; per analyte: present, unusable, comparator, value x 10**6 as an exact integer,
  compared-unit code, the laboratory's upper and lower limits; symptom and context masks).
- ``findings(columns) -> {code: bool array}``: derived (fires). ``unassessed(columns)``: the
  codes that cannot be decided (findings.md S1). ``evaluate(columns)`` gives both at once.

Three values (S1): every criterion is a ``Tri`` (masks ``t`` and ``f``; neither = unassessed),
combined with Kleene logic. "no X" is Kleene negation (~X: unassessed X stays unassessed);
"X not established" is ``Tri.of(~X.t)`` (two-valued). Rows of priority urgent, caution and test
are never unassessed: they fire when their criterion is not false (an undecided criterion counts
as met). Censored results are intervals (S2): a comparison is true when every value of the
interval satisfies it, false when none does. Unknown sex, age or trimester (S3): a criterion is
evaluated for every possible value (representative ages of every band, both sexes, the three
trimesters) and is true when true for all, false when false for all. A result reported but
unusable (``PatientRecord.unusable_results``) makes every comparison on it unassessed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, ROUND_FLOOR, ROUND_HALF_EVEN
from typing import Callable, Iterable, Sequence

import numpy as np

from b12kg.inputs.record import PatientRecord

__all__ = ["Columns", "AnalyteColumns", "Tri", "columns_from_records", "concat_columns", "findings", "unassessed",
           "evaluate", "codes_per_patient", "unassessed_per_patient", "CODES", "SCALE", "NEVER_UNASSESSED"]

SCALE = 10**6                       # values and ages as integers in micro-units

# The codes of findings.md version 2, in the order of its tables.
CODES = (
    # interpretation of single results
    "Anemia", "MildAnemia", "ModerateAnemia", "SevereAnemia", "Microcytosis", "Macrocytosis", "RaisedRDW",
    "Inflammation", "LowB12", "IndeterminateB12", "B12NotDeficient", "LowFerritin", "HighFerritin", "LowFolate",
    "RaisedMMA", "RaisedHomocysteine", "RenalImpairment", "LowTransferrinSaturation", "HighTransferrinSaturation",
    "Thrombocytopenia", "Neutropenia", "RaisedLDH", "RaisedReticulocytes",
    # diagnostic findings
    "VitaminB12Deficiency", "ClinicallySuspectedB12Deficiency", "IronDeficiency", "ProbableIronDeficiency",
    "FolateDeficiency", "IronDeficiencyAnemia", "B12DeficiencyAnemia", "CombinedB12IronDeficiency",
    "FerritinConfounded", "IronDeficiencyMaskingRisk", "IronOverloadRisk", "DimorphicPatternSuspected",
    # recommendations and alerts
    "UrgentClinicalAssessment", "UrgentHaematologyReferral", "UrgentPaediatricReferral", "MonitorPotassium",
    "PseudoTMACaution", "AvoidFolateMonotherapy", "StopNitrousOxide", "MetaboliteConfoundedByRenalFunction",
    "IntramuscularB12Replacement", "OralB12Replacement", "ConsiderB12TreatmentNow", "FolicAcidReplacement",
    "ConsiderIntravenousIron", "OralIronReplacement", "CoordinatedTreatment", "InvestigateCauseOfB12Deficiency",
    "InvestigateCauseOfIronDeficiency", "FastTrackGIInvestigation", "ConsiderHaemoglobinopathy",
    "InvestigateMacrocytosis", "RecheckIronAfterB12Therapy", "MeasureMMA", "MeasureActiveB12", "MeasureFolate",
    "MeasureCRP", "MeasureTransferrinSaturation", "TestB12AndFerritinTogether",
)
# Priority urgent, caution and test: never unassessed (S1), they fire when not decided false.
NEVER_UNASSESSED = frozenset({
    "UrgentClinicalAssessment", "UrgentHaematologyReferral", "UrgentPaediatricReferral", "MonitorPotassium",
    "PseudoTMACaution", "AvoidFolateMonotherapy", "StopNitrousOxide", "MetaboliteConfoundedByRenalFunction",
    "RecheckIronAfterB12Therapy", "MeasureMMA", "MeasureActiveB12", "MeasureFolate", "MeasureCRP",
    "MeasureTransferrinSaturation", "TestB12AndFerritinTogether",
})

SEX_NONE, SEX_FEMALE, SEX_MALE = 0, 1, 2
TRI_NONE, TRI_FIRST, TRI_SECOND, TRI_THIRD, TRI_UNKNOWN = 0, 1, 2, 3, 4
CMP_EQ, CMP_LT, CMP_LE, CMP_GT, CMP_GE = 0, 1, 2, 3, 4
PROF_DEFAULT, PROF_WHO2020, PROF_WHO2011 = 0, 1, 2
_CMP_CODE = {"=": CMP_EQ, "<": CMP_LT, "<=": CMP_LE, ">": CMP_GT, ">=": CMP_GE}
_SEX_CODE = {None: SEX_NONE, "female": SEX_FEMALE, "male": SEX_MALE}
_TRI_CODE = {None: TRI_NONE, "first": TRI_FIRST, "second": TRI_SECOND, "third": TRI_THIRD, "unknown": TRI_UNKNOWN}
_PROF_CODE = {"default": PROF_DEFAULT, "who-2020": PROF_WHO2020, "who-2011": PROF_WHO2011}

# Units a value may be compared in (the unit a cut-off states; profile-default.md). The unit code
# of a result is its index here; pg/mL and ng/L are one mass unit (B12), ug/L and ng/mL (folate).
ANALYTE_UNITS: dict[str, tuple[str, ...]] = {
    "hemoglobin": ("g/L",),
    "mcv": ("fL",),
    "rdw": ("%",),
    "b12": ("ng/L", "pmol/L", "pg/mL"),
    "holotc": ("pmol/L",),
    "ferritin": ("ug/L", "ng/mL"),
    "folate": ("ng/mL", "nmol/L", "ug/L"),
    "crp": ("mg/L",),
    "agp": ("g/L",),
    "tsat": ("%",),
    "iron": ("umol/L",),
    "tibc": ("umol/L",),
    "mma": ("umol/L",),
    "homocysteine": ("umol/L",),
    "reticulocytes": ("%",),
    "ldh": ("U/L",),
    "egfr": ("mL/min/{1.73_m2}",),
    "platelets": ("10*9/L",),
    "neutrophils": ("10*9/L",),
}
B12_MASS_UNITS = (0, 2)          # indices of ng/L and pg/mL in ANALYTE_UNITS["b12"]
FOLATE_MASS_UNITS = (0, 2)       # ng/mL and ug/L

NEURO = ("tingling", "numbness", "gait-disturbance", "balance-problems", "limb-weakness", "memory-loss", "confusion",
         "visual-disturbance", "mood-change", "psychosis", "bladder-or-bowel-dysfunction", "hypotonia",
         "developmental-delay", "developmental-regression", "tremor", "seizures")
RED_FLAGS = ("gi-bleeding", "weight-loss", "dysphagia")
GENERAL = ("fatigue", "weakness", "breathlessness", "glossitis", "pallor", "failure-to-thrive", "irritability")
SYMPTOMS = NEURO + RED_FLAGS + GENERAL
DIETARY = ("vegan-diet", "vegetarian-diet", "poor-intake")
DRUG = ("metformin", "proton-pump-inhibitor")
MALABSORPTION = ("pernicious-anemia", "intrinsic-factor-antibody-positive", "gastrectomy", "bariatric-surgery",
                 "ileal-resection", "crohns-disease", "coeliac-disease")
CHRONIC_INFLAMMATORY = ("crohns-disease", "ulcerative-colitis", "rheumatoid-arthritis", "heart-failure")
CONTEXTS = tuple(dict.fromkeys(
    DIETARY + DRUG + ("nitrous-oxide",) + MALABSORPTION + CHRONIC_INFLAMMATORY
    + ("chronic-kidney-disease", "infection", "liver-disease", "postpartum", "pancytopenia", "breastfed",
       "on-b12-therapy", "on-iron-therapy", "recent-transfusion")))
_POSITIVE = ("https://w3id.org/b12kg/Positive", "positive", "Positive")
_NEGATIVE = ("https://w3id.org/b12kg/Negative", "negative", "Negative")


def _m(x: str | int) -> int:
    """A cut-off in micro-units, exactly (from its decimal text)."""
    d = Decimal(str(x)) * SCALE
    if d != d.to_integral_value():
        raise ValueError(f"{x} has more than 6 decimals")
    return int(d)


# ---------------------------------------------------------------------------------------------
# The profiles (profile-default.md), in the units they state
# ---------------------------------------------------------------------------------------------
# Age band edges (profile rows "anaemia", "iron deficiency", "iron-overload risk"; findings.md
# Microcytosis/Macrocytosis "from age 15", UrgentPaediatricReferral "< 16", investigations ">= 18",
# FastTrackGIInvestigation "from 50").
AGE_6M, AGE_2, AGE_5, AGE_12, AGE_15, AGE_16, AGE_18, AGE_50 = (_m(a) for a in ("0.5", 2, 5, 12, 15, 16, 18, 50))
# Row "anaemia, haemoglobin, g/L" (default, WHO 2024): 6 m-<2 y < 105; 2-<5 < 110; 5-<12 < 115;
# 12-<15 < 120; women < 120, men < 130; pregnancy 1st < 110, 2nd < 105, 3rd < 110, unknown < 110.
HB_6M_2, HB_2_5, HB_5_12, HB_12_15, HB_WOMEN, HB_MEN = (_m(x) for x in (105, 110, 115, 120, 120, 130))
HB_PREG_FIRST, HB_PREG_SECOND, HB_PREG_THIRD, HB_PREG_UNKNOWN = (_m(x) for x in (110, 105, 110, 110))
# Named profile who-2011 (WHO 2011): 6 m-<5 y < 110; pregnancy < 110 in every trimester.
HB_WHO2011_6M_5, HB_WHO2011_PREG = _m(110), _m(110)
# Row "anaemia" severe: < 70 (6 months to under 5 y, pregnancy), < 80 (from 5 y, postpartum included).
HB_SEVERE_UNDER5_AND_PREG, HB_SEVERE_FROM5 = _m(70), _m(80)
# Row "postpartum anaemia (v2)": < 100 up to 6 weeks after delivery (BSH 2020).
HB_POSTPARTUM = _m(100)
# Row "anaemia severity (v2)", WHO 2011 bands, half-open [lo, hi): (mild lo, mild hi = anaemia
# cut-off, moderate lo). 24-59 months and pregnancy 1st/3rd trimester: mild 100-109, moderate 70-99;
# 5-11 y: mild 110-114, moderate 80-109; 12-14 y and non-pregnant women: mild 110-119, moderate
# 80-109; men: mild 110-129, moderate 80-109. 6-23 months, 2nd trimester, postpartum: not graded.
SEV_2_5_AND_PREG = (_m(100), _m(110), _m(70))
SEV_5_12 = (_m(110), _m(115), _m(80))
SEV_12_15_AND_WOMEN = (_m(110), _m(120), _m(80))
SEV_MEN = (_m(110), _m(130), _m(80))
# Row "iron deficiency, ferritin, ug/L" (default): 6 m-<5 y < 12; 5-<15 < 15; from 15 and in
# pregnancy at any age < 30; with Inflammation < 30 under 5 y, < 70 from 5 y.
FERR_6M_5, FERR_5_15, FERR_ADULT_AND_PREG = _m(12), _m(15), _m(30)
FERR_INFL_UNDER5, FERR_INFL_FROM5 = _m(30), _m(70)
# Named profile who-2020 (and who-2011): < 12 under 5 y, < 15 from 5 y and in the first trimester;
# later trimesters and trimester unknown < 30 (BSH 2020); with inflammation < 30 and < 70.
FERR_WHO_UNDER5, FERR_WHO_FROM5_AND_T1, FERR_WHO_PREG_LATER = _m(12), _m(15), _m(30)
# Row "iron-overload risk": ferritin > 150 women 15-<50, > 200 everyone else from 15 (not in
# pregnancy); TSAT > 45 % women, > 50 % men (also row "TSAT, %").
FERR_HIGH_WOMEN_15_50, FERR_HIGH_OTHERS = _m(150), _m(200)
TSAT_HIGH_WOMEN, TSAT_HIGH_MEN = _m(45), _m(50)
# Row "inflammation": CRP > 5 mg/L or AGP > 1 g/L.
CRP_HIGH, AGP_HIGH = _m(5), _m(1)
# Row "B12, serum total": deficient < 180 ng/L or < 133 pmol/L; indeterminate 180-350 ng/L or
# 133-258 pmol/L inclusive.
B12_LOW = {"ng/L": _m(180), "pmol/L": _m(133), "pg/mL": _m(180)}
B12_TOP = {"ng/L": _m(350), "pmol/L": _m(258), "pg/mL": _m(350)}
# Row "active B12 (holoTC), pmol/L": deficient < 25; indeterminate 25-70 inclusive; above 70 unlikely.
HOLOTC_LOW, HOLOTC_TOP = _m(25), _m(70)
# Row "MMA": the result's own upper limit, else > 0.28 umol/L.
MMA_HIGH = _m("0.28")
# Row "MMA suspicion default (v2)": > 0.47 umol/L without a limit of its own (ClinicallySuspected only).
MMA_SUSPICION = _m("0.47")
# Row "folate, serum": < 3 ng/mL (= ug/L) or < 6.8 nmol/L.
FOLATE_LOW = {"ng/mL": _m(3), "nmol/L": _m("6.8"), "ug/L": _m(3)}
# Row "MCV, fL, from 15 y": microcytic < 80; macrocytic > 100 (DimorphicPattern: 80-100 inclusive).
MCV_LOW, MCV_HIGH = _m(80), _m(100)
# Row "RDW-CV, %": raised > 14.5.
RDW_HIGH = _m("14.5")
# Row "TSAT, %": low < 16, with Inflammation < 20.
TSAT_LOW, TSAT_LOW_INFL = _m(16), _m(20)
# Row "probable iron deficiency (v2)": ferritin < 100 ug/L with TSAT < 20 %, from age 15.
PID_FERRITIN, PID_TSAT = _m(100), _m(20)
# Row "intravenous iron (v2)": never in the first trimester (< 14 completed weeks); pregnancy from
# 34 completed weeks with Hb < 100 g/L; IBD with Inflammation or Hb < 100 g/L.
GEST_T2, GEST_IV, HB_IV = _m(14), _m(34), _m(100)
# Row "renal impairment (v2)": eGFR < 60 mL/min/1.73 m2.
EGFR_LOW = _m(60)
# Row "platelets, neutrophils (v2)": the result's own lower limit, else platelets < 150,
# neutrophils < 1.5 (10*9/L; marked "verify" in the profile).
PLT_LOW, NEUT_LOW = _m(150), _m("1.5")

# S3: representative ages of every band above, used for a patient whose age is not recorded.
AGE_REPS = tuple(_m(a) for a in ("0.25", 1, 3, 8, 13, "15.5", 17, 30, 60))


# ---------------------------------------------------------------------------------------------
# Columns
# ---------------------------------------------------------------------------------------------
_AFIELDS = ("present", "unusable", "cmp", "value", "unit", "ref_high", "has_ref_high", "ref_low", "has_ref_low")


@dataclass
class AnalyteColumns:
    present: np.ndarray          # bool: reported (censored or not, usable or not)
    unusable: np.ndarray         # bool: reported but could not be used (every comparison undecided)
    cmp: np.ndarray              # int8: CMP_*
    value: np.ndarray            # int64: value as compared, x 10**6
    unit: np.ndarray             # int8: index into ANALYTE_UNITS[key]
    ref_high: np.ndarray         # int64: the laboratory's upper limit as compared, x 10**6
    has_ref_high: np.ndarray
    ref_low: np.ndarray          # int64: the laboratory's lower limit as compared, x 10**6
    has_ref_low: np.ndarray

    @property
    def usable(self) -> np.ndarray:
        return self.present & ~self.unusable


@dataclass
class Columns:
    n: int
    ids: list[str]
    sex: np.ndarray              # int8: SEX_*
    age: np.ndarray              # int64: age in years x 10**6, floored
    age_missing: np.ndarray
    pregnant: np.ndarray         # bool (not stated: not pregnant)
    trimester: np.ndarray        # int8: TRI_*
    gest: np.ndarray             # int64: completed gestational weeks x 10**6
    gest_missing: np.ndarray
    profile: np.ndarray          # int8: PROF_*
    analytes: dict[str, AnalyteColumns]
    symptoms: dict[str, np.ndarray]
    contexts: dict[str, np.ndarray]
    if_antibody: AnalyteColumns  # qualitative: value 1 positive, 0 negative
    unmapped: np.ndarray         # bool: FHIR codes b12kg could not map
    profiles: list[str] = field(default_factory=list)


def _scaled(d: Decimal) -> int:
    """Micro-units; a value with more than 6 decimals (a derived TSAT) is rounded to 6 places
    (profile-default.md, 'How values meet cut-offs')."""
    return int(d.scaleb(6).to_integral_value(rounding=ROUND_HALF_EVEN))


def _empty_analyte(n: int) -> list:
    return [np.zeros(n, bool), np.zeros(n, bool), np.zeros(n, np.int8), np.zeros(n, np.int64), np.zeros(n, np.int8),
            np.zeros(n, np.int64), np.zeros(n, bool), np.zeros(n, np.int64), np.zeros(n, bool)]


def columns_from_records(records: Sequence[PatientRecord] | Iterable[PatientRecord]) -> Columns:
    """Columnar arrays from normalised records (one Python pass; the findings are vectorized)."""
    records = list(records)
    n = len(records)
    sex = np.zeros(n, np.int8)
    age = np.zeros(n, np.int64)
    age_missing = np.zeros(n, bool)
    pregnant = np.zeros(n, bool)
    trimester = np.zeros(n, np.int8)
    gest = np.zeros(n, np.int64)
    gest_missing = np.zeros(n, bool)
    profile = np.zeros(n, np.int8)
    cols = {k: _empty_analyte(n) for k in ANALYTE_UNITS}
    ifab = _empty_analyte(n)
    unit_code = {k: {u: i for i, u in enumerate(us)} for k, us in ANALYTE_UNITS.items()}
    sym = {w: np.zeros(n, bool) for w in SYMPTOMS}
    ctx = {w: np.zeros(n, bool) for w in CONTEXTS}
    unmapped = np.zeros(n, bool)
    ids, profiles = [], []
    for i, rec in enumerate(records):
        ids.append(rec.id)
        profiles.append(rec.profile)
        profile[i] = _PROF_CODE[rec.profile]
        sex[i] = _SEX_CODE[rec.sex]
        if rec.age_years is None:
            age_missing[i] = True
        else:
            age[i] = int((rec.age_years * SCALE).to_integral_value(rounding=ROUND_FLOOR))
        if rec.pregnant:
            pregnant[i] = True
            trimester[i] = _TRI_CODE[rec.trimester]
            if rec.gestational_weeks is None:
                gest_missing[i] = True
            else:
                gest[i] = int(rec.gestational_weeks) * SCALE       # completed weeks
        unusable = getattr(rec, "unusable_results", None) or {}
        for key in unusable:
            c = ifab if key == "if_antibody" else cols.get(key)
            if c is not None:
                c[0][i] = True
                c[1][i] = True
        for key, r in rec.results.items():
            if key == "if_antibody":
                q = r.qualitative
                ifab[0][i] = True
                if q in _POSITIVE:
                    ifab[3][i] = 1
                elif q not in _NEGATIVE:
                    ifab[1][i] = True
                continue
            c = cols.get(key)
            if c is None:
                continue
            c[0][i] = True
            if key in unusable:
                continue
            if r.compared_value is None or r.compared_unit not in unit_code[key]:
                raise ValueError(f"{rec.id} {key}: compared as {r.compared_value} {r.compared_unit!r}, which no "
                                 f"cut-off of the profiles states (and it is not listed as unusable)")
            c[2][i] = _CMP_CODE[r.comparator]
            c[3][i] = _scaled(r.compared_value)
            c[4][i] = unit_code[key][r.compared_unit]
            if r.ref_high_compared is not None:
                c[5][i] = _scaled(r.ref_high_compared)
                c[6][i] = True
            ref_low = getattr(r, "ref_low_compared", None)
            if ref_low is not None:
                c[7][i] = _scaled(ref_low)
                c[8][i] = True
        for w in rec.symptoms:
            if w in sym:
                sym[w][i] = True
        for w in rec.contexts:
            if w in ctx:
                ctx[w][i] = True
        unmapped[i] = bool(getattr(rec, "unmapped_codes", None))
    analytes = {k: AnalyteColumns(*v) for k, v in cols.items()}
    return Columns(n=n, ids=ids, sex=sex, age=age, age_missing=age_missing, pregnant=pregnant, trimester=trimester,
                   gest=gest, gest_missing=gest_missing, profile=profile, analytes=analytes, symptoms=sym,
                   contexts=ctx, if_antibody=AnalyteColumns(*ifab), unmapped=unmapped, profiles=profiles)


def concat_columns(parts: Sequence[Columns]) -> Columns:
    """One Columns from several (built batch by batch)."""
    if len(parts) == 1:
        return parts[0]

    def cat(get):
        return np.concatenate([get(p) for p in parts])

    def acat(get):
        return AnalyteColumns(*(cat(lambda p, f=f: getattr(get(p), f)) for f in _AFIELDS))

    return Columns(n=sum(p.n for p in parts), ids=[i for p in parts for i in p.ids],
                   **{f: cat(lambda p, f=f: getattr(p, f)) for f in
                      ("sex", "age", "age_missing", "pregnant", "trimester", "gest", "gest_missing", "profile",
                       "unmapped")},
                   analytes={k: acat(lambda p, k=k: p.analytes[k]) for k in ANALYTE_UNITS},
                   symptoms={w: cat(lambda p, w=w: p.symptoms[w]) for w in SYMPTOMS},
                   contexts={w: cat(lambda p, w=w: p.contexts[w]) for w in CONTEXTS},
                   if_antibody=acat(lambda p: p.if_antibody),
                   profiles=[x for p in parts for x in p.profiles])


# ---------------------------------------------------------------------------------------------
# Three-valued criteria
# ---------------------------------------------------------------------------------------------
class Tri:
    """A criterion per patient: ``t`` true, ``f`` false, neither: unassessed (Kleene logic)."""

    __slots__ = ("t", "f")
    __array_ufunc__ = None          # ``mask | tri`` defers to Tri, never an object array

    def __init__(self, t, f):
        self.t = np.asarray(t, bool)
        self.f = np.asarray(f, bool)

    def __and__(self, o) -> "Tri":
        o = _tri(o)
        return Tri(self.t & o.t, self.f | o.f)

    __rand__ = __and__

    def __or__(self, o) -> "Tri":
        o = _tri(o)
        return Tri(self.t | o.t, self.f & o.f)

    __ror__ = __or__

    def __invert__(self) -> "Tri":
        """"no X": true when X is false, unassessed when X is."""
        return Tri(self.f, self.t)

    @property
    def u(self) -> np.ndarray:
        return ~self.t & ~self.f

    def not_established(self) -> "Tri":
        """"X not established": true when X is false or unassessed."""
        return Tri.of(~self.t)

    def not_false(self) -> "Tri":
        """Derived or unassessed."""
        return Tri.of(~self.f)

    @staticmethod
    def of(mask) -> "Tri":
        mask = np.asarray(mask, bool)
        return Tri(mask, ~mask)


def _tri(x) -> Tri:
    return x if isinstance(x, Tri) else Tri.of(x)


def _cmp(a: AnalyteColumns, c, op: str) -> Tri:
    """value OP c over the interval the result stands for (S2); not measured: false; unusable:
    unassessed."""
    v, k = a.value, a.cmp
    eq, lt, le, gt, ge = (k == CMP_EQ), (k == CMP_LT), (k == CMP_LE), (k == CMP_GT), (k == CMP_GE)
    if op == "<":
        t = (eq & (v < c)) | (lt & (v <= c)) | (le & (v < c))
        f = ((eq | gt | ge) & (v >= c))
    elif op == "<=":
        t = (eq | lt | le) & (v <= c)
        f = (eq & (v > c)) | (gt & (v >= c)) | (ge & (v > c))
    elif op == ">":
        t = (eq & (v > c)) | (gt & (v >= c)) | (ge & (v > c))
        f = (eq | lt | le) & (v <= c)
    elif op == ">=":
        t = (eq | gt | ge) & (v >= c)
        f = (eq & (v < c)) | (lt & (v <= c)) | (le & (v < c))
    else:
        raise ValueError(op)
    usable = a.usable
    return Tri(usable & t, ~a.present | (usable & f))


def _per_unit(a: AnalyteColumns, units: tuple[str, ...], table: dict) -> np.ndarray:
    return np.asarray([table[u] for u in units], np.int64)[a.unit]


# ---------------------------------------------------------------------------------------------
# The findings
# ---------------------------------------------------------------------------------------------
def _take(cols: Columns, idx: np.ndarray) -> Columns:
    """The patients ``idx`` of ``cols``."""
    def acut(a: AnalyteColumns) -> AnalyteColumns:
        return AnalyteColumns(*(getattr(a, f)[idx] for f in _AFIELDS))

    return Columns(n=len(idx), ids=[cols.ids[i] for i in idx],
                   **{f: getattr(cols, f)[idx] for f in ("sex", "age", "age_missing", "pregnant", "trimester", "gest",
                                                         "gest_missing", "profile", "unmapped")},
                   analytes={k: acut(a) for k, a in cols.analytes.items()},
                   symptoms={w: m[idx] for w, m in cols.symptoms.items()},
                   contexts={w: m[idx] for w, m in cols.contexts.items()},
                   if_antibody=acut(cols.if_antibody), profiles=[cols.profiles[i] for i in idx] if cols.profiles else [])


def evaluate(cols: Columns) -> dict[str, Tri]:
    """Every code of findings.md v2 as a Tri (urgent, caution and test rows already never unassessed).

    The S3 scenarios are evaluated only for the patients with an unknown sex, age or trimester
    (the others in one pass): the same answers, much faster on large cohorts."""
    unknown = (cols.age_missing | (cols.sex == SEX_NONE) | (cols.pregnant & (cols.sex == SEX_MALE))
               | (cols.pregnant & (cols.trimester == TRI_UNKNOWN)))
    if 0 < unknown.sum() < cols.n:
        parts = [np.flatnonzero(~unknown), np.flatnonzero(unknown)]
        results = [_evaluate(_take(cols, idx)) for idx in parts]
        out = {}
        for code in CODES:
            t = np.zeros(cols.n, bool)
            f = np.zeros(cols.n, bool)
            for idx, r in zip(parts, results):
                t[idx] = r[code].t
                f[idx] = r[code].f
            out[code] = Tri(t, f)
        return out
    return _evaluate(cols)


def _evaluate(cols: Columns) -> dict[str, Tri]:
    n = cols.n
    A = cols.analytes
    S, C = cols.symptoms, cols.contexts
    preg = cols.pregnant
    prof = cols.profile
    who = prof != PROF_DEFAULT                               # who-2020 and who-2011 share ferritin
    postpartum = C["postpartum"] & ~preg
    # Sex for clinical use: pregnancy recorded with sex male is read as sex unknown for the
    # sex-dependent criteria outside pregnancy cut-offs (nothing is guessed; see NOTES.md).
    sex_missing = (cols.sex == SEX_NONE) | (preg & (cols.sex == SEX_MALE))

    tri_unknown = preg & (cols.trimester == TRI_UNKNOWN)
    age_reps = AGE_REPS if cols.age_missing.any() else AGE_REPS[-1:]
    sex_reps = (SEX_FEMALE, SEX_MALE) if sex_missing.any() else (SEX_FEMALE,)

    def s3(fn: Callable[[np.ndarray, np.ndarray, np.ndarray], Tri], trimesters: bool = False) -> Tri:
        """S3: fn(age, sex, trimester) evaluated for every possible value of what is unknown
        (the trimester only for the rows whose profile states no rule for it unknown)."""
        t = np.ones(n, bool)
        f = np.ones(n, bool)
        tri_reps = (TRI_FIRST, TRI_SECOND, TRI_THIRD) if trimesters and tri_unknown.any() else (TRI_UNKNOWN,)
        for a in age_reps:
            # a recorded pregnancy is not a patient under 6 months (see NOTES.md)
            skip = cols.age_missing & preg & (a < AGE_6M)
            age = np.where(cols.age_missing, a, cols.age)
            for s in sex_reps:
                sex = np.where(sex_missing, s, cols.sex)
                for tr in tri_reps:
                    trim = np.where(tri_unknown, tr, cols.trimester)
                    r = fn(age, sex, trim)
                    t &= r.t | skip
                    f &= r.f | skip
        return Tri(t, f)

    hb, mcv, rdw, b12, holo = A["hemoglobin"], A["mcv"], A["rdw"], A["b12"], A["holotc"]
    ferr, fol, crp, agp, tsat, mma = A["ferritin"], A["folate"], A["crp"], A["agp"], A["tsat"], A["mma"]
    hcy, ldh, retic, egfr, plt, neut = (A["homocysteine"], A["ldh"], A["reticulocytes"], A["egfr"],
                                        A["platelets"], A["neutrophils"])

    def any_of(words, table):
        m = np.zeros(n, bool)
        for w in words:
            m |= table[w]
        return m

    neuro = any_of(NEURO, S)
    gi_bleeding = S["gi-bleeding"]
    red_flag = any_of(RED_FLAGS, S)
    dietary = any_of(DIETARY, C)
    drug = any_of(DRUG, C)
    nitrous = C["nitrous-oxide"]
    therapy = C["on-b12-therapy"]
    ibd = C["crohns-disease"] | C["ulcerative-colitis"]
    ifab_result = Tri(cols.if_antibody.usable & (cols.if_antibody.value == 1),
                      ~cols.if_antibody.present | (cols.if_antibody.usable & (cols.if_antibody.value != 1)))
    if_antibody = ifab_result | C["intrinsic-factor-antibody-positive"]
    malabs = if_antibody | any_of(MALABSORPTION, C)
    chronic_infl = any_of(CHRONIC_INFLAMMATORY, C)

    # -- anaemia ---------------------------------------------------------------------------
    def hb_cut(age, sex):
        """The anaemia cut-off (0: not assessed, under 6 months)."""
        default = np.select(
            [preg & (cols.trimester == TRI_FIRST), preg & (cols.trimester == TRI_SECOND),
             preg & (cols.trimester == TRI_THIRD), preg, age < AGE_6M, postpartum,
             age < AGE_2, age < AGE_5, age < AGE_12, age < AGE_15, sex == SEX_FEMALE],
            [HB_PREG_FIRST, HB_PREG_SECOND, HB_PREG_THIRD, HB_PREG_UNKNOWN, 0, HB_POSTPARTUM,
             HB_6M_2, HB_2_5, HB_5_12, HB_12_15, HB_WOMEN], default=HB_MEN)
        who2011 = np.select(
            [preg, age < AGE_6M, postpartum, age < AGE_5, age < AGE_12, age < AGE_15, sex == SEX_FEMALE],
            [HB_WHO2011_PREG, 0, HB_POSTPARTUM, HB_WHO2011_6M_5, HB_5_12, HB_12_15, HB_WOMEN], default=HB_MEN)
        return np.where(prof == PROF_WHO2011, who2011, default)

    def anemia_fn(age, sex, _trim):
        cut = hb_cut(age, sex)
        return _cmp(hb, cut, "<") & (cut > 0)

    def severe_fn(age, sex, _trim):
        cut = np.select([preg, age < AGE_6M, age < AGE_5], [HB_SEVERE_UNDER5_AND_PREG, 0, HB_SEVERE_UNDER5_AND_PREG],
                        default=HB_SEVERE_FROM5)
        return _cmp(hb, cut, "<") & (cut > 0)

    def band(age, sex, trim):
        """(mild lo, mild hi, moderate lo, graded) of the WHO 2011 table."""
        conds = [preg & ((trim == TRI_FIRST) | (trim == TRI_THIRD)), preg, age < AGE_6M, postpartum, age < AGE_2,
                 age < AGE_5, age < AGE_12, age < AGE_15, sex == SEX_FEMALE]
        rows = [SEV_2_5_AND_PREG, (0, 0, 0), (0, 0, 0), (0, 0, 0), (0, 0, 0), SEV_2_5_AND_PREG, SEV_5_12,
                SEV_12_15_AND_WOMEN, SEV_12_15_AND_WOMEN]
        lo = np.select(conds, [r[0] for r in rows], default=SEV_MEN[0])
        hi = np.select(conds, [r[1] for r in rows], default=SEV_MEN[1])
        mod = np.select(conds, [r[2] for r in rows], default=SEV_MEN[2])
        return lo, hi, mod, hi > 0

    def mild_fn(age, sex, trim):
        lo, hi, _mod, graded = band(age, sex, trim)
        return anemia_fn(age, sex, trim) & _cmp(hb, lo, ">=") & _cmp(hb, hi, "<") & graded

    def moderate_fn(age, sex, trim):
        lo, _hi, mod, graded = band(age, sex, trim)
        return anemia_fn(age, sex, trim) & _cmp(hb, mod, ">=") & _cmp(hb, lo, "<") & graded

    anemia = s3(anemia_fn)
    mild = s3(mild_fn, trimesters=True)
    moderate = s3(moderate_fn, trimesters=True)
    severe = s3(severe_fn)

    # -- single results ----------------------------------------------------------------------
    adult15 = s3(lambda age, sex, trim: Tri.of(age >= AGE_15))
    micro = _cmp(mcv, MCV_LOW, "<") & adult15
    macro = _cmp(mcv, MCV_HIGH, ">") & adult15
    raised_rdw = _cmp(rdw, RDW_HIGH, ">")
    inflammation = _cmp(crp, CRP_HIGH, ">") | _cmp(agp, AGP_HIGH, ">")

    b12_units = ANALYTE_UNITS["b12"]
    b12_lt_low = _cmp(b12, _per_unit(b12, b12_units, B12_LOW), "<")
    b12_le_top = _cmp(b12, _per_unit(b12, b12_units, B12_TOP), "<=")
    b12_gt_top = _cmp(b12, _per_unit(b12, b12_units, B12_TOP), ">")
    holo_lt_low = _cmp(holo, HOLOTC_LOW, "<")
    holo_le_top = _cmp(holo, HOLOTC_TOP, "<=")
    holo_gt_top = _cmp(holo, HOLOTC_TOP, ">")
    b12_measured = b12.present | holo.present
    low_b12 = b12_lt_low

    ferr_used = s3(lambda age, sex, trim: Tri.of(ferr.present & ((age >= AGE_6M) | preg)))

    def ferr_cuts(age, trim):
        plain_default = np.select([preg | (age >= AGE_15), age < AGE_5], [FERR_ADULT_AND_PREG, FERR_6M_5],
                                  default=FERR_5_15)
        # the trimester as recorded: who-2020 states < 30 for the trimester unknown (no S3 here)
        plain_who = np.select([preg & (cols.trimester == TRI_FIRST), preg, age < AGE_5],
                              [FERR_WHO_FROM5_AND_T1, FERR_WHO_PREG_LATER, FERR_WHO_UNDER5], default=FERR_WHO_FROM5_AND_T1)
        plain = np.where(who, plain_who, plain_default)
        infl = np.where(age < AGE_5, FERR_INFL_UNDER5, FERR_INFL_FROM5)
        return plain, infl

    def below_plain_fn(age, sex, trim):
        plain, _ = ferr_cuts(age, trim)
        return _cmp(ferr, plain, "<") & ((age >= AGE_6M) | preg)

    def below_infl_fn(age, sex, trim):
        _, infl = ferr_cuts(age, trim)
        return _cmp(ferr, infl, "<") & ((age >= AGE_6M) | preg)

    below_plain = s3(below_plain_fn)
    below_infl = s3(below_infl_fn)
    # The inflammation cut-off is never below the plain one, so below the plain cut-off decides
    # LowFerritin whatever Inflammation is, and not below the inflammation one decides it false.
    low_ferritin = Tri(below_plain.t | (inflammation.t & below_infl.t),
                       below_infl.f | (inflammation.f & below_plain.f))

    def high_ferritin_fn(age, sex, trim):
        cut = np.where((sex == SEX_FEMALE) & (age < AGE_50), FERR_HIGH_WOMEN_15_50, FERR_HIGH_OTHERS)
        return _cmp(ferr, cut, ">") & (age >= AGE_15) & ~preg

    high_ferritin = s3(high_ferritin_fn)
    low_folate = _cmp(fol, _per_unit(fol, ANALYTE_UNITS["folate"], FOLATE_LOW), "<")
    raised_mma = _cmp(mma, np.where(mma.has_ref_high, mma.ref_high, MMA_HIGH), ">")
    mma_suspicion = _cmp(mma, np.where(mma.has_ref_high, mma.ref_high, MMA_SUSPICION), ">")
    renal = Tri(np.where(egfr.present, _cmp(egfr, EGFR_LOW, "<").t, C["chronic-kidney-disease"]),
                np.where(egfr.present, _cmp(egfr, EGFR_LOW, "<").f, ~C["chronic-kidney-disease"]))
    low_tsat_16 = _cmp(tsat, TSAT_LOW, "<")
    low_tsat_20 = _cmp(tsat, TSAT_LOW_INFL, "<")
    low_tsat = Tri(low_tsat_16.t | (inflammation.t & low_tsat_20.t), low_tsat_20.f | (inflammation.f & low_tsat_16.f))
    high_tsat = s3(lambda age, sex, trim: _cmp(tsat, np.where(sex == SEX_FEMALE, TSAT_HIGH_WOMEN, TSAT_HIGH_MEN), ">"))
    thrombo = _cmp(plt, np.where(plt.has_ref_low, plt.ref_low, PLT_LOW), "<")
    neutro = _cmp(neut, np.where(neut.has_ref_low, neut.ref_low, NEUT_LOW), "<")

    def own_limit(a: AnalyteColumns) -> Tri:
        """above the result's own upper limit; without one: unassessed (not measured: false)."""
        c = _cmp(a, a.ref_high, ">")
        return Tri(a.has_ref_high & c.t, ~a.present | (a.has_ref_high & c.f))

    raised_ldh = own_limit(ldh)
    raised_retic = own_limit(retic)
    raised_hcy = own_limit(hcy)

    # -- diagnostic findings -----------------------------------------------------------------
    no_therapy = Tri.of(~therapy)
    vb12d = no_therapy & ((b12_lt_low & ~holo_gt_top) | holo_lt_low
                          | (raised_mma & ~renal & (b12_le_top | holo_le_top)))
    vb12d_not_est = vb12d.not_established()
    csb12d = (vb12d_not_est & no_therapy & (Tri.of(neuro) | (anemia & macro))
              & ((mma_suspicion & ~renal) | (raised_hcy & ~renal & Tri.of(fol.present) & ~low_folate)
                 | if_antibody | Tri.of(nitrous)))
    indeterminate = no_therapy & vb12d_not_est & (
        (b12_le_top & ~holo_gt_top) | holo_le_top | (b12_lt_low & holo_gt_top)
        | (raised_mma & ~renal & (b12_gt_top | holo_gt_top)))
    b12_not_deficient = (no_therapy & (b12_gt_top | holo_gt_top) & ~vb12d & ~indeterminate & ~csb12d
                         & (~raised_mma | (raised_mma & renal)))
    b12_ps = vb12d | csb12d                                   # B12 deficiency, proven or suspected
    iron_def = low_ferritin
    probable_iron = (adult15 & ~low_ferritin & _cmp(ferr, PID_FERRITIN, "<") & _cmp(tsat, PID_TSAT, "<")
                     & (inflammation | Tri.of(chronic_infl) | renal | b12_ps))
    any_iron = iron_def | probable_iron
    folate_def = low_folate
    ida = iron_def & anemia & ~b12_ps & (Tri.of(b12_measured) | micro)
    b12da = vb12d & anemia & ferr_used & ~iron_def & ~probable_iron
    combined = b12_ps & any_iron
    confounded = ferr_used & ~low_ferritin & (inflammation | Tri.of(C["infection"] | C["liver-disease"]))
    masking = b12_ps & ferr_used & ~iron_def & (anemia | macro)
    overload = high_ferritin & high_tsat & ~(b12_ps & (anemia | macro))
    mcv_normal = _cmp(mcv, MCV_LOW, ">=") & _cmp(mcv, MCV_HIGH, "<=") & adult15
    dimorphic = anemia & mcv_normal & raised_rdw

    # -- recommendations and alerts ------------------------------------------------------------
    recorded_under16 = Tri.of(~cols.age_missing & (cols.age < AGE_16))
    urgent_assessment = severe | gi_bleeding
    urgent_haem = anemia & (thrombo | neutro | C["pancytopenia"])
    urgent_paed = recorded_under16 & (b12_ps | (indeterminate & neuro))
    # "each of these decided false": an exclusion that cannot be decided fails the row (not Kleene)
    oral_b12 = (vb12d & Tri.of(dietary | drug) & Tri.of(malabs.f) & Tri.of(~nitrous) & Tri.of(~neuro)
                & Tri.of(severe.f) & Tri.of(~cols.unmapped))
    im_b12 = csb12d | (vb12d & oral_b12.not_established())
    treat_now = indeterminate & (Tri.of(neuro) | (anemia & macro) | folate_def) & im_b12.not_established()
    potassium = (b12_ps | treat_now) & severe
    # RaisedLDH derived, not merely unassessed for want of a limit (a censored LDH against its
    # own limit that is undecided still counts as met, as in every urgent row).
    ldh_for_tma = Tri(raised_ldh.t, raised_ldh.f | (ldh.present & ~ldh.has_ref_high))
    pseudo_tma = (b12_ps | indeterminate) & anemia & ldh_for_tma & raised_retic.not_established()
    avoid_folate = b12_ps.not_false() | ((folate_def | macro) & b12_not_deficient.not_established() & no_therapy)
    stop_n2o = Tri.of(nitrous) & (b12_ps | indeterminate)
    metabolite_renal = (raised_mma | raised_hcy) & renal
    # "IntramuscularB12Replacement, OralB12Replacement or ConsiderB12TreatmentNow also fired"
    folic = folate_def & (b12_not_deficient | Tri.of(im_b12.t | oral_b12.t | treat_now.t) | therapy)

    def gest_ge(w):
        g = Tri(preg & ~cols.gest_missing & (cols.gest >= w), preg & ~cols.gest_missing & (cols.gest < w))
        return g

    iv_iron = (anemia & any_iron & (Tri.of(~preg) | gest_ge(GEST_T2))
               & ((Tri.of(preg) & iron_def & gest_ge(GEST_IV) & _cmp(hb, HB_IV, "<"))
                  | (Tri.of(ibd) & (inflammation | _cmp(hb, HB_IV, "<")))))
    oral_iron = any_iron & iv_iron.not_established()
    coordinated = combined
    investigate_b12 = (vb12d & ~(Tri.of(dietary | drug | nitrous) | malabs)) | csb12d
    adult18 = s3(lambda age, sex, trim: Tri.of(age >= AGE_18))
    investigate_iron = any_iron & adult18 & Tri.of(~preg)
    fast_track_who = s3(lambda age, sex, trim: Tri.of((age >= AGE_18) & ((sex == SEX_MALE) | (age >= AGE_50))))
    fast_track = ((anemia & any_iron & fast_track_who & Tri.of(~preg & ~C["postpartum"] & ~ibd))
                  | (any_iron & Tri.of(red_flag)))
    haemoglobinopathy = (micro & ferr_used & ~low_ferritin & ~confounded & ~probable_iron & Tri.of(tsat.present)
                         & ~low_tsat)
    investigate_macro = macro & (b12_not_deficient | therapy) & Tri.of(fol.present) & ~low_folate
    recheck = masking | combined | (high_ferritin & high_tsat & b12_ps) | (Tri.of(therapy) & ferr_used)
    measure_mma = ((indeterminate | (csb12d & nitrous & ~mma.present & ~hcy.present)) & Tri.of(~mma.present)
                   & renal.not_established() & Tri.of(~preg | holo.present))
    measure_holo = indeterminate & Tri.of(preg & ~holo.present)
    measure_folate = (macro | b12_ps) & Tri.of(~fol.present)
    measure_crp = (ferr_used & (Tri.of(~crp.present & ~agp.present) | Tri.of(inflammation.u))
                   & ((~below_plain & below_infl) | C["infection"]))
    only_by_infl = low_ferritin & ~below_plain
    measure_tsat = Tri.of(~tsat.present) & (high_ferritin | confounded | only_by_infl | masking
                                            | (micro & ferr_used & ~low_ferritin))
    test_together = Tri.of(neuro | S["fatigue"] | S["weakness"]) | anemia
    test_together = test_together & Tri.of(~b12_measured | ~ferr.present)

    out = {
        "Anemia": anemia, "MildAnemia": mild, "ModerateAnemia": moderate, "SevereAnemia": severe,
        "Microcytosis": micro, "Macrocytosis": macro, "RaisedRDW": raised_rdw, "Inflammation": inflammation,
        "LowB12": low_b12, "IndeterminateB12": indeterminate, "B12NotDeficient": b12_not_deficient,
        "LowFerritin": low_ferritin, "HighFerritin": high_ferritin, "LowFolate": low_folate, "RaisedMMA": raised_mma,
        "RaisedHomocysteine": raised_hcy, "RenalImpairment": renal, "LowTransferrinSaturation": low_tsat,
        "HighTransferrinSaturation": high_tsat, "Thrombocytopenia": thrombo, "Neutropenia": neutro,
        "RaisedLDH": raised_ldh, "RaisedReticulocytes": raised_retic,
        "VitaminB12Deficiency": vb12d, "ClinicallySuspectedB12Deficiency": csb12d, "IronDeficiency": iron_def,
        "ProbableIronDeficiency": probable_iron, "FolateDeficiency": folate_def, "IronDeficiencyAnemia": ida,
        "B12DeficiencyAnemia": b12da, "CombinedB12IronDeficiency": combined, "FerritinConfounded": confounded,
        "IronDeficiencyMaskingRisk": masking, "IronOverloadRisk": overload, "DimorphicPatternSuspected": dimorphic,
        "UrgentClinicalAssessment": urgent_assessment, "UrgentHaematologyReferral": urgent_haem,
        "UrgentPaediatricReferral": urgent_paed, "MonitorPotassium": potassium, "PseudoTMACaution": pseudo_tma,
        "AvoidFolateMonotherapy": avoid_folate, "StopNitrousOxide": stop_n2o,
        "MetaboliteConfoundedByRenalFunction": metabolite_renal, "IntramuscularB12Replacement": im_b12,
        "OralB12Replacement": oral_b12, "ConsiderB12TreatmentNow": treat_now, "FolicAcidReplacement": folic,
        "ConsiderIntravenousIron": iv_iron, "OralIronReplacement": oral_iron, "CoordinatedTreatment": coordinated,
        "InvestigateCauseOfB12Deficiency": investigate_b12, "InvestigateCauseOfIronDeficiency": investigate_iron,
        "FastTrackGIInvestigation": fast_track, "ConsiderHaemoglobinopathy": haemoglobinopathy,
        "InvestigateMacrocytosis": investigate_macro, "RecheckIronAfterB12Therapy": recheck,
        "MeasureMMA": measure_mma, "MeasureActiveB12": measure_holo, "MeasureFolate": measure_folate,
        "MeasureCRP": measure_crp, "MeasureTransferrinSaturation": measure_tsat,
        "TestB12AndFerritinTogether": test_together,
    }
    assert tuple(out) == CODES, set(out) ^ set(CODES)
    for code in NEVER_UNASSESSED:                           # S1: an undecided criterion counts as met
        out[code] = out[code].not_false()
    return out


def findings(cols: Columns) -> dict[str, np.ndarray]:
    """Every code of findings.md v2: code -> bool array (derived)."""
    return {k: v.t.copy() for k, v in evaluate(cols).items()}


def unassessed(cols: Columns) -> dict[str, np.ndarray]:
    """Every code of findings.md v2: code -> bool array (cannot be decided, S1)."""
    return {k: v.u for k, v in evaluate(cols).items()}


def _per_patient(cols: Columns, result: dict[str, np.ndarray]) -> list[set[str]]:
    sets: list[set[str]] = [set() for _ in range(cols.n)]
    for code, mask in result.items():
        for i in np.flatnonzero(mask):
            sets[i].add(code)
    return sets


def codes_per_patient(cols: Columns, result: dict[str, np.ndarray] | None = None) -> list[set[str]]:
    """The set of codes derived, per patient (for comparisons; not vectorized)."""
    return _per_patient(cols, findings(cols) if result is None else result)


def unassessed_per_patient(cols: Columns, result: dict[str, np.ndarray] | None = None) -> list[set[str]]:
    """The set of codes unassessed, per patient."""
    return _per_patient(cols, unassessed(cols) if result is None else result)
