"""Three values and two negations (findings.md v2, S1), derived mechanically from the rules.

Every rule is written once, as the condition under which its finding is TRUE, in a notation that
says which negation each criterion uses:

- "X not established" (X false or unassessed): ``FILTER NOT EXISTS { $this b12:hasFinding ?n . ?n a b12:X . }``
- "no X" (X false; an unassessed X blocks): that block AND
  ``FILTER NOT EXISTS { $this b12:unassessed ?u . ?u b12:unassessedFinding b12:X . }``
- a criterion "decided" on a result: ``?r b12:satisfies ?t`` (derive.ttl decides it, S2: censored
  results are intervals; an unusable result is undecided against every cut-off of its test).

From each rule this module writes its *companion*: the same rule read in Kleene's three-valued
logic, where each positive criterion may be true or undecided and a "no X" may be unassessed:
- a finding X (true) becomes ``{ X derived } UNION { X unassessed }``;
- ``?r b12:satisfies ?t`` becomes ``{ ?r b12:satisfies ?t } UNION { ?r b12:undecidedAgainst ?t }``;
- a sex the criterion needs (``$this b12:sex b12:Female``) may be the unrecorded sex (S3), and a
  population it needs (``$this b12:inPopulation b12pop:...``) may be one the patient is possibly in
  (``b12:possiblyInPopulation``: sex or gestation not recorded);
- the "unassessed X" half of each "no X" is dropped (unless the rule says
  ``b12:negationsDecided true``: its exclusions must be decided false, as OralB12Replacement's);
- "X not established", contexts, symptoms and ages stay as they are (they are two-valued).
The companion holds when the rule could hold but its finding was not derived. For a finding of
priority urgent, caution or test (``b12:priority``; S1: "never unassessed") the companion derives
the finding itself (an undecided criterion counts as met); for every other finding it derives an
``b12:Unassessed`` node naming the finding. Companions run right after their rule's stratum
(the highest ``sh:order`` of a rule deriving X, + 0.5), so every reader of X sees X's three values.

The companions are data, like every rule: ``python -m b12kg.rules.threevalued`` writes them to
``rules/unassessed.ttl`` (generated, never edited by hand), and a test checks that the file is
what this module writes from the current rules.
"""

from __future__ import annotations

import re
import sys
from decimal import Decimal
from pathlib import Path

import rdflib

from .. import paths
from ..errors import RuleError
from ..kb import ontology_graph
from ..rdf.terms import B12, B12NS
from .base import Rule, _matching_brace, load_rules, rules_graph, split_construct

GENERATED_NAME = "unassessed.ttl"
NEVER_UNASSESSED = ("UrgentPriority", "CautionPriority", "TestPriority")

_POS_FINDING = re.compile(r"\$this b12:hasFinding (\?\w+) \. \1 a (b12:\w+|\?\w+) \.")
_SATISFIES = re.compile(r"(\?\w+) b12:satisfies (\?\w+|b12th:[\w.-]+) \.")
_NOT_SATISFIES = re.compile(r"(\?\w+) b12:doesNotSatisfy (\?\w+|b12th:[\w.-]+) \.")
_SEX = re.compile(r"\$this b12:sex b12:(Female|Male) \.")
_POPULATION = re.compile(r"\$this b12:inPopulation (b12pop:[\w.-]+) \.")
_NOT_EXISTS = re.compile(r"FILTER NOT EXISTS \{")
_UNASSESSED_BLOCK = re.compile(r"^\s*\$this b12:unassessed (\?\w+) \. \1 b12:unassessedFinding b12:\w+ \.\s*$")
_FINDING_BLOCK = re.compile(r"^\s*\$this b12:hasFinding (\?\w+) \. \1 a b12:(\w+) \.\s*$")
_BIND_F = re.compile(r'BIND \(IRI\(CONCAT\(STR\(\$this\), "/finding/(\w+)"\)\) AS \?f\)')
_BIND_ACT = re.compile(r'BIND \(IRI\(CONCAT\(STR\(\$this\), "/finding/(\w+)/by/([\w-]+)"\)\) AS \?act\)')
_VALUE_READS = ("b12:comparedValue", "b12:referenceHighCompared", "b12:referenceLowCompared")


def priorities() -> dict[str, str]:
    """Finding code -> local name of its priority (b12:priority in the ontology)."""
    g = ontology_graph()
    return {str(c)[len(B12NS):]: str(p)[len(B12NS):] for c, p in g.subject_objects(B12.priority)}


def decided_negations(rule: Rule) -> bool:
    return bool(rules_graph().value(rdflib.URIRef(rule.iri), B12.negationsDecided))


def _blocks(body: str) -> list[tuple[str, str]]:
    """The body split into ('notexists', inner text) blocks and ('text', text) between them."""
    out: list[tuple[str, str]] = []
    i = 0
    while True:
        m = _NOT_EXISTS.search(body, i)
        if not m:
            out.append(("text", body[i:]))
            return out
        out.append(("text", body[i:m.start()]))
        close = _matching_brace(body, m.end() - 1)
        out.append(("notexists", body[m.end():close]))
        i = close + 1


def companion_body(rule: Rule, code: str, *, fires: bool, strict: bool) -> str:
    """The WHERE body of the rule's companion (see the module docstring)."""
    _, body = split_construct(rule.construct)
    parts: list[str] = []
    for kind, text in _blocks(body):
        if kind == "notexists":
            if _UNASSESSED_BLOCK.match(text) and not strict:
                continue                                  # "no X": an unassessed X may be true
            parts.append("FILTER NOT EXISTS {" + text + "}")
            continue
        for needle in _VALUE_READS:
            if needle in text:
                raise RuleError(f"rule {rule.id}: reads {needle} outside derive.ttl; a finding rule compares "
                                f"through b12:satisfies so that its undecided value is known")
        if (len(re.findall(r"b12:hasFinding", text)) != len(_POS_FINDING.findall(text))
                or len(re.findall(r"b12:satisfies", text)) != len(_SATISFIES.findall(text))
                or len(re.findall(r"b12:doesNotSatisfy", text)) != len(_NOT_SATISFIES.findall(text))):
            raise RuleError(f"rule {rule.id}: a finding or comparison in a form the companion does not read "
                            f"(write '$this b12:hasFinding ?g . ?g a b12:X .' and '?r b12:satisfies ?t .')")
        text = _POS_FINDING.sub(lambda m: (f"{{ $this b12:hasFinding {m[1]} . {m[1]} a {m[2]} . }} UNION "
                                           f"{{ $this b12:unassessed {m[1]} . {m[1]} b12:unassessedFinding {m[2]} . }}"),
                                text)
        for pattern, pred in ((_SATISFIES, "satisfies"), (_NOT_SATISFIES, "doesNotSatisfy")):
            text = pattern.sub(lambda m, pred=pred: (f"{{ {m[1]} b12:{pred} {m[2]} . }} UNION "
                                                     f"{{ {m[1]} b12:undecidedAgainst {m[2]} . }}"), text)
        text = _SEX.sub(lambda m: f"{{ $this b12:sex b12:{m[1]} . }} UNION {{ $this b12:sex b12:SexNotRecorded . }}", text)
        text = _POPULATION.sub(lambda m: (f"{{ $this b12:inPopulation {m[1]} . }} UNION "
                                          f"{{ $this b12:possiblyInPopulation {m[1]} . }}"), text)
        parts.append(text)
    out = "".join(parts)
    own = f"/finding/{code}"
    if not _BIND_F.search(out) or not _BIND_ACT.search(out):
        raise RuleError(f"rule {rule.id}: the finding and activity IRIs are not bound as the rules bind them")
    cid = companion_id(rule, fires=fires)
    if fires:
        out = _BIND_ACT.sub(f'BIND (IRI(CONCAT(STR($this), "{own}/by/{cid}")) AS ?act)', out)
    else:
        out = _BIND_F.sub(f'BIND (IRI(CONCAT(STR($this), "/unassessed/{code}")) AS ?f)', out)
        out = _BIND_ACT.sub(f'BIND (IRI(CONCAT(STR($this), "/unassessed/{code}/by/{cid}")) AS ?act)', out)
    guard = (f"FILTER NOT EXISTS {{ $this b12:hasFinding ?derived{code} . ?derived{code} a b12:{code} . }}")
    return out.rstrip() + "\n                " + guard + "\n            "


def companion_id(rule: Rule, *, fires: bool) -> str:
    return ("und-" if fires else "una-") + rule.id


def companion_template(rule: Rule, code: str, *, fires: bool) -> str:
    template, _ = split_construct(rule.construct)
    cid = companion_id(rule, fires=fires)
    template = template.replace(f"b12r:{rule.id} .", f"b12r:{cid} .")
    if fires:
        return template + f"\n                ?act b12:undecidedCriterion true ."
    lines = []
    for line in template.splitlines():
        s = line.strip()
        if s.startswith("$this b12:hasFinding ?f"):
            lines.append(line.replace("$this b12:hasFinding ?f", "$this b12:unassessed ?f"))
        elif s.startswith(f"?f a b12:{code} ;"):
            lines.append(line.replace(f"?f a b12:{code} ;", f"?f a b12:Unassessed ; b12:unassessedFinding b12:{code} ;"))
        elif s.startswith("?f b12:recommendsAction"):
            continue                                    # an unassessed finding recommends nothing
        else:
            lines.append(line)
    return "\n".join(lines)


def _turtle_string(text: str) -> str:
    return '"""' + text.replace("\\", "\\\\").replace('"""', '\\"\\"\\"') + '"""'


def companions(rules: tuple[Rule, ...]) -> str:
    """The Turtle text of every companion rule."""
    prio = priorities()
    out = ["# GENERATED by `python -m b12kg.rules.threevalued` from the other rule files: do not edit.",
           "# The three-valued companion of each finding rule (findings.md v2, S1): see b12kg/rules/threevalued.py.",
           "@prefix b12:     <https://w3id.org/b12kg/> .",
           "@prefix b12r:    <https://w3id.org/b12kg/rule/> .",
           "@prefix b12src:  <https://w3id.org/b12kg/source/> .",
           "@prefix sh:      <http://www.w3.org/ns/shacl#> .",
           "@prefix rdfs:    <http://www.w3.org/2000/01/rdf-schema#> .",
           "@prefix skos:    <http://www.w3.org/2004/02/skos/core#> .",
           "@prefix dcterms: <http://purl.org/dc/terms/> .",
           "@prefix xsd:     <http://www.w3.org/2001/XMLSchema#> .", ""]
    last = {}                     # finding code -> the highest sh:order of a rule deriving it
    fired_before: dict[str, int] = {}
    for rule in rules:
        if rule.finding is not None:
            last[rule.finding] = max(last.get(rule.finding, rule.order), rule.order)
    for rule in rules:
        if rule.finding is None or rule.id.startswith(("una-", "und-")):
            continue
        code = rule.finding
        fires = prio.get(code) in NEVER_UNASSESSED
        strict = decided_negations(rule)
        body = companion_body(rule, code, fires=fires, strict=strict)
        template = companion_template(rule, code, fires=fires)
        cid = companion_id(rule, fires=fires)
        order = Decimal(last[code]) + Decimal("0.5")     # after every rule that derives the finding
        if fires:
            # companions that fire their finding run one after the other (each reads whether an
            # earlier one fired), so every engine follows the same order
            order += Decimal("0.01") * fired_before.get(code, 0)
            fired_before[code] = fired_before.get(code, 0) + 1
        if fires:
            label = f"{rule.label} (a criterion undecided: counts as met)"
            definition = (f"If every criterion of {rule.id} is met or undecided and {code} was not derived, then "
                          f"{code}: a row of priority {prio[code].removesuffix('Priority').lower()} is never unassessed "
                          f"(findings.md v2, S1; the three-valued companion of {rule.id}), and the explanation names "
                          f"what could not be decided.")
            head = f"    b12:implementsFinding b12:{code} ;\n"
        else:
            label = f"{rule.label} (unassessed)"
            definition = (f"If every criterion of {rule.id} is met or undecided and {code} was not derived, then {code} "
                          f"is unassessed for the patient (findings.md v2, S1; the three-valued companion of {rule.id}).")
            head = f"    b12:assessesFinding b12:{code} ;\n"
        out.append(
            f"b12r:{cid} a sh:NodeShape , b12:Rule ;\n"
            f"    rdfs:label {_turtle_string(label)}@en ;\n"
            f"    skos:definition {_turtle_string(definition)}@en ;\n"
            f"    b12:ruleId \"{cid}\" ;\n"
            f"{head}"
            f"    b12:companionOf b12r:{rule.id} ;\n"
            f"    dcterms:source b12src:findings-vocabulary ;\n"
            f"    sh:targetClass b12:Patient ;\n"
            f"    sh:order {order} ;\n"
            f"    sh:rule [\n"
            f"        a sh:SPARQLRule ;\n"
            f"        sh:prefixes b12r:prefixes ;\n"
            f"        sh:construct \"\"\"\n"
            f"            CONSTRUCT {{\n                {template.strip()}\n            }}\n"
            f"            WHERE {{\n                {body.strip()}\n            }}\n"
            f"        \"\"\" ;\n"
            f"    ] .\n")
    return "\n".join(out)


def hand_written_rules() -> tuple[Rule, ...]:
    return tuple(r for r in load_rules() if not r.id.startswith(("una-", "und-")))


def generated_path() -> Path:
    return paths.RULES_DIR / GENERATED_NAME


def main(argv: list[str] | None = None) -> int:
    text = companions(hand_written_rules())
    target = Path((argv or sys.argv[1:] or [str(generated_path())])[0])
    target.write_text(text, encoding="utf-8")
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
