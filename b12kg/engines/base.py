"""The engine interface: every engine reasons over a batch of patient records and gives, per
patient, the findings with what each rests on (``Provenance``) and, if asked, the inferred
triples. The findings of a graph engine are read from the graph it infers with
queries/report/findings-evidence.rq, so all engines give them in one form."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar, Iterable, NamedTuple, Sequence

import pyoxigraph as ox

from ..inputs.record import PatientRecord
from ..paths import query_text
from ..rdf.patient import record_to_ntriples
from ..rdf.store import load_ntriples
from ..rdf.terms import B12NS, DEFAULT_BASE, based_on_code, last_segment, local_name, patient_iri, result_key

FINDINGS_QUERY_NAME = "report/findings-evidence.rq"
FINDINGS_VARS = ("patient", "finding", "class", "rule", "use", "item", "action", "unassessed")
UNASSESSED_CLASS = B12NS + "Unassessed"


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


#: patient IRI -> finding code -> what the finding rests on
Findings = dict[str, dict[str, Provenance]]


class Reasoned(NamedTuple):
    findings: Findings
    inferred: str           # the inferred triples as sorted N-Triples ("" unless asked for)
    unassessed: Findings = {}   # the findings that could not be assessed (findings.md v2, S1), same form


_USES = {B12NS + "usedResult": "result", B12NS + "usedThreshold": "threshold", B12NS + "usedFinding": "finding",
         B12NS + "usedContext": "context"}


def findings_from_rows(rows: Iterable[tuple], patients: Iterable[str]) -> tuple[Findings, Findings]:
    """Group the rows of findings-evidence.rq (tuples in FINDINGS_VARS order) by patient IRI: the
    derived findings and the unassessed ones (rows whose class is b12:Unassessed)."""
    patients = list(patients)
    out: dict[str, dict[str, dict]] = {iri: {} for iri in patients}
    una: dict[str, dict[str, dict]] = {iri: {} for iri in patients}
    for patient, _finding, cls, rule, use, item, action, unassessed in rows:
        if patient not in out:
            continue
        if cls == UNASSESSED_CLASS:
            if unassessed is None:
                continue
            per, code = una[patient], local_name(unassessed)
        else:
            per, code = out[patient], local_name(cls)
        f = per.setdefault(code, {"rules": set(), "result": set(), "threshold": set(),
                                  "finding": set(), "context": set(), "action": set()})
        f["rules"].add(last_segment(rule))
        kind = _USES.get(use) if use is not None else None
        if kind == "result":
            f["result"].add(result_key(item))
        elif kind == "finding":
            f["finding"].add(based_on_code(item))
        elif kind is not None:
            f[kind].add(item)
        if action is not None:
            f["action"].add(action)

    def provenance(groups):
        return {iri: {code: Provenance.of(code, d["rules"], d["result"], d["threshold"], d["finding"], d["context"],
                                          d["action"]) for code, d in per.items()} for iri, per in groups.items()}
    return provenance(out), provenance(una)


def rows_from_solutions(solutions) -> list[tuple]:
    """The solutions of findings-evidence.rq on pyoxigraph as tuples in FINDINGS_VARS order."""
    def v(t):
        return None if t is None else t.value
    return [tuple(v(s[n]) for n in FINDINGS_VARS) for s in solutions]


def patients_ntriples(records: Sequence[PatientRecord], base: str) -> str:
    return "".join(record_to_ntriples(r, base) for r in records)


class Engine(ABC):
    """One way to run the rules. ``reason`` is what the API and the cohort call; ``infer_graph``
    takes a patient graph as N-Triples (``b12kg.api.infer``)."""

    name: ClassVar[str]

    @abstractmethod
    def infer_graph(self, input_ntriples: str) -> str:
        """The inferred triples of the patients of a graph, as sorted N-Triples."""

    def reason(self, records: Sequence[PatientRecord], *, base: str = DEFAULT_BASE,
               want_graph: bool = False) -> Reasoned:
        """Findings per patient IRI (code -> Provenance) for a batch of records with distinct ids,
        and the inferred triples when ``want_graph`` (else ""). The default reads the findings
        from the inferred graph with queries/report/findings-evidence.rq."""
        if not records:
            return Reasoned({}, "")
        data = patients_ntriples(records, base)
        inferred = self.infer_graph(data)
        found, unassessed = findings_in_graph(data, inferred, [patient_iri(r.id, base) for r in records])
        return Reasoned(found, inferred if want_graph else "", unassessed)

    def infer(self, records: Sequence[PatientRecord], *, base: str = DEFAULT_BASE) -> str:
        """The inferred triples of a batch of records, as sorted N-Triples."""
        return self.reason(records, base=base, want_graph=True).inferred


def findings_in_graph(data_ntriples: str, inferred_ntriples: str, patients: Iterable[str]) -> tuple[Findings, Findings]:
    """The findings (derived, unassessed) of the patients from their data and inferred graphs (findings-evidence.rq
    reads nothing else: an inferred graph names its rules, cut-offs and results by IRI)."""
    store = ox.Store()
    load_ntriples(store, data_ntriples)
    load_ntriples(store, inferred_ntriples)
    return findings_from_rows(rows_from_solutions(store.query(query_text(FINDINGS_QUERY_NAME),
                                                              use_default_graph_as_union=True)), patients)
