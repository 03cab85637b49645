"""Per-patient output of the cohort engine: one NDJSON line. Each finding is
written in the one JSON shape of a finding (schema/finding.schema.json, as ``assess --format
json`` writes it), with the fields a cohort needs: code, kind, rule_ids, evidence (as given and
as compared), thresholds (id, limits, compared_limit, source, verification), based_on, context
and actions.

Every patient's findings share their provenance (rule, cut-offs, earlier findings, context,
actions) with many other patients; only the results' values are the patient's own. So the JSON
text of each provenance is built once and cached, and a patient's line is assembled from
the cached pieces and the JSON of its own results. The line is byte for byte what
``json.dumps(doc, ensure_ascii=False, separators=(",", ":"))`` gives for the same document
(tested)."""

from __future__ import annotations

import functools
import json
from typing import Any, Mapping

from ..engines.base import Provenance
from ..inputs.record import PatientRecord
from ..kb import finding_classes, label_table, threshold_table
from ..units import format_decimal
from ..cache import once

# One encoder for every call: json.dumps with options builds a new JSONEncoder each time.
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def evidence_dict(rec: PatientRecord, key: str) -> dict | None:
    r = rec.results.get(key)
    if r is None:
        return None
    e: dict[str, Any] = {"analyte": key, "value_as_given": r.value_as_given, "unit_as_given": r.unit_as_given}
    if r.qualitative is None:
        e["value_compared"] = format_decimal(r.compared_value)
        e["unit_compared"] = r.compared_unit
    if r.ref_high_as_given is not None:
        e["reference_high"] = r.ref_high_as_given
    if r.ref_low_as_given is not None:
        e["reference_low"] = r.ref_low_as_given
    if r.derivation:
        e["derivation"] = r.derivation
    return e


@once
def _tables():
    return finding_classes(), threshold_table(), label_table()


@functools.lru_cache(maxsize=200_000)
def _static(p: Provenance, units: frozenset) -> tuple[str, str]:
    """(JSON before the evidence, JSON after it) for a provenance and the units its results were
    compared in."""
    classes, ths, labels = _tables()
    thresholds = []
    for t in p.thresholds:
        info = ths[t]
        compared = next((info["limits"][u] for u in info["limits"] if u in units), None)
        thresholds.append({"id": info["id"], "limits": [info["limits"][u] for u in sorted(info["limits"])],
                           "compared_limit": compared, "source": info["source"], "verification": info["verification"]})
    kind = classes[p.code]["kind"]
    head = '{"code":' + _dumps(p.code) + ',"kind":' + _dumps(kind) + ',"rule_ids":' + _dumps(list(p.rules)) + ',"evidence":['
    tail = '],"thresholds":' + _dumps(thresholds) + ',"based_on":' + _dumps(list(p.findings))
    if p.context:
        tail += ',"context":' + _dumps(sorted(labels.get(c, c) for c in p.context))
    if p.actions:
        tail += ',"actions":' + _dumps(sorted(labels.get(a, a) for a in p.actions))
    tail += "}"
    return head, tail


def patient_outputs(rec: PatientRecord, ordinal: int, ref: str, found: Mapping[str, Provenance],
                    unassessed: Mapping[str, Provenance] = {}) -> str:
    """The patient's NDJSON line (without newline): the findings, and the unassessed findings
    (findings.md v2, S1) in the same shape with ``"status":"unassessed"``."""
    ev_json: dict[str, str] = {}

    def item(p: Provenance, status: str | None) -> str:
        keys = [k for k in p.results if k in rec.results]
        units = frozenset(rec.results[k].compared_unit for k in keys if rec.results[k].qualitative is None)
        head, tail = _static(p, units)
        if status is not None:
            head = '{"status":' + _dumps(status) + "," + head[1:]
        items = []
        for k in keys:
            if k not in ev_json:
                ev_json[k] = _dumps(evidence_dict(rec, k))
            items.append(ev_json[k])
        return head + ",".join(items) + tail
    parts = [item(found[code], None) for code in sorted(found)]
    open_ = [item(unassessed[code], "unassessed") for code in sorted(unassessed)]
    return ('{"patient":' + _dumps(rec.id) + ',"record":' + str(ordinal) + ',"source":' + _dumps(ref) + ',"profile":'
            + _dumps(rec.profile) + ',"findings":[' + ",".join(parts) + '],"unassessed":[' + ",".join(open_)
            + '],"notes":' + _dumps(rec.notes) + "}")
