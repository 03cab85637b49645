"""The text report a clinician reads at a glance: diagnoses, cautions, next steps and the results
behind them, each with its reason and its guideline."""

from __future__ import annotations

import textwrap

from .model import Assessment, Finding

SECTIONS = (("diagnosis", "DIAGNOSES"), ("caution", "CAUTIONS"), ("next-step", "NEXT STEPS"),
            ("result", "RESULTS BEYOND CUT-OFFS"))
WIDTH = 100


PROJECT_SOURCES = ("b12kg finding vocabulary v1", "b12kg profiles", "b12kg design")


def _closure(a: Assessment, f: Finding) -> list[Finding]:
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


def _evidence_text(f: Finding) -> list[str]:
    bits = []
    for e in f.evidence:
        s = e.text()
        th = [t for t in f.thresholds if t.compared_limit and e.unit_compared and t.compared_limit.endswith(" " + e.unit_compared)]
        if th:
            s += " vs " + ", ".join(("not " if t.outcome == "not met" else "") + (t.compared_limit or "") for t in th)
        bits.append(s)
    return bits


def _reason(a: Assessment, f: Finding) -> str:
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


def _sources(a: Assessment, f: Finding) -> str:
    names: list[str] = []
    for g in _closure(a, f):
        names += [t.source for t in g.thresholds]
    names += [r.source for r in f.rules if r.source]
    names = [n for n in dict.fromkeys(names) if n]
    guideline = [n for n in names if n not in PROJECT_SOURCES]
    return ", ".join(guideline or names)


def render_text(a: Assessment) -> str:
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
        s = f"{key} {v['value_as_given']}" + (f" {v['unit_as_given']}" if v.get("unit_as_given") else "")
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
    for key, title in SECTIONS:
        fs = [f for f in a.findings if f.section == key]
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
    if a.notes:
        lines.append("")
        lines.append("NOTES")
        for n in a.notes:
            lines.extend(textwrap.wrap(n, WIDTH, initial_indent="  - ", subsequent_indent="    "))
    return "\n".join(lines) + "\n"
