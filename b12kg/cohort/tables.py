"""The analyst tables of a cohort, built as Arrow tables in this one place: one row per assessed
patient (``patient_table``: demographics, profile, one column per finding code holding "true",
"false" or "unassessed", the number of findings) and the findings in long form
(``findings_table``: one row per finding and piece of evidence, with the cut-off it was compared
with and whether the value met it). ``summarise`` counts the patient table by finding code, sex,
age band and pregnancy.

The finding codes are the knowledge base's (``b12kg.kb.finding_classes``); the age bands are cut
at every age where a population of the knowledge base starts or ends (``b12kg.kb.age_band_edges``),
so a band never straddles a cut-off's population."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Iterable, Mapping, NamedTuple

import pyarrow as pa
import pyarrow.compute as pc

from ..cache import once
from ..engines.base import Provenance
from ..inputs.record import PatientRecord
from ..kb import age_band_edges, finding_classes, threshold_table
from ..units import format_decimal

TRUE, FALSE, UNASSESSED = "true", "false", "unassessed"
NO_AGE = "unknown"
#: the pregnancy groups of the summary: the trimester when pregnant, else "not pregnant"
NOT_PREGNANT = "not pregnant"
NOT_RECORDED = "not recorded"


@once
def finding_codes() -> tuple[str, ...]:
    """Every finding code of the knowledge base, sorted: the patient table's finding columns."""
    return tuple(sorted(finding_classes()))


def finding_values(derived: Iterable[str], unassessed: Iterable[str], codes: Iterable[str] | None = None) -> list[str]:
    """The value of each finding column of one patient, in the order of ``codes`` (default:
    every code of the knowledge base): "true" if the finding was derived, "unassessed" if it could
    not be assessed, else "false". A code both derived and unassessed is "true": a derived finding
    stands."""
    found = set(derived)
    open_ = set(unassessed) - found
    return [TRUE if c in found else UNASSESSED if c in open_ else FALSE for c in (finding_codes() if codes is None else codes)]


@once
def age_bands() -> tuple[str, ...]:
    """The age bands in order ("<0.5", "0.5-<2", ..., "50+"), then "unknown"."""
    edges = [format_decimal(e) for e in age_band_edges()]
    bands = [f"<{edges[0]}"] + [f"{a}-<{b}" for a, b in zip(edges, edges[1:])] + [f"{edges[-1]}+"]
    return tuple(bands) + (NO_AGE,)


def age_band(age: Decimal | None) -> str:
    if age is None:
        return NO_AGE
    edges = age_band_edges()
    return age_bands()[sum(1 for e in edges if age >= e)]


def criterion_met(criterion: str, comparator: str, value: Decimal, limit: tuple) -> bool | None:
    """Whether a value (with its comparator: a censored '<5' is any value below 5) meets a
    cut-off's criterion in the value's unit: True or False when every value the result allows
    gives that answer, None when the result leaves it open. ``limit`` is (value, lower, upper) of
    the cut-off in that unit; ``criterion`` is '<', '>' or 'a-b' (a band, inclusive).

    >>> criterion_met("<", "=", Decimal("120"), (Decimal("150"), None, None))
    True
    >>> criterion_met("<", ">", Decimal("120"), (Decimal("150"), None, None)) is None
    True
    >>> criterion_met("a-b", "<", Decimal("100"), (None, Decimal("180"), Decimal("350")))
    False
    """
    # the values the result allows, as an interval: (low, low included, high, high included)
    inf = None
    lo, lo_in, hi, hi_in = {"=": (value, True, value, True), "<": (inf, False, value, False),
                            "<=": (inf, False, value, True), ">": (value, False, inf, False),
                            ">=": (value, True, inf, False)}[comparator]

    def all_below(x):          # every allowed value < x
        return hi is not None and (hi < x or (hi == x and not hi_in))

    def none_below(x):         # no allowed value < x
        return lo is not None and lo >= x

    def all_above(x):
        return lo is not None and (lo > x or (lo == x and not lo_in))

    def none_above(x):
        return hi is not None and hi <= x

    if criterion == "<":
        return True if all_below(limit[0]) else False if none_below(limit[0]) else None
    if criterion == ">":
        return True if all_above(limit[0]) else False if none_above(limit[0]) else None
    a, b = limit[1], limit[2]
    if lo is not None and hi is not None:       # a value, not censored
        return a <= lo <= b
    # censored: never wholly inside a band; outside it when the allowed values miss it
    return False if all_below(a) or all_above(b) else None


class Assessed(NamedTuple):
    """One assessed patient as the cohort worker has it."""

    ordinal: int
    source: str
    record: PatientRecord
    found: Mapping[str, Provenance]          # code -> what the finding rests on
    unassessed: Mapping[str, Provenance]     # code -> what left it unassessed (findings.md v2)


def patient_schema(codes: tuple[str, ...] | None = None) -> pa.Schema:
    codes = finding_codes() if codes is None else codes
    return pa.schema([("patient", pa.string()), ("record", pa.int64()), ("source", pa.string()),
                      ("sex", pa.string()), ("age_years", pa.float64()), ("age_band", pa.string()),
                      ("pregnant", pa.bool_()), ("trimester", pa.string()), ("gestational_weeks", pa.float64()),
                      ("profile", pa.string())]
                     + [(c, pa.string()) for c in codes] + [("n_findings", pa.int32())])


FINDINGS_SCHEMA = pa.schema([
    ("patient", pa.string()), ("record", pa.int64()), ("code", pa.string()), ("status", pa.string()),
    ("kind", pa.string()), ("priority", pa.string()), ("label", pa.string()),
    ("rules", pa.list_(pa.string())), ("based_on", pa.list_(pa.string())),
    ("analyte", pa.string()), ("value_as_given", pa.string()), ("unit_as_given", pa.string()),
    ("comparator", pa.string()), ("value_compared", pa.string()), ("unit_compared", pa.string()),
    ("threshold", pa.string()), ("cutoff", pa.string()), ("source", pa.string()), ("verification", pa.string()),
    ("met", pa.bool_()),
])


def _float(d: Decimal | None) -> float | None:
    return None if d is None else float(d)


def patient_table(patients: Iterable[Assessed]) -> pa.Table:
    """One row per patient, in the order given (see the module docstring)."""
    codes = finding_codes()
    schema = patient_schema(codes)
    cols: dict[str, list] = {name: [] for name in schema.names}
    for a in patients:
        rec = a.record
        for name, v in (("patient", rec.id), ("record", a.ordinal), ("source", a.source), ("sex", rec.sex),
                        ("age_years", _float(rec.age_years)), ("age_band", age_band(rec.age_years)),
                        ("pregnant", rec.pregnant), ("trimester", rec.trimester),
                        ("gestational_weeks", _float(rec.gestational_weeks)), ("profile", rec.profile),
                        ("n_findings", len(a.found))):
            cols[name].append(v)
        for c, v in zip(codes, finding_values(a.found, a.unassessed, codes)):
            cols[c].append(v)
    return pa.table(cols, schema=schema)


def _evidence_rows(rec: PatientRecord, p: Provenance) -> list[tuple]:
    """(analyte, as given, unit as given, comparator, compared, unit compared, threshold id,
    cut-off text, source, verification, met) for each result and the cut-offs of its test that the
    finding rests on; a cut-off without a result and a finding with neither get a row each."""
    ths = threshold_table()
    used = [ths[t] for t in p.thresholds]
    rows = []
    paired: set[str] = set()
    for key in p.results:
        r = rec.results.get(key)
        if r is None:
            continue
        given = (key, r.value_as_given, r.unit_as_given, r.comparator,
                 None if r.compared_value is None else format_decimal(r.compared_value), r.compared_unit)
        mine = [t for t in used if t["test"] == key]
        for t in mine:
            paired.add(t["id"])
            limit = t["values"].get(r.compared_unit)
            met = None if limit is None or r.compared_value is None else criterion_met(
                t["criterion"], r.comparator, r.compared_value, limit)
            text = t["limits"].get(r.compared_unit) or " or ".join(t["limits"][u] for u in sorted(t["limits"]))
            rows.append(given + (t["id"], text, t["source"], t["verification"], met))
        if not mine:
            rows.append(given + (None,) * 5)
    for t in used:
        if t["id"] not in paired:
            rows.append((None,) * 6 + (t["id"], " or ".join(t["limits"][u] for u in sorted(t["limits"])), t["source"],
                                       t["verification"], None))
    return rows or [(None,) * 11]


def findings_table(patients: Iterable[Assessed]) -> pa.Table:
    """The findings in long form: one row per finding (status "true") or unassessed finding
    (status "unassessed") and piece of evidence, patients in the order given, codes sorted."""
    classes = finding_classes()
    cols: dict[str, list] = {name: [] for name in FINDINGS_SCHEMA.names}
    head = ("patient", "record", "code", "status", "kind", "priority", "label", "rules", "based_on")
    tail = FINDINGS_SCHEMA.names[len(head):]
    for a in patients:
        for status, found in ((TRUE, a.found), (UNASSESSED, a.unassessed)):
            for code in sorted(found):
                p = found[code]
                info = classes[code]
                first = (a.record.id, a.ordinal, code, status, info["kind"], info.get("priority"), info["label"],
                         list(p.rules), list(p.findings))
                for ev in _evidence_rows(a.record, p):
                    for name, v in zip(head, first):
                        cols[name].append(v)
                    for name, v in zip(tail, ev):
                        cols[name].append(v)
    return pa.table(cols, schema=FINDINGS_SCHEMA)


# ---------------------------------------------------------------------------------------------
# The summary: counts and percentages per code, overall and by sex, age band and pregnancy
# ---------------------------------------------------------------------------------------------
DIMENSIONS = ("sex", "age_band", "pregnancy")


def _groups(batch: pa.RecordBatch, dim: str) -> pa.Array:
    if dim == "sex":
        return pc.fill_null(batch.column("sex"), NOT_RECORDED)
    if dim == "age_band":
        return batch.column("age_band")
    trimester = pc.fill_null(batch.column("trimester"), "")
    pregnant = pc.fill_null(batch.column("pregnant"), False)
    return pc.if_else(pregnant, pc.binary_join_element_wise("pregnant, ", trimester, " trimester", ""),
                      pa.scalar(NOT_PREGNANT))


@dataclass
class _Tally:
    patients: int = 0
    true: dict | None = None
    unassessed: dict | None = None


def _pct(n: int, d: int) -> float | None:
    return None if d == 0 else round(100.0 * n / d, 2)


def summarise(batches: Iterable[pa.RecordBatch], codes: tuple[str, ...] | None = None) -> dict:
    """Counts over patient-table batches: per code the patients with the finding ("true") and
    those unassessed, with percentages of the patients assessed; the same per group of sex, age
    band and pregnancy, each group with its own denominator."""
    codes = finding_codes() if codes is None else codes
    total = _Tally(0, dict.fromkeys(codes, 0), dict.fromkeys(codes, 0))
    by: dict[str, dict[str, _Tally]] = {d: {} for d in DIMENSIONS}
    for batch in batches:
        if batch.num_rows == 0:
            continue
        total.patients += batch.num_rows
        groups = {d: _groups(batch, d) for d in DIMENSIONS}
        cols = {}
        for c in codes:
            col = batch.column(c)
            cols[c] = (pc.equal(col, TRUE), pc.equal(col, UNASSESSED))
            total.true[c] += pc.sum(cols[c][0]).as_py() or 0
            total.unassessed[c] += pc.sum(cols[c][1]).as_py() or 0
        for d, g in groups.items():
            t = pa.table({"g": g, **{f"t:{c}": cols[c][0] for c in codes}, **{f"u:{c}": cols[c][1] for c in codes}})
            agg = t.group_by("g").aggregate([("g", "count")] + [(n, "sum") for n in t.column_names if n != "g"])
            for row in agg.to_pylist():
                tally = by[d].setdefault(row["g"], _Tally(0, dict.fromkeys(codes, 0), dict.fromkeys(codes, 0)))
                tally.patients += row["g_count"]
                for c in codes:
                    tally.true[c] += row[f"t:{c}_sum"] or 0
                    tally.unassessed[c] += row[f"u:{c}_sum"] or 0

    def block(t: _Tally) -> dict:
        return {"patients": t.patients,
                "codes": {c: {"patients": t.true[c], "percent": _pct(t.true[c], t.patients),
                              "unassessed": t.unassessed[c], "unassessed_percent": _pct(t.unassessed[c], t.patients)}
                          for c in codes}}
    order = {"age_band": age_bands()}
    out = {"overall": block(total), "by": {}}
    for d in DIMENSIONS:
        keys = sorted(by[d], key=lambda k: (order[d].index(k) if d in order and k in order[d] else len(by[d]), k))
        out["by"][d] = {k: block(by[d][k]) for k in keys}
    return out
