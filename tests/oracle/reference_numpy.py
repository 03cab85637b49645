"""A hand-written, vectorized NumPy implementation of the ``default`` profile: an independent
oracle for the rules and the speed-of-light reference of the benchmark.

It is written from the specification only (shared/spec/findings.md and profile-default.md), not
from rules/*.ttl nor the ontology: every cut-off of the default profile is a literal below, in
the units the profile states it in. It reads the records the loader has already normalised
(``PatientRecord``: values as compared, in the unit compared, TSAT already derived) and answers
the 40 finding codes of findings.md, version 1.

Two steps:

- ``columns_from_records(records) -> Columns``: one pass of Python over the records, building
  columnar arrays (demographics, and per analyte: present mask, comparator code, value as compared
  as an exact integer scaled by 10**6, unit-compared code, the laboratory's upper reference limit;
  symptom and context masks).
- ``findings(columns) -> {code: bool array}``: no loop over patients, only array operations.

Values are compared as integers (micro-units), so a cut-off is never missed through
floating-point error: 105.0 g/L from 10.5 g/dL is exactly 105_000_000.

Three-valued criteria (findings.md, "How to read the criteria"): a result reported with a
comparator is censored, so a criterion on it may be unassessed, neither true nor false. A
criterion on a value is a ``Tri`` (masks ``t`` and ``f``; neither set = unassessed); a censored
result stands for the interval of values it allows ('<L': below L, '<=L': at most L, and so on),
and a criterion is true when it holds for every value of the interval, false when it holds for
none, otherwise unassessed. This reproduces the table of findings.md ('<L' counts as below C when
L <= C, '<=L' when L < C, '>L' counts as above C when L >= C, '>=L' when L > C). A criterion on a
value that was not measured is false. A criterion on age (or sex) when the age (or sex) is not
recorded is unassessed. A finding fires when its criterion is true; "no X" on a finding is
negation as failure (X did not fire).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Iterable, Sequence

import numpy as np

from b12kg.inputs.record import PatientRecord

__all__ = ["Columns", "AnalyteColumns", "Tri", "columns_from_records", "concat_columns", "findings",
           "codes_per_patient", "CODES", "SCALE"]

SCALE = 10**6                       # values and ages as integers in micro-units

# The 40 codes of findings.md, version 1, in the order of its tables.
CODES = (
    "Anemia", "SevereAnemia", "Microcytosis", "Macrocytosis", "RaisedRDW", "Inflammation", "LowB12",
    "IndeterminateB12", "LowFerritin", "HighFerritin", "LowFolate", "RaisedMMA", "LowTransferrinSaturation",
    "HighTransferrinSaturation",
    "VitaminB12Deficiency", "IronDeficiency", "FolateDeficiency", "IronDeficiencyAnemia", "B12DeficiencyAnemia",
    "CombinedB12IronDeficiency", "FerritinConfounded", "IronDeficiencyMaskingRisk", "IronOverloadRisk",
    "DimorphicPatternSuspected",
    "AvoidFolateMonotherapy", "TestB12AndFerritinTogether", "IntramuscularB12Replacement", "OralB12Replacement",
    "InvestigateCauseOfB12Deficiency", "ConsiderB12TreatmentNow", "MonitorPotassium", "FolicAcidReplacement",
    "OralIronReplacement", "InvestigateCauseOfIronDeficiency", "CoordinatedTreatment", "RecheckIronAfterB12Therapy",
    "MeasureMMA", "MeasureActiveB12", "MeasureCRP", "MeasureTransferrinSaturation",
)

# Codes of the columns.
SEX_NONE, SEX_FEMALE, SEX_MALE = 0, 1, 2
TRI_NONE, TRI_FIRST, TRI_SECOND, TRI_THIRD, TRI_UNKNOWN = 0, 1, 2, 3, 4
CMP_EQ, CMP_LT, CMP_LE, CMP_GT, CMP_GE = 0, 1, 2, 3, 4
_CMP_CODE = {"=": CMP_EQ, "<": CMP_LT, "<=": CMP_LE, ">": CMP_GT, ">=": CMP_GE}
_SEX_CODE = {None: SEX_NONE, "female": SEX_FEMALE, "male": SEX_MALE}
_TRI_CODE = {None: TRI_NONE, "first": TRI_FIRST, "second": TRI_SECOND, "third": TRI_THIRD, "unknown": TRI_UNKNOWN}

# The analytes the default profile reads, each with the units a value may be compared in (the
# loader compares in the unit a cut-off states, else in the canonical unit; profile-default.md).
# The unit code of a result is its index in this tuple.
ANALYTE_UNITS: dict[str, tuple[str, ...]] = {
    "hemoglobin": ("g/L",),
    "mcv": ("fL",),
    "rdw": ("%",),
    "b12": ("ng/L", "pmol/L"),
    "holotc": ("pmol/L",),
    "ferritin": ("ug/L",),
    "folate": ("ng/mL", "nmol/L"),
    "crp": ("mg/L",),
    "agp": ("g/L",),
    "tsat": ("%",),
    "mma": ("umol/L",),
}
SYMPTOMS = ("tingling", "numbness", "fatigue", "weakness")
CONTEXTS = ("vegan-diet", "vegetarian-diet", "poor-intake", "metformin", "pernicious-anemia",
            "intrinsic-factor-antibody-positive", "gastrectomy", "bariatric-surgery", "ileal-resection",
            "crohns-disease", "infection", "liver-disease", "rheumatoid-arthritis")
_POSITIVE = "https://w3id.org/b12kg/Positive"


def _m(x: str | int) -> int:
    """A cut-off in micro-units, exactly (from its decimal text)."""
    d = Decimal(str(x)) * SCALE
    if d != d.to_integral_value():
        raise ValueError(f"{x} has more than 6 decimals")
    return int(d)


# ---------------------------------------------------------------------------------------------
# The default profile (profile-default.md), in the units it states
# ---------------------------------------------------------------------------------------------
AGE_6M, AGE_2, AGE_5, AGE_12, AGE_15, AGE_18, AGE_50 = (_m(a) for a in ("0.5", 2, 5, 12, 15, 18, 50))
HB_6M_2, HB_2_5, HB_5_12, HB_12_15, HB_WOMEN, HB_MEN = (_m(x) for x in (105, 110, 115, 120, 120, 130))
HB_PREG_FIRST, HB_PREG_SECOND, HB_PREG_THIRD, HB_PREG_UNKNOWN = (_m(x) for x in (110, 105, 110, 110))
HB_SEVERE_UNDER5_AND_PREG, HB_SEVERE_FROM5 = _m(70), _m(80)
FERR_6M_5, FERR_5_15, FERR_ADULT_AND_PREG = _m(12), _m(15), _m(30)
FERR_INFL_UNDER5, FERR_INFL_FROM5 = _m(30), _m(70)
FERR_HIGH_WOMEN_15_50, FERR_HIGH_OTHERS = _m(150), _m(200)
CRP_HIGH, AGP_HIGH = _m(5), _m(1)
B12_LOW = {"ng/L": _m(180), "pmol/L": _m(133)}
B12_BAND = {"ng/L": (_m(180), _m(350)), "pmol/L": (_m(133), _m(258))}
HOLOTC_LOW, HOLOTC_BAND = _m(25), (_m(25), _m(70))
MMA_HIGH = _m("0.28")
FOLATE_LOW = {"ng/mL": _m(3), "nmol/L": _m("6.8")}
MCV_LOW, MCV_HIGH = _m(80), _m(100)
RDW_HIGH = _m("14.5")
TSAT_LOW, TSAT_LOW_INFL, TSAT_HIGH_WOMEN, TSAT_HIGH_MEN = _m(16), _m(20), _m(45), _m(50)


# ---------------------------------------------------------------------------------------------
# Columns
# ---------------------------------------------------------------------------------------------
@dataclass
class AnalyteColumns:
    present: np.ndarray          # bool: measured (censored or not)
    cmp: np.ndarray              # int8: CMP_EQ, CMP_LT, CMP_LE, CMP_GT, CMP_GE
    value: np.ndarray            # int64: value as compared, x 10**6
    unit: np.ndarray             # int8: index into ANALYTE_UNITS[key]
    ref_high: np.ndarray         # int64: upper reference limit as compared, x 10**6
    has_ref_high: np.ndarray     # bool


@dataclass
class Columns:
    n: int
    ids: list[str]
    sex: np.ndarray              # int8: SEX_NONE, SEX_FEMALE, SEX_MALE
    age: np.ndarray              # int64: age in years x 10**6, floored (exact for the band edges)
    age_missing: np.ndarray      # bool
    pregnant: np.ndarray         # bool (not stated: not pregnant)
    trimester: np.ndarray        # int8: TRI_NONE (not pregnant), TRI_FIRST, ..., TRI_UNKNOWN
    analytes: dict[str, AnalyteColumns]
    symptoms: dict[str, np.ndarray]
    contexts: dict[str, np.ndarray]
    if_antibody_positive: np.ndarray
    profiles: list[str] = field(default_factory=list)


def _scaled(d: Decimal, what: str) -> int:
    q = d.scaleb(6)
    i = int(q)
    if i != q:
        raise ValueError(f"{what}: {d} has more than 6 decimals; the reference compares micro-units exactly")
    return i


def columns_from_records(records: Sequence[PatientRecord] | Iterable[PatientRecord]) -> Columns:
    """Columnar arrays from normalised records (one Python pass; the findings are vectorized)."""
    records = list(records)
    n = len(records)
    sex = np.zeros(n, np.int8)
    age = np.zeros(n, np.int64)
    age_missing = np.zeros(n, bool)
    pregnant = np.zeros(n, bool)
    trimester = np.zeros(n, np.int8)
    cols: dict[str, list] = {k: [np.zeros(n, bool), np.zeros(n, np.int8), np.zeros(n, np.int64), np.zeros(n, np.int8),
                                 np.zeros(n, np.int64), np.zeros(n, bool)] for k in ANALYTE_UNITS}
    unit_code = {k: {u: i for i, u in enumerate(us)} for k, us in ANALYTE_UNITS.items()}
    sym = {w: np.zeros(n, bool) for w in SYMPTOMS}
    ctx = {w: np.zeros(n, bool) for w in CONTEXTS}
    ifab = np.zeros(n, bool)
    ids = []
    profiles = []
    for i, rec in enumerate(records):
        ids.append(rec.id)
        profiles.append(rec.profile)
        sex[i] = _SEX_CODE[rec.sex]
        if rec.age_years is None:
            age_missing[i] = True
        else:
            age[i] = int((rec.age_years * SCALE).to_integral_value(rounding="ROUND_FLOOR"))
        if rec.pregnant:
            pregnant[i] = True
            trimester[i] = _TRI_CODE[rec.trimester]
        for key, r in rec.results.items():
            c = cols.get(key)
            if c is None:
                if key == "if_antibody" and r.qualitative == _POSITIVE:
                    ifab[i] = True
                continue
            c[0][i] = True
            c[1][i] = _CMP_CODE[r.comparator]
            c[2][i] = _scaled(r.compared_value, f"{rec.id} {key}")
            try:
                c[3][i] = unit_code[key][r.compared_unit]
            except KeyError:
                raise ValueError(f"{rec.id} {key}: compared in {r.compared_unit}, which no cut-off of the default "
                                 f"profile states") from None
            if r.ref_high_compared is not None:
                c[4][i] = _scaled(r.ref_high_compared, f"{rec.id} {key} ref_high")
                c[5][i] = True
        for w in rec.symptoms:
            if w in sym:
                sym[w][i] = True
        for w in rec.contexts:
            if w in ctx:
                ctx[w][i] = True
    analytes = {k: AnalyteColumns(*v) for k, v in cols.items()}
    return Columns(n=n, ids=ids, sex=sex, age=age, age_missing=age_missing, pregnant=pregnant, trimester=trimester,
                   analytes=analytes, symptoms=sym, contexts=ctx, if_antibody_positive=ifab, profiles=profiles)


def concat_columns(parts: Sequence[Columns]) -> Columns:
    """One Columns from several (built batch by batch, so the records need not all be in memory)."""
    if len(parts) == 1:
        return parts[0]

    def cat(get):
        return np.concatenate([get(p) for p in parts])

    analytes = {k: AnalyteColumns(*(cat(lambda p, k=k, f=f: getattr(p.analytes[k], f)) for f in
                                    ("present", "cmp", "value", "unit", "ref_high", "has_ref_high")))
                for k in ANALYTE_UNITS}
    return Columns(n=sum(p.n for p in parts), ids=[i for p in parts for i in p.ids],
                   sex=cat(lambda p: p.sex), age=cat(lambda p: p.age), age_missing=cat(lambda p: p.age_missing),
                   pregnant=cat(lambda p: p.pregnant), trimester=cat(lambda p: p.trimester), analytes=analytes,
                   symptoms={w: cat(lambda p, w=w: p.symptoms[w]) for w in SYMPTOMS},
                   contexts={w: cat(lambda p, w=w: p.contexts[w]) for w in CONTEXTS},
                   if_antibody_positive=cat(lambda p: p.if_antibody_positive),
                   profiles=[x for p in parts for x in p.profiles])


# ---------------------------------------------------------------------------------------------
# Three-valued criteria
# ---------------------------------------------------------------------------------------------
class Tri:
    """A criterion per patient: ``t`` true, ``f`` false, neither: unassessed (Kleene logic)."""

    __slots__ = ("t", "f")

    def __init__(self, t: np.ndarray, f: np.ndarray):
        self.t = t
        self.f = f

    def __and__(self, o: "Tri") -> "Tri":
        return Tri(self.t & o.t, self.f | o.f)

    def __or__(self, o: "Tri") -> "Tri":
        return Tri(self.t | o.t, self.f & o.f)

    def __invert__(self) -> "Tri":
        return Tri(self.f, self.t)

    def where(self, assessable: np.ndarray) -> "Tri":
        """Unassessed where ``assessable`` is false."""
        return Tri(self.t & assessable, self.f & assessable)

    @staticmethod
    def of(mask: np.ndarray) -> "Tri":
        return Tri(mask, ~mask)


def _lt(a: AnalyteColumns, c) -> Tri:
    """value < c: true for '=v' with v < c, '<L' with L <= c, '<=L' with L < c; false for '=v',
    '>L', '>=L' with v, L >= c; not measured: false."""
    v, k = a.value, a.cmp
    t = a.present & (((k == CMP_EQ) & (v < c)) | ((k == CMP_LT) & (v <= c)) | ((k == CMP_LE) & (v < c)))
    f = ~a.present | (((k == CMP_EQ) | (k == CMP_GT) | (k == CMP_GE)) & (v >= c))
    return Tri(t, f)


def _le(a: AnalyteColumns, c) -> Tri:
    """value <= c."""
    v, k = a.value, a.cmp
    t = a.present & (((k == CMP_EQ) | (k == CMP_LT) | (k == CMP_LE)) & (v <= c))
    f = ~a.present | (((k == CMP_EQ) & (v > c)) | ((k == CMP_GT) & (v >= c)) | ((k == CMP_GE) & (v > c)))
    return Tri(t, f)


def _gt(a: AnalyteColumns, c) -> Tri:
    """value > c: true for '>L' with L >= c, '>=L' with L > c. Not measured: false."""
    x = ~_le(a, c)
    return Tri(x.t & a.present, x.f | ~a.present)


def _ge(a: AnalyteColumns, c) -> Tri:
    x = ~_lt(a, c)
    return Tri(x.t & a.present, x.f | ~a.present)


def _band(a: AnalyteColumns, lo, hi) -> Tri:
    """lo <= value <= hi (a band 'lo-hi inclusive'); not measured: false."""
    return _ge(a, lo) & _le(a, hi)


def _per_unit(a: AnalyteColumns, units: tuple[str, ...], table: dict) -> np.ndarray:
    """A per-patient cut-off from a {unit: cut-off} table (the result's compared unit)."""
    return np.asarray([table[u] for u in units], np.int64)[a.unit]


# ---------------------------------------------------------------------------------------------
# The findings
# ---------------------------------------------------------------------------------------------
def findings(cols: Columns) -> dict[str, np.ndarray]:
    """Every code of findings.md under the default profile: code -> bool array (fires)."""
    n = cols.n
    A = cols.analytes
    no = np.zeros(n, bool)
    age, known = cols.age, ~cols.age_missing
    preg = cols.pregnant
    female = cols.sex == SEX_FEMALE
    male = cols.sex == SEX_MALE
    sex_known = cols.sex != SEX_NONE
    # pregnancy recorded with sex male or unknown: sex-dependent criteria outside pregnancy are
    # not assessed; in pregnancy, pregnancy cut-offs (not sex) apply
    sex_usable = sex_known & ~(preg & ~female)

    def age_ge(x):
        return Tri(known & (age >= x), known & (age < x))

    # "Under 6 months of age, ferritin is not used at all, and anaemia is not assessed": both need
    # the patient to be known to be at least 6 months old. A recorded pregnancy is taken as such
    # when the age is not recorded (the pregnancy cut-offs hold "in pregnancy at any age").
    from_6m = (known & (age >= AGE_6M)) | (~known & preg)
    adult15 = age_ge(AGE_15)

    # -- symptoms and context --------------------------------------------------------------
    S, C = cols.symptoms, cols.contexts
    neuro = S["tingling"] | S["numbness"]
    dietary = C["vegan-diet"] | C["vegetarian-diet"] | C["poor-intake"]
    drug = C["metformin"]
    malabs = (C["pernicious-anemia"] | C["intrinsic-factor-antibody-positive"] | cols.if_antibody_positive
              | C["gastrectomy"] | C["bariatric-surgery"] | C["ileal-resection"] | C["crohns-disease"])
    infection = C["infection"]
    confounding_context = infection | C["liver-disease"]

    hb, mcv, rdw, b12, holo = A["hemoglobin"], A["mcv"], A["rdw"], A["b12"], A["holotc"]
    ferr, fol, crp, agp, tsat, mma = A["ferritin"], A["folate"], A["crp"], A["agp"], A["tsat"], A["mma"]

    # -- anaemia: cut-off per patient, and where it can be assessed -------------------------
    hb_cut = np.select(
        [preg & (cols.trimester == TRI_FIRST), preg & (cols.trimester == TRI_SECOND),
         preg & (cols.trimester == TRI_THIRD), preg,
         age < AGE_2, age < AGE_5, age < AGE_12, age < AGE_15, female, male],
        [HB_PREG_FIRST, HB_PREG_SECOND, HB_PREG_THIRD, HB_PREG_UNKNOWN,
         HB_6M_2, HB_2_5, HB_5_12, HB_12_15, HB_WOMEN, HB_MEN], default=0)
    # in pregnancy the cut-off depends on the trimester only, so the age need not be recorded
    hb_assessable = from_6m & (preg | (age < AGE_15) | sex_usable)
    anemia = _lt(hb, hb_cut).where(hb_assessable).t
    severe_cut = np.where(preg | (age < AGE_5), HB_SEVERE_UNDER5_AND_PREG, HB_SEVERE_FROM5)
    severe = _lt(hb, severe_cut).where(from_6m).t

    # -- single results ----------------------------------------------------------------------
    micro = (_lt(mcv, MCV_LOW) & adult15).t
    macro = (_gt(mcv, MCV_HIGH) & adult15).t
    raised_rdw = _gt(rdw, RDW_HIGH).t
    inflammation = (_gt(crp, CRP_HIGH) | _gt(agp, AGP_HIGH)).t

    b12_units = ANALYTE_UNITS["b12"]
    low_b12 = _lt(b12, _per_unit(b12, b12_units, B12_LOW)).t
    b12_band = _band(b12, _per_unit(b12, b12_units, {u: lo for u, (lo, hi) in B12_BAND.items()}),
                     _per_unit(b12, b12_units, {u: hi for u, (lo, hi) in B12_BAND.items()}))
    holo_low = _lt(holo, HOLOTC_LOW)
    holo_band = _band(holo, *HOLOTC_BAND)
    no_holo_above_70 = ~_gt(holo, HOLOTC_BAND[1])      # true when holoTC not measured
    b12_measured = b12.present | holo.present

    # ferritin: used only from 6 months ("measured" below means measured and used)
    ferr_used = ferr.present & from_6m
    ferr_plain_cut = np.where(preg | (age >= AGE_15), FERR_ADULT_AND_PREG, np.where(age < AGE_5, FERR_6M_5, FERR_5_15))
    ferr_infl_cut = np.where(age < AGE_5, FERR_INFL_UNDER5, FERR_INFL_FROM5)
    below_plain = _lt(ferr, ferr_plain_cut).where(from_6m)
    below_infl = _lt(ferr, ferr_infl_cut).where(from_6m & known)
    # With Inflammation the inflammation cut-off applies; it is never below the plain cut-off for the
    # same patient (< 30 vs < 12 under 5 y, < 70 vs < 15 or < 30 from 5 y, and >= 30 vs 30 in
    # pregnancy whatever the age), so a ferritin below the plain cut-off is below it too. That
    # decides a pregnant patient with no recorded age (inflammation cut-off 30 or 70, unknown which)
    # whose ferritin is below 30.
    low_ferritin = np.where(inflammation, below_infl.t | below_plain.t, below_plain.t)
    ferr_high_cut = np.where(female & (age < AGE_50), FERR_HIGH_WOMEN_15_50, FERR_HIGH_OTHERS)
    high_ferritin = (_gt(ferr, ferr_high_cut).where(sex_usable & ~preg) & adult15).t

    fol_low = _lt(fol, _per_unit(fol, ANALYTE_UNITS["folate"], FOLATE_LOW)).t
    mma_cut = np.where(mma.has_ref_high, mma.ref_high, MMA_HIGH)
    raised_mma = _gt(mma, mma_cut).t
    low_tsat = _lt(tsat, np.where(inflammation, TSAT_LOW_INFL, TSAT_LOW)).t
    high_tsat = _gt(tsat, np.where(female, TSAT_HIGH_WOMEN, TSAT_HIGH_MEN)).where(sex_usable).t

    # -- diagnostic findings -----------------------------------------------------------------
    vb12d = ((Tri.of(low_b12) & no_holo_above_70) | holo_low
             | (Tri.of(raised_mma) & (b12_band | holo_band | Tri.of(low_b12)))).t
    indeterminate = ~vb12d & ((b12_band & no_holo_above_70) | holo_band
                              | (Tri.of(low_b12) & ~no_holo_above_70)).t
    iron_def = low_ferritin
    folate_def = fol_low
    ida = iron_def & anemia & ~vb12d & (b12_measured | micro)
    b12da = vb12d & anemia & ferr_used & ~iron_def
    combined = vb12d & iron_def
    confounded = ferr_used & ~low_ferritin & (inflammation | confounding_context)
    masking = vb12d & ferr_used & ~iron_def & (anemia | macro)
    megaloblastic = vb12d & (anemia | macro)
    overload = high_ferritin & high_tsat & ~megaloblastic
    mcv_normal = (_band(mcv, MCV_LOW, MCV_HIGH) & adult15).t
    dimorphic = anemia & mcv_normal & raised_rdw

    # -- recommendations and alerts ------------------------------------------------------------
    avoid_folate = vb12d | ((indeterminate | ~b12_measured) & (folate_def | macro))
    test_together = (neuro | S["fatigue"] | S["weakness"] | anemia) & (~b12_measured | ~ferr.present)
    im = vb12d & (malabs | neuro | severe | ~(dietary | drug))
    oral = vb12d & (dietary | drug) & ~malabs & ~neuro & ~severe
    investigate_b12 = vb12d & ~dietary & ~drug & ~malabs
    treat_now = indeterminate & (neuro | (anemia & macro))
    potassium = vb12d & severe
    folic = folate_def & b12_measured & ~indeterminate & (~vb12d | im | oral)
    oral_iron = iron_def & ~overload
    investigate_iron = iron_def & (age_ge(AGE_18).t) & ~preg
    coordinated = combined
    recheck = masking | combined | (high_ferritin & high_tsat & vb12d)
    measure_mma = indeterminate & ~mma.present & (~preg | holo.present)
    measure_holo = b12_band.t & preg & ~holo.present & ~vb12d
    grey_zone = (~below_plain & below_infl).t
    measure_crp = ferr_used & ~crp.present & ~agp.present & (grey_zone | infection)
    only_by_infl = low_ferritin & (~below_plain).t
    measure_tsat = ~tsat.present & (high_ferritin | confounded | only_by_infl)

    out = {
        "Anemia": anemia, "SevereAnemia": severe, "Microcytosis": micro, "Macrocytosis": macro,
        "RaisedRDW": raised_rdw, "Inflammation": inflammation, "LowB12": low_b12, "IndeterminateB12": indeterminate,
        "LowFerritin": low_ferritin, "HighFerritin": high_ferritin, "LowFolate": fol_low, "RaisedMMA": raised_mma,
        "LowTransferrinSaturation": low_tsat, "HighTransferrinSaturation": high_tsat,
        "VitaminB12Deficiency": vb12d, "IronDeficiency": iron_def, "FolateDeficiency": folate_def,
        "IronDeficiencyAnemia": ida, "B12DeficiencyAnemia": b12da, "CombinedB12IronDeficiency": combined,
        "FerritinConfounded": confounded, "IronDeficiencyMaskingRisk": masking, "IronOverloadRisk": overload,
        "DimorphicPatternSuspected": dimorphic,
        "AvoidFolateMonotherapy": avoid_folate, "TestB12AndFerritinTogether": test_together,
        "IntramuscularB12Replacement": im, "OralB12Replacement": oral, "InvestigateCauseOfB12Deficiency": investigate_b12,
        "ConsiderB12TreatmentNow": treat_now, "MonitorPotassium": potassium, "FolicAcidReplacement": folic,
        "OralIronReplacement": oral_iron, "InvestigateCauseOfIronDeficiency": investigate_iron,
        "CoordinatedTreatment": coordinated, "RecheckIronAfterB12Therapy": recheck, "MeasureMMA": measure_mma,
        "MeasureActiveB12": measure_holo, "MeasureCRP": measure_crp, "MeasureTransferrinSaturation": measure_tsat,
    }
    assert tuple(out) == CODES
    return {k: np.asarray(v, bool) | no for k, v in out.items()}


def codes_per_patient(cols: Columns, result: dict[str, np.ndarray] | None = None) -> list[set[str]]:
    """The set of codes that fired, per patient (for comparisons; not vectorized)."""
    result = findings(cols) if result is None else result
    sets: list[set[str]] = [set() for _ in range(cols.n)]
    for code, mask in result.items():
        for i in np.flatnonzero(mask):
            sets[i].add(code)
    return sets
