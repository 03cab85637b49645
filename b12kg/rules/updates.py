"""The rules in the mechanical form for set-at-a-time stores (pyoxigraph in process, any SPARQL
1.1 store over the protocol): one SPARQL 1.1 Update per rule (per UNION branch), over every
patient of a store at once."""

from __future__ import annotations

import re

from ..errors import RuleError
from ..rdf.terms import DATA_GRAPH, INFERRED_GRAPH, KB_GRAPH
from .base import Rule, _matching_brace


# ---------------------------------------------------------------------------------------------
# The mechanical form for set-at-a-time stores (pyoxigraph): measured, oxigraph evaluates
# FILTER NOT EXISTS and a UNION joined with outer patterns by re-evaluating them per solution, so a
# store of N patients costs O(N^2); MINUS (a hash anti-join) and one update per UNION branch are
# linear. Both rewrites are equivalences for the rules as written (checked, else refused):
# - a top-level FILTER NOT EXISTS { X } whose X shares $this with the group and has no FILTER or
#   BIND of its own is MINUS { X } placed at the end of the group;
# - INSERT T WHERE { P {A} UNION {B} Q } inserts the same triples as the two updates over
#   P A Q and P B Q, because no rule reads what it writes (the stratification test).
# ---------------------------------------------------------------------------------------------
def _top_level_items(body: str) -> list[tuple[str, str]]:
    """Split a group body into ('text', s), ('group', inner) and ('union', '') items at depth 0."""
    items: list[tuple[str, str]] = []
    i, n, start = 0, len(body), 0
    while i < n:
        c = body[i]
        if c in "\"'<#":
            # skip strings, IRIs and comments with the same scanner the brace matcher uses
            j = _skip_token(body, i)
            i = j
            continue
        if c == "{":
            close = _matching_brace(body, i)
            pre = body[start:i]
            m = re.search(r"FILTER\s+NOT\s+EXISTS\s*$", pre, re.I)
            if m:
                if pre[:m.start()].strip():
                    items.append(("text", pre[:m.start()]))
                items.append(("notexists", body[i + 1:close]))
            else:
                m2 = re.search(r"\bUNION\s*$", pre, re.I)
                if m2:
                    if pre[:m2.start()].strip():
                        items.append(("text", pre[:m2.start()]))
                    items.append(("union", ""))
                    items.append(("group", body[i + 1:close]))
                elif pre.strip():
                    if re.search(r"\b(VALUES\s+\??\$?\w+|OPTIONAL|MINUS|GRAPH\s+\S+|SERVICE\s+\S+|EXISTS)\s*$", pre, re.I):
                        items.append(("text", body[start:close + 1]))
                        i = close + 1
                        start = i
                        continue
                    items.append(("text", pre))
                    items.append(("group", body[i + 1:close]))
                else:
                    items.append(("group", body[i + 1:close]))
            i = close + 1
            start = i
            continue
        i += 1
    if body[start:].strip():
        items.append(("text", body[start:]))
    return items


def _skip_token(text: str, i: int) -> int:
    c = text[i]
    if c == "#":
        j = text.find("\n", i)
        return len(text) if j == -1 else j
    if c == "<":
        m = re.match(r"<[^<>\"{}|^`\\\s]*>", text[i:])
        return i + (m.end() if m else 1)
    q = text[i:i + 3] if text[i:i + 3] in ('"""', "'''") else c
    j = text.find(q, i + len(q))
    while j != -1 and len(q) == 1 and text[j - 1] == "\\":
        j = text.find(q, j + 1)
    return len(text) if j == -1 else j + len(q)


def _filters_are_local(block: str) -> bool:
    """True when every FILTER of a block reads only variables the block's own patterns bind: then
    the block means the same evaluated alone (MINUS) as with the outer bindings (NOT EXISTS)."""
    filters = []
    rest = block
    for m in list(re.finditer(r"\bFILTER\s*\(", block, re.I))[::-1]:
        depth, i = 0, m.end() - 1
        while i < len(block):
            depth += {"(": 1, ")": -1}.get(block[i], 0)
            if depth == 0:
                break
            i += 1
        filters.append(block[m.start():i + 1])
        rest = rest[:m.start()] + rest[i + 1:]
    bound = set(re.findall(r"[?$]\w+", rest))
    return all(set(re.findall(r"[?$]\w+", f)) <= bound for f in filters)


def set_at_a_time_bodies(rule: "Rule") -> list[str]:
    """The WHERE bodies of the linear form of a rule (see above): one per UNION branch, with
    NOT EXISTS as MINUS at the end."""
    _, body = rule.template_and_body()
    items = _top_level_items(body)
    outer_vars = {v[1:] for kind, text in items if kind != "notexists" for v in re.findall(r"[?$]\w+", text)}
    alternatives: list[list[str]] = [[]]
    minus: list[str] = []
    k = 0
    while k < len(items):
        kind, text = items[k]
        if kind == "notexists":
            shared = {v[1:] for v in re.findall(r"[?$]\w+", text)} & (outer_vars | {"this"})
            if re.search(r"\bBIND\b", text, re.I) or not shared or not _filters_are_local(text):
                raise RuleError(f"rule {rule.id}: NOT EXISTS block cannot be rewritten as MINUS")
            minus.append(text)
            k += 1
            continue
        if kind == "group" and k + 1 < len(items) and items[k + 1][0] == "union":
            branches = [text]
            while k + 1 < len(items) and items[k + 1][0] == "union":
                branches.append(items[k + 2][1])
                k += 2
            alternatives = [a + [b] for a in alternatives for b in branches]
            k += 1
            continue
        if kind == "group":
            alternatives = [a + ["{ " + text + " }"] for a in alternatives]
        else:
            alternatives = [a + [text] for a in alternatives]
        k += 1
    out = []
    for alt in alternatives:
        text = "\n".join(s.strip() for s in alt if s.strip())
        for m in minus:
            text += "\nMINUS { " + m.strip() + " }"
        out.append(text)
    return out


def set_at_a_time_updates(rule: "Rule", *, graphs: bool = True, kb_graph: str = KB_GRAPH,
                          data_graph: str = DATA_GRAPH, inferred_graph: str = INFERRED_GRAPH) -> list[str]:
    """The rule as SPARQL 1.1 Updates. With ``graphs``, the WHERE reads the union of the three
    graphs (USING) and the inferred triples go to their own graph: the form any SPARQL 1.1 store
    runs (graph IRIs may be chosen per batch, so that several batches share one store)."""
    template, _ = rule.template_and_body()
    out = []
    for body in set_at_a_time_bodies(rule):
        body = "$this a b12:Patient .\n" + body
        if graphs:
            out.append(f"{rule.prefix_block()}INSERT {{ GRAPH <{inferred_graph}> {{\n{template}\n}} }}\n"
                       f"USING <{kb_graph}>\nUSING <{data_graph}>\nUSING <{inferred_graph}>\nWHERE {{\n{body}\n}}")
        else:
            out.append(f"{rule.prefix_block()}INSERT {{\n{template}\n}}\nWHERE {{\n{body}\n}}")
    return out
