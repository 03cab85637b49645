"""summary.html: the cohort summary as one self-contained page. The charts are drawn with
matplotlib as SVG and written into the page itself, so it opens with no network and no script;
the tables under them give every number the charts show.

The page reads only the summary document (summary.json's content), so what it shows is what
summary.json says."""

from __future__ import annotations

import html
import io

DIMENSION_TITLES = {"sex": "sex", "age_band": "age band (years)", "pregnancy": "pregnancy"}

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 1200px; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: right; white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
figure { margin: 0.5em 0; } figure svg { max-width: 100%; height: auto; }
.note { color: #555; font-size: 0.9em; }
"""


def _svg(fig) -> str:
    """A matplotlib figure as an inline <svg> element (text kept as text)."""
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "b12kg"}):
        fig.savefig(buf, format="svg", metadata={"Date": None})
    text = buf.getvalue()
    return text[text.index("<svg"):]


def _figure(width: float, height: float, left: float = 4.6, bottom: float = 0.6, right: float = 0.6):
    """A figure with fixed margins in inches (the labels of the codes on the left): no layout
    engine, which would lay every label out again several times."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width + left + right, height + bottom + 0.4), dpi=96)
    w, h = fig.get_size_inches()
    fig.subplots_adjust(left=left / w, right=1 - right / w, bottom=bottom / h, top=1 - 0.4 / h)
    return fig


def _label(doc: dict, code: str) -> str:
    return f"{doc['codes'][code]['label']} ({code})"


def _shown_codes(doc: dict) -> list[str]:
    """The codes some patient has or is unassessed for, most frequent first."""
    codes = [c for c, v in doc["codes"].items() if v["patients"] or v["unassessed"]]
    return sorted(codes, key=lambda c: (-doc["codes"][c]["patients"], c))


def _bar_chart(doc: dict, codes: list[str]) -> str:
    fig = _figure(5, 0.22 * len(codes))
    ax = fig.add_subplot()
    pct = [doc["codes"][c]["percent"] or 0 for c in codes]
    una = [doc["codes"][c]["unassessed_percent"] or 0 for c in codes]
    y = list(range(len(codes)))[::-1]
    ax.barh(y, pct, color="#3b75af", label="with the finding")
    if any(una):
        ax.barh(y, una, left=pct, color="#c8c8c8", label="unassessed")
        ax.legend(loc="lower right", frameon=False)
    for yi, p in zip(y, pct):
        ax.text(p, yi, f" {p:g} %", va="center", fontsize=8)
    ax.set_yticks(y, [_label(doc, c) for c in codes], fontsize=8)
    ax.set_xlabel(f"% of the {doc['assessed']:,} patients assessed")
    ax.set_xlim(0, max([p + u for p, u in zip(pct, una)] + [1]) * 1.15)
    ax.spines[["top", "right"]].set_visible(False)
    return _svg(fig)


def _heatmap(doc: dict, dim: str, codes: list[str]) -> str:
    groups = list(doc["by"][dim])
    data = [[doc["by"][dim][g]["codes"][c]["percent"] or 0 for g in groups] for c in codes]
    fig = _figure(0.9 * len(groups) + 1.2, 0.22 * len(codes), bottom=0.8)
    ax = fig.add_subplot()
    # the numbers of each cell are in the table under the chart (a text per cell costs seconds to lay out)
    im = ax.imshow(data, aspect="auto", cmap="Blues", vmin=0, vmax=max([max(r) for r in data] + [1]))
    ax.set_xticks(range(len(groups)), [f"{g}\nn={doc['by'][dim][g]['patients']:,}" for g in groups], fontsize=8)
    ax.set_yticks(range(len(codes)), [_label(doc, c) for c in codes], fontsize=8)
    ax.set_title(f"% of the patients of each group, by {DIMENSION_TITLES[dim]}", fontsize=10)
    fig.colorbar(im, ax=ax, label="%", shrink=0.6)
    return _svg(fig)


def _attrition_chart(doc: dict) -> str:
    a = doc["attrition"]
    rows = [("read", a["read"])] + [(f"refused: {r}", n) for r, n in a["refused"].items()] + [("assessed", a["assessed"])]
    fig = _figure(5, 0.3 * len(rows))
    ax = fig.add_subplot()
    y = list(range(len(rows)))[::-1]
    ax.barh(y, [n for _, n in rows], color=["#3b75af"] + ["#d9822b"] * (len(rows) - 2) + ["#3b8f3b"])
    for yi, (_, n) in zip(y, rows):
        ax.text(n, yi, f" {n:,}", va="center", fontsize=8)
    ax.set_yticks(y, [r if len(r) < 70 else r[:67] + "..." for r, _ in rows], fontsize=8)
    ax.set_xlim(0, max([n for _, n in rows] + [1]) * 1.15)
    ax.spines[["top", "right"]].set_visible(False)
    return _svg(fig)


def _table(head: list[str], rows: list[list]) -> str:
    e = html.escape
    return ("<table><tr>" + "".join(f"<th>{e(str(h))}</th>" for h in head) + "</tr>"
            + "".join("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in r) + "</tr>" for r in rows) + "</table>")


def _pct(v) -> str:
    return "" if v is None else f"{v:g} %"


def summary_html(doc: dict) -> str:
    """The page for a summary document (see the module docstring)."""
    e = html.escape
    codes = _shown_codes(doc)
    a = doc["attrition"]
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           f"<title>b12kg cohort summary: {e(doc['input'])}</title>", f"<style>{_STYLE}</style></head><body>",
           "<h1>b12kg cohort summary</h1>",
           f"<p>Input <code>{e(doc['input'])}</code>: {a['read']:,} records read, {doc['refused']:,} refused "
           f"({a['duplicates']:,} of them duplicate patient ids), {a['assessed']:,} patients assessed. "
           "Percentages are of the patients assessed (of each group's patients in the breakdowns).</p>",
           "<h2>Attrition</h2>", '<figure class="chart" id="chart-attrition">', _attrition_chart(doc), "</figure>",
           _table(["step", "records"], [["read", f"{a['read']:,}"]]
                  + [[f"refused: {r}", f"{n:,}"] for r, n in a["refused"].items()]
                  + [["assessed", f"{a['assessed']:,}"]])]
    out += ["<h2>Findings</h2>"]
    if codes:
        out += ['<figure class="chart" id="chart-findings">', _bar_chart(doc, codes), "</figure>"]
    else:
        out.append('<p class="note">No patient has any finding.</p>')
    out.append(_table(["finding", "kind", "patients", "%", "unassessed", "unassessed %"],
                      [[_label(doc, c), v["kind"], f"{v['patients']:,}", _pct(v["percent"]), f"{v['unassessed']:,}",
                        _pct(v["unassessed_percent"])] for c, v in sorted(doc["codes"].items())]))
    for dim, title in DIMENSION_TITLES.items():
        groups = list(doc["by"].get(dim, {}))
        if not groups:
            continue
        out.append(f"<h2>By {e(title)}</h2>")
        if codes:
            out += [f'<figure class="chart" id="chart-{dim}">', _heatmap(doc, dim, codes), "</figure>"]
        head = ["finding"] + [f"{g} (n={doc['by'][dim][g]['patients']:,})" for g in groups]
        out.append(_table(head, [[_label(doc, c)] + [f"{doc['by'][dim][g]['codes'][c]['patients']:,} "
                                                     f"({_pct(doc['by'][dim][g]['codes'][c]['percent'])})"
                                                     for g in groups] for c in codes]))
    out.append('<p class="note">b12kg; charts drawn with matplotlib. Every number is in summary.json.</p></body></html>')
    return "\n".join(out)
