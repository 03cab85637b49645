"""The one renderer of text: a result as evidence, a cut-off, a finding's explanation, and the
text report a clinician reads at a glance (diagnoses, cautions, next steps and the results behind
them, each with its reason and its guideline)."""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING, Iterable

if TYPE_CHECKING:                      # the model renders itself with this module
    from .model import Assessment, Evidence, Finding, RuleRef, Threshold

SECTIONS = (("diagnosis", "DIAGNOSES"), ("caution", "CAUTIONS"), ("next-step", "NEXT STEPS"),
            ("result", "RESULTS BEYOND CUT-OFFS"))
WIDTH = 100


PROJECT_SOURCES = ("b12kg finding vocabulary v1", "b12kg profiles", "b12kg design")


def given_text(analyte: str, value_as_given: str, unit_as_given: str | None) -> str:
    """A result as the laboratory gave it: "b12 <150 pmol/L"."""
    return f"{analyte} {value_as_given} {unit_as_given or ''}".strip()


def evidence_text(e: "Evidence") -> str:
    """A result as given, as compared when that differs, with its limit and derivation."""
    if e.unusable is not None:
        return f"{e.analyte} reported but unusable ({e.unusable})"
    s = given_text(e.analyte, e.value_as_given, e.unit_as_given)
    if e.value_compared is not None and e.unit_compared != e.unit_as_given:
        prefix = e.comparator if e.comparator not in (None, "=") else ""
        s += f" (compared as {prefix}{e.value_compared} {e.unit_compared})"
    if e.reference_high is not None:
        s += f", laboratory upper limit {e.reference_high} {e.unit_as_given or ''}".rstrip()
    if e.reference_low is not None:
        s += f", laboratory lower limit {e.reference_low} {e.unit_as_given or ''}".rstrip()
    if e.derivation:
        s += f", derived: {e.derivation}"
    return s


def limit_outcome(t: "Threshold") -> str:
    """The cut-off's limit in the unit its result was compared in (else every unit), "not ..."
    when the result does not meet it."""
    limit = t.compared_limit or " or ".join(t.limits)
    if t.outcome == "undecided":
        return "undecided against " + limit
    return "not " + limit if t.outcome == "not met" else limit


def threshold_text(t: "Threshold") -> str:
    return f"{limit_outcome(t)} ({t.role}; {t.population}; {t.source}, {t.verification})"


def explanation(label: str, rules: Iterable["RuleRef"], evidence: Iterable["Evidence"],
                thresholds: Iterable["Threshold"], based_on: list[str], context: list[str], actions: list[str],
                chain: tuple[str, ...], notes: list[str]) -> str:
    """A finding's explanation in one paragraph: rules, results, cut-offs, what it built on."""
    parts = [label[0].upper() + label[1:] + "."]
    for r in rules:
        parts.append(f"Rule {r.id}: {r.definition}")
    ev = list(evidence)
    if ev:
        parts.append("Results: " + "; ".join(evidence_text(e) for e in ev) + ".")
    th = list(thresholds)
    if th:
        parts.append("Cut-offs: " + "; ".join(threshold_text(t) for t in th) + ".")
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


def _closure(a: "Assessment", f: "Finding") -> list["Finding"]:
    """The finding and every finding it was built on, transitively (each once)."""
    out, todo, seen = [], [f], set()
    while todo:
        g = todo.pop(0)
        if g.code in seen:
            continue
        seen.add(g.code)
        out.append(g)
        todo.extend(h for h in (a.finding(c) for c in g.based_on) if h is not None)
    return out


def _evidence_text(f: "Finding") -> list[str]:
    """Each result with the cut-offs of its test it was compared with (bands included)."""
    bits = []
    for e in f.evidence:
        s = evidence_text(e)
        th = [t for t in f.thresholds if t.analyte == e.analyte and t.compared_limit]
        if th:
            s += " vs " + ", ".join(limit_outcome(t) for t in th)
        bits.append(s)
    return bits


def _reason(a: "Assessment", f: "Finding") -> str:
    bits: list[str] = []
    for g in _closure(a, f):
        for b in _evidence_text(g):
            if b not in bits:
                bits.append(b)
    if f.based_on:
        bits.append("with " + ", ".join(f.based_on))
    if f.context:
        bits.append("recorded: " + ", ".join(f.context))
    if not bits:
        bits.append(f.rules[0].definition if f.rules else f.definition)
    return "; ".join(bits)


def _sources(a: "Assessment", f: "Finding") -> str:
    names: list[str] = []
    for g in _closure(a, f):
        names += [t.source for t in g.thresholds]
    names += [r.source for r in f.rules if r.source]
    names = [n for n in dict.fromkeys(names) if n]
    guideline = [n for n in names if n not in PROJECT_SOURCES]
    return ", ".join(guideline or names)


def render_text(a: "Assessment") -> str:
    r = a.record_summary
    who = []
    who.append(r.get("sex") or "sex not recorded")
    who.append(f"{int(float(r['age_years']))} y" if r.get("age_years") is not None and float(r["age_years"]) >= 1
               else f"{round(float(r['age_years']) * 12)} months" if r.get("age_years") is not None else "age not recorded")
    if r.get("pregnant"):
        who.append(f"pregnant ({r.get('trimester')} trimester)" if r.get("trimester") != "unknown" else "pregnant (trimester unknown)")
    lines = [f"Patient {a.patient_id}: {', '.join(who)}; profile {a.profile}"]
    results = []
    for key, v in r.get("results", {}).items():
        s = given_text(key, v["value_as_given"], v.get("unit_as_given"))
        if v.get("unit_compared") and v.get("unit_compared") != v.get("unit_as_given"):
            cmp = v.get("comparator") if v.get("comparator") not in (None, "=") else ""
            s += f" (= {cmp}{v['value_compared']} {v['unit_compared']})"
        results.append(s)
    if results:
        lines.extend(textwrap.wrap("Results: " + "; ".join(results), WIDTH, subsequent_indent="  "))
    if r.get("symptoms") or r.get("context"):
        lines.append("Recorded: " + ", ".join(r.get("symptoms", []) + r.get("context", [])))
    if not a.findings:
        lines.append("")
        lines.append("No findings: every assessed result is within its cut-offs and nothing is missing.")
    urgent = [f for f in a.findings if f.priority_rank == 1]
    for key, title in (("urgent", "URGENT"),) + SECTIONS:
        fs = urgent if key == "urgent" else [f for f in a.findings if f.section == key and f not in urgent]
        if not fs:
            continue
        lines.append("")
        lines.append(title)
        for f in fs:
            lines.append(f"  * {f.label} [{f.code}]")
            lines.extend(textwrap.wrap("because " + _reason(a, f), WIDTH, initial_indent="      ", subsequent_indent="      "))
            if f.actions and key != "result":
                lines.extend(textwrap.wrap("do: " + "; ".join(f.actions), WIDTH, initial_indent="      ", subsequent_indent="      "))
            if f.causal_chain:
                lines.extend(textwrap.wrap("mechanism: " + " -> ".join(f.causal_chain), WIDTH, initial_indent="      ",
                                           subsequent_indent="      "))
            src = _sources(a, f)
            if src:
                lines.extend(textwrap.wrap("source: " + src + f" (rule {', '.join(f.rule_ids)})", WIDTH,
                                           initial_indent="      ", subsequent_indent="      "))
    # findings.md v2, S1: an unassessed finding is listed when forcing it true and forcing it false
    # would give different recommendation codes; the others are named on one line
    listed = [f for f in a.unassessed if f.changes_recommendations]
    quiet = [f for f in a.unassessed if not f.changes_recommendations]
    if listed:
        lines.append("")
        lines.append("NOT ASSESSED (a result, sex, age or gestation could not decide them)")
        for f in listed:
            lines.append(f"  * {f.label} [{f.code}]")
            lines.extend(textwrap.wrap("because " + _reason(a, f), WIDTH, initial_indent="      ",
                                       subsequent_indent="      "))
            lines.extend(textwrap.wrap("whether it holds changes the recommendations: " + ", ".join(f.changes_recommendations), WIDTH,
                                       initial_indent="      ", subsequent_indent="      "))
    if quiet:
        lines.append("")
        lines.extend(textwrap.wrap("Also not assessed, changing no recommendation: "
                                   + ", ".join(f"{f.label} [{f.code}]" for f in quiet), WIDTH,
                                   subsequent_indent="  "))
    if a.notes:
        lines.append("")
        lines.append("NOTES")
        for n in a.notes:
            lines.extend(textwrap.wrap(n, WIDTH, initial_indent="  - ", subsequent_indent="    "))
    return "\n".join(lines) + "\n"
