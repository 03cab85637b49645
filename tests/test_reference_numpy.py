"""The hand-written NumPy reference of the default profile (b12kg/reference_numpy.py, written from
findings.md and profile-default.md, not from the rules) agrees with the rules (the cohort engine
on pyoxigraph) patient by patient, comparing the set of finding codes:

- on every patient of a seeded 10,000-patient synthetic cohort (b12kg.testing.synth with edge cases: values
  at, just above and just below every cut-off, censored at it, in every unit), forced to the
  default profile;
- on a seeded 3,000-patient adversarial cohort built here: every analyte at or next to a cut-off
  of the default profile, in every accepted unit, a third of them censored, and demographics at
  every edge (age bands, sex not recorded, pregnancy with any sex, any trimester, age not
  recorded);
- on every valid shared case with the default profile (and the reference meets each case's
  expectations).

Every disagreement fails. (A pregnant patient with no recorded age was once a named spec ambiguity
kept in strict-xfail tests: the rules now use ferritin for such a patient, as the reference does,
since profile-default.md gives the pregnancy ferritin cut-off "at any age".) The two rule
defects this comparison found when it was written, and how they were fixed, are in the docstrings
of the agreement tests."""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from oracle import reference_numpy as rn
from b12kg.testing import synth
from b12kg.api import assess, load_record
from b12kg.cohort import assess_cohort
from b12kg.inputs.csv import write_csv
from b12kg.cohort.worker import parse_raw
from b12kg.cohort.planner import open_input
from b12kg.errors import InputError
from b12kg.inputs.case import record_from_case

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO / "vendor" / "shared"
N_SYNTH = 10_000
SEED_SYNTH = 4_2024
N_ADVERSARIAL = 3_000
SEED_ADVERSARIAL = 7_2024

# ---------------------------------------------------------------------------------------------
# Running both sides
# ---------------------------------------------------------------------------------------------
@dataclass
class Run:
    cases: list[dict]
    records: list            # PatientRecord per accepted case, in input order
    ordinals: list[int]      # each record's position in the input
    rules: list[set[str]]
    reference: list[set[str]]


def _run(cases: list[dict], work: Path) -> Run:
    csv_path = work / "cohort.csv"
    with open(csv_path, "w", newline="", encoding="utf-8") as fh:
        write_csv(cases, fh)
    out = work / "out"
    summary = assess_cohort(csv_path, out, engine="oxigraph", workers=2, progress=False)
    assert summary.reconciles()
    by_ordinal: dict[int, set[str]] = {}
    with open(out / "findings.ndjson", encoding="utf-8") as fh:
        for line in fh:
            doc = json.loads(line)
            by_ordinal[doc["record"]] = {f["code"] for f in doc["findings"]}
    records, ordinals = [], []
    for raw in open_input(csv_path):            # the records exactly as the cohort engine read them
        try:
            rec = parse_raw(raw, None)
        except InputError:
            assert raw.ordinal not in by_ordinal
            continue
        records.append(rec)
        ordinals.append(raw.ordinal)
    assert len(records) == summary.assessed == len(by_ordinal)
    assert all(r.profile == "default" for r in records)
    ref = rn.codes_per_patient(rn.columns_from_records(records))
    return Run(cases, records, ordinals, [by_ordinal[o] for o in ordinals], ref)


def _disagreements(run: Run) -> list[tuple[int, str, set, set]]:
    """(ordinal, id, codes only the rules derive, codes only the reference derives) for the
    patients that disagree."""
    out = []
    for rec, o, rules, ref in zip(run.records, run.ordinals, run.rules, run.reference):
        if rules == ref:
            continue
        out.append((o, rec.id, rules - ref, ref - rules))
    return out


def known_rule_issue(rec) -> str:
    """For the failure message only (such patients are NOT excluded): a rule defect found (and
    fixed) before that the record may show again, if it came back (see the docstrings below)."""
    holo = rec.results.get("holotc")
    if rec.pregnant and rec.age_years is not None and rec.age_years < Decimal("0.5"):
        return "pregnant under 6 months: rules assess anaemia"
    if holo is not None and holo.comparator != "=":
        return "censored holoTC read as 'no holoTC above 70 measured'"
    if rec.pregnant and rec.age_years is None and "ferritin" in rec.results:
        return "pregnant with no age: ferritin not used"
    return "new"


def _report(run: Run, diffs, limit: int = 8) -> str:
    counts: Counter = Counter()
    kinds: Counter = Counter()
    by_ordinal = dict(zip(run.ordinals, run.records))
    for o, _, only_rules, only_ref in diffs:
        counts.update(f"rules only: {c}" for c in only_rules)
        counts.update(f"reference only: {c}" for c in only_ref)
        kinds[known_rule_issue(by_ordinal[o])] += 1
    lines = [f"{len(diffs)} patients disagree; by known rule issue: {dict(kinds)}; codes: {dict(counts.most_common())}"]
    for o, pid, only_rules, only_ref in diffs[:limit]:
        lines.append(f"- {pid} [{known_rule_issue(by_ordinal[o])}]: rules only {sorted(only_rules)}, "
                     f"reference only {sorted(only_ref)}\n  record: {json.dumps(run.cases[o], default=str)}")
    return "\n".join(lines)


@pytest.fixture(scope="module")
def synth_run(tmp_path_factory) -> Run:
    cases = []
    for case in synth.generate(N_SYNTH, seed=SEED_SYNTH, edge_cases=True):
        case["profile"] = "default"
        cases.append(case)
    return _run(cases, tmp_path_factory.mktemp("synth"))


# The adversarial cohort: cut-off points of profile-default.md per analyte, in each unit the
# loader accepts (written here from the spec, like the reference).
_POINTS = {
    "hemoglobin": {"g/L": [70, 80, 105, 110, 115, 120, 130], "g/dL": [7, 8, 10.5, 11, 11.5, 12, 13]},
    "mcv": {"fL": [80, 100]},
    "rdw": {"%": [14.5]},
    "b12": {"pmol/L": [133, 258], "ng/L": [180, 350], "pg/mL": [180, 350]},
    "holotc": {"pmol/L": [25, 70]},
    "ferritin": {"ug/L": [12, 15, 30, 70, 150, 200], "ng/mL": [12, 15, 30, 70, 150, 200]},
    "folate": {"nmol/L": [6.8], "ng/mL": [3], "ug/L": [3]},
    "crp": {"mg/L": [5], "mg/dL": [0.5]},
    "agp": {"g/L": [1], "mg/dL": [100]},
    "tsat": {"%": [16, 20, 45, 50]},
    "mma": {"umol/L": [0.28, 0.4], "nmol/L": [280, 400]},
}
_AGES = [None, 0.3, 0.49, 0.5, 1, 1.99, 2, 4.99, 5, 11.99, 12, 14.99, 15, 17.99, 18, 30, 49.99, 50, 70]


def adversarial_cases(n: int, seed: int):
    rng = random.Random(seed)
    for i in range(n):
        patient: dict = {}
        sex = rng.choice(["female", "male", None])
        if sex:
            patient["sex"] = sex
        age = rng.choice(_AGES)
        if age is not None:
            patient["age_years"] = age
        preg = rng.choice([None, False, True, True])
        if preg is not None:
            patient["pregnant"] = preg
        if preg and rng.random() < 0.7:
            patient["gestational_weeks"] = rng.choice([0, 5, 13, 14, 20, 27, 28, 40])
        obs = {}
        for key, by_unit in _POINTS.items():
            if rng.random() >= 0.6:
                continue
            unit = rng.choice(sorted(by_unit))
            c = rng.choice(by_unit[unit])
            d = rng.choice([0, 0, 0, 0.1, -0.1, 1, -1, 5, -5, c * 0.5, -c * 0.5]) if rng.random() < 0.8 else 0
            v = round(c + d, 2)
            if v <= 0:
                v = c
            if isinstance(v, float) and v.is_integer():
                v = int(v)
            entry = {"value": v if rng.random() < 0.67 else f"{rng.choice(['<', '<=', '>', '>='])}{v}", "unit": unit}
            if key == "mma" and rng.random() < 0.3:
                entry["ref_high"] = rng.choice(_POINTS["mma"][unit])
            obs[key] = entry
        if rng.random() < 0.15:
            obs["if_antibody"] = {"value": rng.choice(["positive", "negative"])}
        symptoms = [w for w in rn.SYMPTOMS if rng.random() < 0.12]
        context = [w for w in rn.CONTEXTS if rng.random() < 0.07]
        yield {"id": f"adv-{seed}-{i:05d}", "patient": patient, "observations": obs, "symptoms": symptoms,
               "context": context, "profile": "default"}


@pytest.fixture(scope="module")
def adversarial_run(tmp_path_factory) -> Run:
    return _run(list(adversarial_cases(N_ADVERSARIAL, SEED_ADVERSARIAL)), tmp_path_factory.mktemp("adversarial"))


# ---------------------------------------------------------------------------------------------
# The reference itself
# ---------------------------------------------------------------------------------------------
def test_reference_answers_every_code_of_findings_md():
    text = (SHARED / "spec" / "findings.md").read_text(encoding="utf-8")
    codes = set(re.findall(r"^\| ([A-Z][A-Za-z0-9]+) \|", text, flags=re.M))
    assert len(codes) == 40
    assert set(rn.CODES) == codes
    cols = rn.columns_from_records([record_from_case({"id": "x", "patient": {}, "observations": {}})])
    out = rn.findings(cols)
    assert set(out) == codes
    assert all(v.dtype == bool and v.shape == (1,) for v in out.values())


def _codes(case: dict) -> set[str]:
    case = {"id": "t", **case}
    return rn.codes_per_patient(rn.columns_from_records([record_from_case(case)]))[0]


@pytest.mark.parametrize("value, fires", [
    ("<30", True), ("<=30", False), ("<31", False), ("<=29.9", True),     # '<L' below C when L <= C, '<=L' when L < C
    (">29", False), (">=10", False), ("29.9", True), ("30", False),
])
def test_censored_ferritin_below_cut_off(value, fires):
    case = {"patient": {"sex": "female", "age_years": 40}, "observations": {"ferritin": {"value": value, "unit": "ug/L"}}}
    assert ("LowFerritin" in _codes(case)) is fires


@pytest.mark.parametrize("value, fires", [(">5", True), (">=5", False), (">=5.1", True), (">4", False), ("5", False)])
def test_censored_crp_above_cut_off(value, fires):
    case = {"patient": {"sex": "male", "age_years": 40}, "observations": {"crp": {"value": value, "unit": "mg/L"}}}
    assert ("Inflammation" in _codes(case)) is fires


def test_exact_conversion_at_a_cut_off():
    # 10.5 g/dL is exactly 105 g/L: not below 105 (child 6 months to under 2 y)
    base = {"patient": {"sex": "male", "age_years": 1}}
    assert "Anemia" not in _codes({**base, "observations": {"hemoglobin": {"value": 10.5, "unit": "g/dL"}}})
    assert "Anemia" in _codes({**base, "observations": {"hemoglobin": {"value": 10.49, "unit": "g/dL"}}})
    # B12 in pg/mL is compared against 180 ng/L, in pmol/L against 133
    assert "LowB12" not in _codes({"observations": {"b12": {"value": 180, "unit": "pg/mL"}}})
    assert "LowB12" in _codes({"observations": {"b12": {"value": 179, "unit": "pg/mL"}}})
    assert "LowB12" in _codes({"observations": {"b12": {"value": 132, "unit": "pmol/L"}}})
    assert "LowFolate" in _codes({"observations": {"folate": {"value": 6.7, "unit": "nmol/L"}}})
    assert "LowFolate" not in _codes({"observations": {"folate": {"value": 3, "unit": "ug/L"}}})
    # MMA against the laboratory's own limit, stated in nmol/L
    mma = {"observations": {"mma": {"value": 350, "unit": "nmol/L", "ref_high": 400}}}
    assert "RaisedMMA" not in _codes(mma)
    assert "RaisedMMA" in _codes({"observations": {"mma": {"value": 350, "unit": "nmol/L"}}})


def test_censored_holotc_leaves_b12_status_unassessed():
    # LowB12 with holoTC '>=25': 'no holoTC above 70 measured' is unassessed, so is the deficiency
    codes = _codes({"observations": {"b12": {"value": 100, "unit": "pmol/L"}, "holotc": {"value": ">=25", "unit": "pmol/L"}}})
    assert "VitaminB12Deficiency" not in codes and "IndeterminateB12" not in codes and "LowB12" in codes
    codes = _codes({"observations": {"b12": {"value": 100, "unit": "pmol/L"}, "holotc": {"value": "<=70", "unit": "pmol/L"}}})
    assert "VitaminB12Deficiency" in codes


def test_columns_are_exact_micro_units():
    rec = record_from_case({"id": "x", "patient": {"age_years": 49.999999},
                            "observations": {"hemoglobin": {"value": 10.5, "unit": "g/dL"},
                                             "tsat": {"value": "33.333333", "unit": "%"}}})
    cols = rn.columns_from_records([rec])
    assert cols.analytes["hemoglobin"].value[0] == 105_000_000
    assert cols.analytes["tsat"].value[0] == 33_333_333
    assert cols.age[0] == 49_999_999
    assert cols.analytes["hemoglobin"].value.dtype == np.int64


# ---------------------------------------------------------------------------------------------
# Agreement with the rules
# ---------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_reference_agrees_with_rules_on_synthetic_cohort(synth_run):
    """Every patient of the 10,000 gets the same codes.

    A defect this test found in the rules, fixed since: a censored active-B12 result that does
    not decide 'above 70 pmol/L' (e.g. holoTC '>=25', '>25', '>=70', '<121') was treated by rules
    dx-b12-deficiency-low-total and cls-indeterminate-b12-total-band as 'no holoTC above 70
    measured' (FILTER NOT EXISTS over the comparisons certainly met), so LowB12 + holoTC '>=25'
    gave VitaminB12Deficiency, and a total B12 in its band + holoTC '>25' gave IndeterminateB12.
    findings.md ('How to read the criteria'): a censored comparison that does not decide is
    unassessed, 'and so is every criterion built on it'. The rules of family drv-compare now
    derive b12:undecidedAgainst for such a comparison, and both rules require that no active-B12
    result is undecided against the 'above 70' cut-off."""
    diffs = _disagreements(synth_run)
    assert not diffs, _report(synth_run, diffs)



@pytest.mark.slow
def test_reference_agrees_with_rules_on_adversarial_cohort(adversarial_run):
    """As above on values at the cut-offs in every unit, a third of them censored.

    Defects this test found in the rules, fixed since: the censored active-B12 one above; and a
    patient recorded as pregnant with an age under 6 months (a record the loader accepts) was
    assessed for Anemia and SevereAnemia with the pregnancy cut-offs (populations of any age),
    while findings.md says 'Under 6 months of age ... anaemia is not assessed'. The pregnancy
    populations now admit ages from 6 months, or an age not recorded (b12:admitsAgeStatus
    b12:AgeNotRecorded, read by rule drv-population-age-not-recorded)."""
    assert len(adversarial_run.records) > 0.9 * N_ADVERSARIAL
    diffs = _disagreements(adversarial_run)
    assert not diffs, _report(adversarial_run, diffs)


def test_reference_agrees_with_rules_on_a_small_adversarial_cohort(tmp_path):
    """As above on 300 adversarial patients (make test; the 3,000 and the 10,000 are slow)."""
    run = _run(list(adversarial_cases(300, SEED_ADVERSARIAL)), tmp_path)
    assert len(run.records) > 0.9 * 300
    diffs = _disagreements(run)
    assert not diffs, _report(run, diffs)



def _shared_default_cases() -> list[Path]:
    import yaml

    out = []
    for p in sorted((SHARED / "cases" / "valid").glob("*.yaml")):
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
        if data.get("profile", "default") == "default":
            out.append(p)
    return out


@pytest.mark.parametrize("path", _shared_default_cases(), ids=lambda p: p.stem)
def test_reference_agrees_with_rules_on_shared_case(path):
    import yaml

    expect = yaml.safe_load(path.read_text(encoding="utf-8")).get("expect") or {}
    rec = load_record(path)
    assert rec.profile == "default"
    ref = rn.codes_per_patient(rn.columns_from_records([rec]))[0]
    rules = set(assess(rec).codes)
    assert ref == rules, f"rules only {sorted(rules - ref)}, reference only {sorted(ref - rules)}"
    assert set(expect.get("findings") or ()) <= ref
    assert not set(expect.get("not_findings") or ()) & ref


def test_columns_built_in_batches_give_the_same_findings():
    recs = [load_record(c) for c in adversarial_cases(300, 1) if _loads(c)]
    whole = rn.findings(rn.columns_from_records(recs))
    parts = rn.concat_columns([rn.columns_from_records(recs[i:i + 70]) for i in range(0, len(recs), 70)])
    assert parts.n == len(recs)
    batched = rn.findings(parts)
    assert all(np.array_equal(whole[c], batched[c]) for c in rn.CODES)


def _loads(case) -> bool:
    try:
        load_record(case)
    except InputError:
        return False
    return True
