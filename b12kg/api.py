"""The Python API: ``assess`` one patient record and get its findings, each with its evidence,
cut-offs and sources, rule and explanation, all read from the inferred graph by the SPARQL
queries of ``queries/explain``."""

from __future__ import annotations

import functools
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterable, Mapping

import pyoxigraph as ox

from . import kb
from .errors import B12kgError, InputError, Issue
from .model import Assessment, Evidence, Finding, RuleRef, Threshold
from .paths import query_path
from .rdfpatient import DEFAULT_BASE, patient_iri, record_to_ntriples
from .record import MAX_DEPTH, MAX_INT_DIGITS, NOT_TEXT, PatientRecord, is_text, record_from_case, shown_text, with_profile

ENGINES = ("oxigraph", "pyshacl", "swrl", "compiled")
MAX_INPUT_BYTES = 100 * 1024 * 1024
_local = threading.local()


def _session():
    """This thread's reusable store (knowledge base loaded once)."""
    from .engines.oxigraph_engine import Session

    s = getattr(_local, "session", None)
    if s is None:
        s = _local.session = Session()
    return s


@functools.lru_cache(maxsize=None)
def query_text(name: str) -> str:
    return query_path(name).read_text(encoding="utf-8")


# ---------------------------------------------------------------------------------------------
# Reading records
# ---------------------------------------------------------------------------------------------
def read_bytes(p: Path) -> bytes:
    """The bytes of an input file, refused (InputError naming the file) when it cannot be read
    (missing, a folder, no permission) or is over MAX_INPUT_BYTES, which is told from its size
    before reading and enforced while reading (a device or a growing file reports no true size)."""
    try:
        size = p.stat().st_size
        if size <= MAX_INPUT_BYTES:
            with open(p, "rb") as fh:
                data = fh.read(size + 1)      # read(n) allocates n bytes: ask for what stat says
                if len(data) > size:          # it said too little: read on, up to the limit
                    buf = bytearray(data)
                    while len(buf) <= MAX_INPUT_BYTES:
                        more = fh.read(min(1 << 20, MAX_INPUT_BYTES + 1 - len(buf)))
                        if not more:
                            break
                        buf += more
                    data = bytes(buf)
            size = max(size, len(data))
    except OSError as exc:
        raise InputError([Issue("file", str(p), f"cannot be read: {exc.strerror or exc}")]) from None
    if size > MAX_INPUT_BYTES:
        raise InputError([Issue("file", str(p), f"is {size}{'+' if size == MAX_INPUT_BYTES + 1 else ''} bytes, "
                                f"over the {MAX_INPUT_BYTES} byte limit for one record")])
    return data




@functools.lru_cache(maxsize=1)
def _yaml_loader():
    """yaml.SafeLoader (no tags beyond the YAML core ones), and: no aliases (a record needs none,
    and ten lines of nested aliases expand to a billion values), at most MAX_DEPTH levels of
    nesting (deeper raised RecursionError), integers of at most MAX_INT_DIGITS digits, no key
    twice in one mapping (PyYAML keeps the last value silently). Each refusal carries the line
    and column where it happened."""
    import yaml
    from yaml.composer import ComposerError
    from yaml.constructor import ConstructorError

    class RecordLoader(yaml.SafeLoader):
        depth = 0

        def compose_node(self, parent, index):
            event = self.peek_event()
            if isinstance(event, yaml.AliasEvent):
                raise ComposerError(None, None, f"the alias *{event.anchor} is not read: b12kg reads no YAML "
                                    "aliases; write the value out", event.start_mark)
            self.depth += 1
            try:
                if self.depth > MAX_DEPTH:
                    raise ComposerError(None, None, f"nested deeper than {MAX_DEPTH} levels", event.start_mark)
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

        def construct_mapping(self, node, deep=False):
            if isinstance(node, yaml.MappingNode):
                self.flatten_mapping(node)
                first: dict = {}
                for key_node, _ in node.value:
                    key = self.construct_object(key_node, deep=True)
                    try:
                        seen = first.setdefault(key, key_node.start_mark)
                    except TypeError:  # an unhashable key: the base class says so
                        continue
                    if seen is not key_node.start_mark:
                        raise ConstructorError(None, None, f"the key {key!r} appears twice in one mapping (first at "
                                               f"line {seen.line + 1}): which of the values counts is not guessed",
                                               key_node.start_mark)
            return super().construct_mapping(node, deep)

        def construct_yaml_int(self, node):
            if len(node.value) > MAX_INT_DIGITS:
                raise ConstructorError(None, None, f"an integer of more than {MAX_INT_DIGITS} digits", node.start_mark)
            return super().construct_yaml_int(node)

    RecordLoader.add_constructor("tag:yaml.org,2002:int", RecordLoader.construct_yaml_int)
    return RecordLoader


def read_file(path: str | Path) -> Any:
    """Parse a YAML or JSON file (safely: no YAML tags, no aliases, bounded nesting, decimals exact)."""
    import yaml

    p = Path(path)
    text = read_bytes(p)
    suffix = p.suffix.lower()
    try:
        if suffix == ".json":
            from .fhir import load_json

            return load_json(text)
        return yaml.load(text, Loader=_yaml_loader())
    except Exception as exc:  # yaml.YAMLError, json.JSONDecodeError, UnicodeDecodeError, RecursionError
        where = ""
        problem = getattr(exc, "problem", None) or getattr(exc, "msg", None)
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        elif getattr(exc, "lineno", None):
            where = f" at line {exc.lineno}, column {exc.colno}"
        elif isinstance(exc, UnicodeDecodeError):
            where, problem = f" at byte {exc.start}", f"{exc.reason} ({exc.encoding})"
        elif isinstance(getattr(exc, "position", None), int):   # yaml.reader.ReaderError
            where, problem = f" at character {exc.position}", getattr(exc, "reason", None)
        raise InputError([Issue("file", str(p), f"is not valid {'JSON' if suffix == '.json' else 'YAML'}{where}: "
                                f"{problem or exc.__class__.__name__}")]) from None


def load_record(source: Any, *, profile: str | None = None, base_dir: Path | None = None) -> PatientRecord:
    """A validated record from a PatientRecord, a case dict, a FHIR Bundle dict, or a file
    (.yaml/.yml/.json case or Bundle, .ttl/.jsonld/.nt in b12kg's patient vocabulary)."""
    from .fhir import is_bundle, record_from_bundle

    if isinstance(source, PatientRecord):
        return with_profile(source, profile) if profile else source
    if isinstance(source, (str, Path)):
        p = Path(source)
        if p.suffix.lower() in (".ttl", ".jsonld", ".nt", ".rdf"):
            from .rdfinput import record_from_rdf_file

            return record_from_rdf_file(p, profile=profile)
        data = read_file(p)
        return load_record(data, profile=profile, base_dir=p.parent) if not isinstance(data, Mapping) else \
            _from_mapping(data, profile=profile, base_dir=p.parent, source=str(p))
    if isinstance(source, Mapping):
        return _from_mapping(source, profile=profile, base_dir=base_dir, source=None)
    raise InputError([Issue("record", type(source).__name__, "is not a record, a mapping or a file path")])


MAX_VALUES = 2_000_000     # values in one record, counted each time they are reached


def check_structure(data: Any, *, source: str | None = None) -> None:
    """Refuse, naming the path, a parsed record that nests deeper than MAX_DEPTH levels, holds
    more than MAX_VALUES values (a value shared by several parents, as a Python structure can
    share them, counts each time), an integer of more than MAX_INT_DIGITS digits or a string
    with a lone surrogate (JSON can hold one; no file, IRI or literal can): walked without
    recursion, before anything reads, prints or recurses into it."""
    big = 10 ** MAX_INT_DIGITS
    stack: list = [(data, None, 0)]
    seen = 0
    while stack:
        node, trail, depth = stack.pop()
        seen += 1
        problem = None
        if depth > MAX_DEPTH:
            problem = f"is nested deeper than {MAX_DEPTH} levels"
        elif seen > MAX_VALUES:
            problem = f"is where the record passes {MAX_VALUES} values, more than one record can hold"
        elif isinstance(node, int) and not isinstance(node, bool) and not -big < node < big:
            problem = f"is an integer of more than {MAX_INT_DIGITS} digits"
        elif isinstance(node, str) and not is_text(node):
            problem = NOT_TEXT
        elif isinstance(node, Mapping):
            dups = getattr(node, "duplicate_keys", None)
            if dups:
                raise InputError([Issue(_path((dups[0], trail)), None, "appears twice in one JSON object: which of "
                                        "the values counts is not guessed")], source=source)
            for k, v in node.items():
                if isinstance(k, int) and not isinstance(k, bool) and not -big < k < big:
                    raise InputError([Issue(_path((k, trail)), None, f"is a key: an integer of more than "
                                            f"{MAX_INT_DIGITS} digits")], source=source)
                if isinstance(k, str) and not is_text(k):
                    raise InputError([Issue(_path((k, trail)), None, f"is a key that {NOT_TEXT}")], source=source)
                stack.append((v, (k, trail), depth + 1))
        elif isinstance(node, (list, tuple)):
            stack.extend((v, (i, trail), depth + 1) for i, v in enumerate(node))
        if problem:
            raise InputError([Issue(_path(trail), None, problem)], source=source)


def _path(trail) -> str:
    """'observations.ferritin[2].value' from the linked (key, parent) trail of a value."""
    parts: list[str] = []
    while trail is not None:
        key, trail = trail
        if isinstance(key, str) and not is_text(key):
            key = shown_text(key)
        if isinstance(key, int) and not isinstance(key, bool) and key.bit_length() > 200:
            key = f"<an integer of {key.bit_length()} bits>"
        parts.append(f"[{key}]" if isinstance(key, int) and not isinstance(key, bool) else f".{key}")
    return "".join(reversed(parts)).lstrip(".") or "record"


def _from_mapping(data: Mapping, *, profile: str | None, base_dir: Path | None, source: str | None) -> PatientRecord:
    from .fhir import is_bundle, record_from_bundle

    if is_bundle(data):  # record_from_bundle checks the structure itself (it is also called directly)
        return record_from_bundle(data, source=source, profile=profile or "default")
    check_structure(data, source=source)
    if "input" in data:
        ref = data["input"]
        if not isinstance(ref, str) or "://" in ref:
            raise InputError([Issue("input", ref, "is not a relative file path (nothing is fetched)")], source=source)
        target = (base_dir or Path.cwd()) / ref
        inner = read_file(target)
        if not isinstance(inner, Mapping):
            raise InputError([Issue("input", ref, "does not hold a record or a Bundle")], source=source)
        prof = profile or data.get("profile") or "default"
        rec = _from_mapping(inner, profile=prof, base_dir=target.parent, source=str(target))
        if "id" in data and not is_bundle(inner):
            rec.id = str(data["id"])
        return rec
    return record_from_case(data, source=source, profile=profile)


# ---------------------------------------------------------------------------------------------
# Assessing
# ---------------------------------------------------------------------------------------------
def assess(record: Any, *, profile: str | None = None, engine: str = "oxigraph",
           base: str = DEFAULT_BASE) -> Assessment:
    """Assess one patient.

    >>> a = assess({"id": "demo", "patient": {"sex": "female", "age_years": 34},
    ...             "observations": {"ferritin": {"value": 6, "unit": "ug/L"}}})
    >>> "IronDeficiency" in a.codes
    True
    """
    if engine not in ENGINES:
        raise B12kgError(f"engine {engine!r} is not one of {', '.join(ENGINES)}")
    rec = load_record(record, profile=profile)
    input_nt = record_to_ntriples(rec, base)
    session = _session()
    if engine == "oxigraph":
        inferred_nt = session.infer(input_nt)
    elif engine == "compiled":
        from .engines import compiled

        inferred_nt = compiled.run([rec], base=base, want_graph=True)[1]
        session.load(input_nt, inferred_nt)
    else:
        inferred_nt = infer(input_nt, engine=engine)
        session.load(input_nt, inferred_nt)
    return build_assessment(rec, input_nt, inferred_nt, engine=engine, base=base, store=session.store,
                            single_patient=True)


def infer(input_ntriples: str, *, engine: str = "oxigraph") -> str:
    """The inferred triples for a patient graph, as sorted N-Triples."""
    if engine == "oxigraph":
        from .engines import oxigraph_engine as oe

        return oe.inferred_ntriples(oe.reason(input_ntriples, full=False))
    if engine == "pyshacl":
        from .engines import pyshacl_engine as pe

        return pe.inferred_ntriples(input_ntriples)
    if engine == "compiled":
        from .engines import compiled
        from .rdfinput import parse_rdf, record_from_graph

        rec = record_from_graph(parse_rdf(input_ntriples, "nt"))
        base = _base_of(input_ntriples, rec.id)
        return compiled.run([rec], base=base, want_graph=True)[1]
    if engine == "swrl":
        from .engines import swrl_engine as se

        return se.inferred_ntriples(input_ntriples)
    raise B12kgError(f"engine {engine!r} is not one of {', '.join(ENGINES)}")


def _base_of(input_ntriples: str, patient_id: str) -> str:
    from urllib.parse import quote

    first = input_ntriples.split(">", 1)[0].lstrip("<")
    suffix = quote(patient_id, safe="")
    if not first.endswith(suffix):
        raise B12kgError("cannot tell the patient IRI base of the input graph")
    return first[: -len(suffix)]


def explanation_store(input_ntriples: str, inferred_ntriples: str) -> ox.Store:
    """A store with the knowledge base, the patient and the inferred graph, for the queries."""
    from .engines.oxigraph_engine import load_patients, new_store
    from .rules import INFERRED_GRAPH

    store = new_store()
    load_patients(store, input_ntriples)
    if inferred_ntriples:
        store.load(inferred_ntriples.encode("utf-8"), format=ox.RdfFormat.N_TRIPLES, to_graph=ox.NamedNode(INFERRED_GRAPH))
    return store


def run_query(store: ox.Store, name: str, **bindings: str) -> list[dict[str, Any]]:
    """Run a query of ``queries/`` on a store (every graph as the default graph), with variables
    bound to IRIs; rows as dicts of Python values."""
    subs = {ox.Variable(k): ox.NamedNode(v) for k, v in bindings.items()}
    res = store.query(query_text(name), use_default_graph_as_union=True, substitutions=subs)
    names = [v.value for v in res.variables]
    rows = []
    for sol in res:
        row = {}
        for n in names:
            t = sol[n]
            row[n] = None if t is None else _py(t)
        rows.append(row)
    return rows


def _py(term) -> Any:
    if isinstance(term, ox.Literal):
        dt = term.datatype.value
        if dt.endswith("#integer"):
            return int(term.value)
        if dt.endswith("#decimal"):
            return Decimal(term.value)
        return term.value
    return term.value


def _fmt(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, Decimal):
        from .units import to_decimal_string

        s = to_decimal_string(v)
        return s[:-2] if s.endswith(".0") else s
    return str(v)


def build_assessment(rec: PatientRecord, input_nt: str, inferred_nt: str, *, engine: str,
                     base: str = DEFAULT_BASE, store: ox.Store | None = None,
                     single_patient: bool = False) -> Assessment:
    """Read the findings of one patient from a store with the queries of queries/explain.
    With ``single_patient`` (the store holds this patient only), each query runs once for all
    findings instead of once per finding."""
    piri = patient_iri(rec.id, base)
    if store is None:
        store = explanation_store(input_nt, inferred_nt)
        single_patient = True
    classes = kb.finding_classes()
    items: dict[str, list] = {}
    chains: dict[str, list] = {}
    if single_patient:
        for it in run_query(store, "explain/explain-finding.rq"):
            items.setdefault(it["finding"], []).append(it)
        for c in run_query(store, "explain/causal-chain.rq"):
            chains.setdefault(c["finding"], []).append(c)
    findings = []
    for row in run_query(store, "explain/patient-findings.rq", patient=piri):
        f = row["finding"]
        if not single_patient:
            items[f] = run_query(store, "explain/explain-finding.rq", finding=f)
            chains[f] = run_query(store, "explain/causal-chain.rq", finding=f)
        findings.append(_build_finding(row, items.get(f, []), chains.get(f, []), rec, classes))
    order = {"diagnosis": 0, "caution": 1, "next-step": 2, "result": 3}
    findings.sort(key=lambda f: (order.get(f.section, 9), f.code))
    return Assessment(patient_id=rec.id, profile=rec.profile, engine=engine, findings=tuple(findings),
                      notes=tuple(rec.notes), patient_iri=piri, input_ntriples=input_nt,
                      inferred_ntriples=inferred_nt, record_summary=record_summary(rec))


def record_summary(rec: PatientRecord) -> dict:
    return {
        "id": rec.id,
        "sex": rec.sex,
        "age_years": _fmt(rec.age_years),
        "pregnant": rec.pregnant,
        "trimester": rec.trimester,
        "symptoms": rec.symptoms,
        "context": rec.contexts,
        "results": {k: {"value_as_given": r.value_as_given, "unit_as_given": r.unit_as_given,
                        "value_compared": _fmt(r.compared_value), "unit_compared": r.compared_unit,
                        "comparator": r.comparator if not r.qualitative else None,
                        "source": r.source} for k, r in sorted(rec.results.items())},
    }


def _build_finding(row: Mapping, items: list, chain_rows: list, rec: PatientRecord, classes: Mapping) -> Finding:
    firi = row["finding"]
    rules: dict[str, RuleRef] = {}
    evidence: dict[str, Evidence] = {}
    thresholds: dict[str, dict] = {}
    based_on: set[str] = set()
    context: set[str] = set()
    actions: set[str] = set()
    compared_units: dict[str, str] = {}
    for it in items:
        rules.setdefault(it["ruleId"], RuleRef(it["ruleId"], it["ruleLabel"], it["ruleDefinition"], it["ruleSource"]))
        kind = it["item_kind"]
        if kind == "result":
            evidence.setdefault(it["item"], Evidence(
                analyte=it["testKey"], label=it["itemLabel"], value_as_given=it["valueAsGiven"],
                unit_as_given=it["unitAsGiven"], comparator=it["comparator"], value_compared=_fmt(it["comparedValue"]),
                unit_compared=it["comparedUnit"], derivation=it["derivation"], reference_high=_fmt(it["refHighAsGiven"]),
                iri=it["item"]))
            if it["comparedUnit"]:
                compared_units[it["testKey"]] = it["comparedUnit"]
        elif kind == "threshold":
            t = thresholds.setdefault(it["item"], {"row": it, "limits": {}})
            sym = it["criterion"]
            if it["limitValue"] is not None:
                t["limits"][it["limitUnit"]] = f"{sym} {_fmt(it['limitValue'])} {it['limitUnit']}"
            else:
                t["limits"][it["limitUnit"]] = f"{_fmt(it['limitLower'])}-{_fmt(it['limitUpper'])} {it['limitUnit']} inclusive"
        elif kind == "finding":
            based_on.add(it["code"])
        elif kind == "context":
            context.add(it["itemLabel"])
        elif kind == "action":
            actions.add(it["itemLabel"])
    ths = []
    notes = []
    for iri, t in sorted(thresholds.items()):
        r = t["row"]
        cu = next((u for u in t["limits"] if u in compared_units.values()), None)
        ths.append(Threshold(
            iri=iri, label=r["itemLabel"], role=r["role"], criterion=r["criterion"],
            limits=tuple(t["limits"][u] for u in sorted(t["limits"])), compared_limit=t["limits"].get(cu) if cu else None,
            population=r["populationLabel"], source=r["sourceShort"], source_title=r["sourceTitle"],
            source_year=r["sourceYear"], source_link=r["sourceLink"], verification=r["verification"], note=r["scopeNote"],
            outcome=r["outcome"]))
        if r["scopeNote"]:
            notes.append(r["scopeNote"])
        adults = r["sourceAdultsFrom"]
        if adults is not None and (rec.age_years is None or rec.age_years < Decimal(adults)):
            who = "of unknown age" if rec.age_years is None else f"aged {_fmt(rec.age_years)} years"
            notes.append(f"{r['sourceShort']} is written for people over {adults}; no paediatric cut-off is verified, "
                         f"so the adult cut-off is applied to this patient {who}.")
    chain = tuple(c["stateLabel"] for c in sorted(chain_rows, key=lambda c: c["position"]))
    code = row["code"]
    cls = classes.get(code, {})
    f_rules = tuple(rules[k] for k in sorted(rules))
    ev = tuple(evidence[k] for k in sorted(evidence))
    text = _explanation(row["label"], f_rules, ev, tuple(ths), sorted(based_on), sorted(context), sorted(actions), chain, notes)
    return Finding(code=code, label=row["label"], kind=row["kind"], section=row["group"], definition=row["definition"],
                   iri=firi, rules=f_rules, evidence=ev, thresholds=tuple(ths), based_on=tuple(sorted(based_on)),
                   context=tuple(sorted(context)), actions=tuple(sorted(actions)), causal_chain=chain,
                   claims=tuple(cls.get("claims", ())), explanation=text)


def _explanation(label: str, rules: Iterable[RuleRef], evidence: Iterable[Evidence], thresholds: Iterable[Threshold],
                 based_on: list[str], context: list[str], actions: list[str], chain: tuple[str, ...],
                 notes: list[str]) -> str:
    parts = [label[0].upper() + label[1:] + "."]
    for r in rules:
        parts.append(f"Rule {r.id}: {r.definition}")
    ev = list(evidence)
    if ev:
        parts.append("Results: " + "; ".join(e.text() for e in ev) + ".")
    th = list(thresholds)
    if th:
        parts.append("Cut-offs: " + "; ".join(t.text() for t in th) + ".")
    if based_on:
        parts.append("Based on: " + ", ".join(based_on) + ".")
    if context:
        parts.append("Recorded: " + ", ".join(context) + ".")
    if actions:
        parts.append("Actions: " + "; ".join(actions) + ".")
    if chain:
        parts.append("Causal chain: " + " -> ".join(chain) + ".")
    for n in dict.fromkeys(notes):
        parts.append(n if n.endswith(".") else n + ".")
    return " ".join(parts)
