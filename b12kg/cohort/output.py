"""Per-patient output of the cohort engine: one NDJSON line and its CSV rows.

Every patient's findings share their provenance (rule, cut-offs, earlier findings, context,
actions) with many other patients; only the results' values are the patient's own. So the JSON
and CSV text of each provenance is built once and cached, and a patient's line is assembled from
the cached pieces and the text of its own results. The line is byte for byte what
``json.dumps(doc, ensure_ascii=False, separators=(",", ":"))`` gives for the same document
(tested)."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Iterable

from ..kb import finding_classes
from ..record import PatientRecord
from ..units import to_decimal_string

# One encoder for every call: json.dumps with options builds a new JSONEncoder each time.
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


@dataclass(frozen=True)
class Provenance:
    """What one finding of one patient rests on (everything but the patient's own values)."""

    code: str
    rules: tuple[str, ...]
    results: tuple[str, ...]          # analyte keys
    thresholds: tuple[str, ...]       # threshold IRIs
    findings: tuple[str, ...]         # codes of earlier findings
    context: tuple[str, ...]          # IRIs of symptoms and context factors
    actions: tuple[str, ...]          # IRIs of actions
    _hash: int = field(default=0, compare=False, repr=False)

    def __post_init__(self):
        object.__setattr__(self, "_hash", hash((self.code, self.rules, self.results, self.thresholds, self.findings,
                                                self.context, self.actions)))

    def __hash__(self) -> int:
        return self._hash

    @classmethod
    def of(cls, code: str, rules: Iterable, results: Iterable, thresholds: Iterable, findings: Iterable,
           context: Iterable, actions: Iterable) -> "Provenance":
        return cls(code, tuple(sorted(set(rules))), tuple(sorted(set(results))), tuple(sorted(set(thresholds))),
                   tuple(sorted(set(findings))), tuple(sorted(set(context))), tuple(sorted(set(actions))))


def fmt(d: Decimal | None) -> str | None:
    if d is None:
        return None
    s = to_decimal_string(d)
    return s[:-2] if s.endswith(".0") else s


def evidence_dict(rec: PatientRecord, key: str) -> dict | None:
    r = rec.results.get(key)
    if r is None:
        return None
    e: dict[str, Any] = {"analyte": key, "value_as_given": r.value_as_given, "unit_as_given": r.unit_as_given}
    if r.qualitative is None:
        e["value_compared"] = fmt(r.compared_value)
        e["unit_compared"] = r.compared_unit
    if r.ref_high_as_given is not None:
        e["reference_high"] = r.ref_high_as_given
    if r.derivation:
        e["derivation"] = r.derivation
    return e


@functools.lru_cache(maxsize=1)
def _tables():
    from .engine import label_table, threshold_table

    return finding_classes(), threshold_table(), label_table()


@functools.lru_cache(maxsize=200_000)
def _static(p: Provenance, units: frozenset) -> tuple[str, str, list[str], str]:
    """(JSON before the evidence, JSON after it, the CSV cells after the evidence cell, the CSV
    cells before it joined) for a provenance and the units its results were compared in."""
    classes, ths, labels = _tables()
    thresholds = []
    for t in p.thresholds:
        info = ths[t]
        limit = next((info["limits"][u] for u in info["limits"] if u in units), None) or " or ".join(info["limits"].values())
        thresholds.append({"id": info["id"], "limit": limit, "source": info["source"], "verification": info["verification"]})
    kind = classes[p.code]["kind"]
    head = '{"code":' + _dumps(p.code) + ',"kind":' + _dumps(kind) + ',"rules":' + _dumps(list(p.rules)) + ',"evidence":['
    tail = '],"thresholds":' + _dumps(thresholds) + ',"based_on":' + _dumps(list(p.findings))
    if p.context:
        tail += ',"context":' + _dumps(sorted(labels.get(c, c) for c in p.context))
    if p.actions:
        tail += ',"actions":' + _dumps(sorted(labels.get(a, a) for a in p.actions))
    tail += "}"
    th_text = "; ".join(f"{t['limit']} ({t['source']})" for t in thresholds)
    return head, tail, [th_text, " ".join(p.findings)], " ".join(p.rules)


def patient_outputs(rec: PatientRecord, ordinal: int, ref: str, found: dict[str, Provenance]) -> tuple[str, list[list[str]]]:
    """The patient's NDJSON line (without newline) and CSV rows."""
    classes = finding_classes()
    ev_json: dict[str, str] = {}
    ev_text: dict[str, str] = {}
    parts = []
    rows = []
    pid = rec.id
    record = str(ordinal)
    for code in sorted(found):
        p = found[code]
        keys = [k for k in p.results if k in rec.results]
        units = frozenset(rec.results[k].compared_unit for k in keys if rec.results[k].qualitative is None)
        head, tail, csv_tail, rules_text = _static(p, units)
        items = []
        texts = []
        for k in keys:
            if k not in ev_json:
                e = evidence_dict(rec, k)
                ev_json[k] = _dumps(e)
                ev_text[k] = f"{k} {e['value_as_given']} {e.get('unit_as_given') or ''}".strip()
            items.append(ev_json[k])
            texts.append(ev_text[k])
        parts.append(head + ",".join(items) + tail)
        rows.append([pid, record, code, classes[code]["kind"], rules_text, "; ".join(texts)] + csv_tail)
    line = ('{"patient":' + _dumps(pid) + ',"record":' + record + ',"source":' + _dumps(ref) + ',"profile":'
            + _dumps(rec.profile) + ',"findings":[' + ",".join(parts) + '],"notes":' + _dumps(rec.notes) + "}")
    return line, rows


CSV_HEADER = ["patient", "record", "code", "kind", "rules", "evidence", "thresholds", "based_on"]
