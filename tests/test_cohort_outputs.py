"""The analyst outputs of a cohort run (issue 12): the patient table (every assessed patient, one
true/false/unassessed column per finding code of the knowledge base), the findings in long form
with their evidence, summary.json (counts and percentages per code by sex, age band and
pregnancy; attrition) and summary.html (charts rendered by a headless browser with no network);
rejects with the patient id; a duplicate patient id refused, the first one counting; chunks
planned for every core."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from b12kg.cohort import assess_cohort
from b12kg.cohort.planner import CHUNKS_PER_WORKER, plan_input, read_chunk
from b12kg.cohort.tables import FALSE, TRUE, UNASSESSED, age_band, age_bands, finding_codes, finding_values
from b12kg.inputs.csv import write_csv
from b12kg.kb import age_band_edges, finding_classes
from b12kg.testing import synth

N = 300


def lines(p: Path) -> list[dict]:
    return [json.loads(x) for x in p.read_text(encoding="utf-8").split("\n") if x]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A cohort of N generated patients with bad rows and duplicate ids, some of them in the same
    chunk as their first record, some in a later one; assessed on 2 workers in chunks of 40."""
    d = tmp_path_factory.mktemp("outputs")
    cases = [dict(c) for c in synth.generate(N, seed=12)]
    bad = [c for c in synth.generate_invalid(60, seed=12)
           if c["corruption"]["kind"] in ("wrong-unit", "not-a-number", "implausible-value")][:6]
    rows = cases[:150] + [{k: v for k, v in c.items() if k not in ("expect", "corruption")} for c in bad] + cases[150:]
    dups = [dict(cases[3], id=cases[3]["id"]), dict(cases[200], id=cases[200]["id"]), dict(cases[10], id=cases[10]["id"])]
    rows = rows[:20] + [dups[0]] + rows[20:] + dups[1:]     # record 20 repeats record 3 (same chunk); the last two repeat later ones
    path = d / "cohort.csv"
    with open(path, "w") as fh:
        write_csv(rows, fh)
    out = d / "out"
    s = assess_cohort(path, out, workers=2, chunk_size=40, progress=False)
    return rows, bad, out, s


def test_finding_values_from_derived_and_unassessed_codes():
    codes = finding_codes()
    assert list(codes) == sorted(finding_classes()) and len(codes) > 10
    derived, unassessed = {codes[0], codes[3]}, {codes[3], codes[5]}
    values = finding_values(derived, unassessed)
    assert len(values) == len(codes)
    want = {c: TRUE if c in derived else UNASSESSED if c in unassessed else FALSE for c in codes}
    assert dict(zip(codes, values)) == want
    assert values[3] == TRUE                         # derived and unassessed: the derived finding stands
    assert finding_values([], [], codes) == [FALSE] * len(codes)
    assert finding_values([], codes, codes) == [UNASSESSED] * len(codes)
    assert finding_values(derived, (), ("x", codes[0])) == [FALSE, TRUE]   # in the order asked


def test_age_bands_are_cut_at_the_knowledge_base_population_edges():
    edges = age_band_edges()
    bands = age_bands()
    assert len(bands) == len(edges) + 2 and bands[-1] == "unknown"
    assert age_band(None) == "unknown"
    for i, e in enumerate(edges):                     # an edge opens its band; just under it is the band before
        assert age_band(e) == bands[i + 1]
        assert age_band(e - Decimal("0.001")) == bands[i]
    assert age_band(Decimal(149)) == bands[-2]


def test_patient_table_has_a_row_per_assessed_patient_and_a_column_per_code(run):
    rows, bad, out, s = run
    table = pq.read_table(out / "patients.parquet")
    docs = lines(out / "findings.ndjson")
    assert table.num_rows == s.assessed == len(docs)
    assert table.column("patient").to_pylist() == [d["patient"] for d in docs]
    assert sum(1 for d in docs if not d["findings"]) > 0          # patients with no finding are present
    assert set(finding_codes()) <= set(table.column_names)
    by_id = {r["id"]: r for r in rows}
    for row, d in zip(table.to_pylist(), docs):
        found = {f["code"] for f in d["findings"]}
        assert {c for c in finding_codes() if row[c] == TRUE} == found
        open_ = {f["code"] for f in d["unassessed"]}                        # findings.md v2, S1
        assert {c for c in finding_codes() if row[c] == UNASSESSED} == open_ - found
        assert row["n_findings"] == len(found)
        src = by_id[row["patient"]]["patient"]
        assert row["sex"] == src.get("sex")
        assert row["pregnant"] == (src.get("pregnant") if src.get("pregnant") is not None else None)
        if src.get("age_years") is not None:
            assert row["age_years"] == float(src["age_years"])
            assert row["age_band"] == age_band(Decimal(str(src["age_years"])))
    csv_head = (out / "patients.csv").read_text(encoding="utf-8").split("\n", 1)[0]
    assert csv_head.replace('"', "").split(",") == table.column_names
    assert len((out / "patients.csv").read_text(encoding="utf-8").splitlines()) == table.num_rows + 1


def test_findings_table_is_the_ndjson_in_long_form_with_evidence(run):
    _, _, out, _ = run
    long = pq.read_table(out / "findings.parquet").to_pylist()
    docs = lines(out / "findings.ndjson")
    # the findings (status "true") and the unassessed findings (status "unassessed", findings.md v2 S1)
    items = [(d["patient"], f, status) for d in docs for status, key in ((TRUE, "findings"), (UNASSESSED, "unassessed"))
             for f in d[key]]
    assert {(r["patient"], r["code"], r["status"]) for r in long} == {(p, f["code"], st) for p, f, st in items}
    classes = finding_classes()
    evidence = {(p, f["code"], st): {e["analyte"]: e for e in f["evidence"]} for p, f, st in items}
    thresholds = {(p, f["code"], st): {t["id"] for t in f["thresholds"]} for p, f, st in items}
    decided = Counter()
    for r in long:
        key = (r["patient"], r["code"], r["status"])
        assert r["kind"] == classes[r["code"]]["kind"] and r["label"] == classes[r["code"]]["label"]
        if r["analyte"] is not None:
            e = evidence[key][r["analyte"]]
            assert (r["value_as_given"], r["unit_as_given"]) == (e["value_as_given"], e["unit_as_given"])
            assert (r["value_compared"], r["unit_compared"]) == (e.get("value_compared"), e.get("unit_compared"))
        if r["threshold"] is not None:
            assert r["threshold"] in thresholds[key]
        # met, checked against the cut-off as the page shows it ("< 150 pmol/L"), for plain values
        m = re.fullmatch(r"([<>]) (\S+) (\S+)", r["cutoff"] or "")
        if m and r["comparator"] == "=" and m.group(3) == r["unit_compared"]:
            v, limit = Decimal(r["value_compared"]), Decimal(m.group(2))
            assert r["met"] == (v < limit if m.group(1) == "<" else v > limit), r
            decided[r["met"]] += 1
    assert decided[True] and decided[False]          # both answers occur, so the check checked something


def test_summary_counts_percentages_breakdowns_and_attrition(run):
    rows, bad, out, s = run
    doc = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    table = pq.read_table(out / "patients.parquet").to_pylist()
    a = doc["attrition"]
    assert a["read"] == len(rows) == s.read
    assert a["assessed"] == len(table) == s.assessed
    assert a["duplicates"] == 3 and a["refused"]["duplicate patient id"] == 3
    assert sum(a["refused"].values()) == s.refused == len(bad) + 3
    assert a["read"] == a["assessed"] + sum(a["refused"].values())
    for c in finding_codes():
        n = sum(1 for r in table if r[c] == TRUE)
        assert doc["codes"][c]["patients"] == n
        assert doc["codes"][c]["percent"] == round(100 * n / len(table), 2)
        assert doc["findings"].get(c, 0) == n
    groups = {"sex": lambda r: r["sex"] or "not recorded", "age_band": lambda r: r["age_band"],
              "pregnancy": lambda r: f"pregnant, {r['trimester']} trimester" if r["pregnant"] else "not pregnant"}
    for dim, key in groups.items():
        sizes = Counter(key(r) for r in table)
        assert {g: v["patients"] for g, v in doc["by"][dim].items()} == dict(sizes)
        for g, v in doc["by"][dim].items():
            for c in finding_codes():
                n = sum(1 for r in table if key(r) == g and r[c] == TRUE)
                assert v["codes"][c]["patients"] == n
                assert v["codes"][c]["percent"] == round(100 * n / sizes[g], 2)
    assert list(doc["by"]["age_band"]) == [b for b in age_bands() if b in doc["by"]["age_band"]]   # in age order


def test_rejects_carry_the_patient_id_and_duplicates_name_the_first_record(run):
    rows, bad, out, _ = run
    rejects = lines(out / "rejects.ndjson")
    assert [r["record"] for r in rejects] == sorted(r["record"] for r in rejects)
    by_record = {r["record"]: r for r in rejects}
    for r in rejects:
        assert r["patient"] == rows[r["record"]]["id"], r
    dups = [r for r in rejects if r.get("reason") == "duplicate patient id"]
    assert [r["record"] for r in dups] == [20, len(rows) - 2, len(rows) - 1]
    for r in dups:
        first = next(i for i, x in enumerate(rows) if x["id"] == r["patient"])
        assert f"record {first}, row {first + 2}" in r["error"] and r["issues"][0]["field"] == "id"
    assert {r["patient"] for r in rejects if r.get("reason") is None} == {c["id"] for c in bad}
    assert len(by_record) == len(rejects)
    kept = pq.read_table(out / "patients.parquet", columns=["patient", "record"]).to_pylist()
    assert len({k["patient"] for k in kept}) == len(kept)              # no patient twice
    assert {k["record"] for k in kept}.isdisjoint(by_record)


def _csv(path: Path, n: int) -> Path:
    with open(path, "w") as fh:
        write_csv(synth.generate(n, seed=7, edge_cases=False), fh)
    return path


def test_a_5000_patient_cohort_is_planned_for_every_worker(tmp_path):
    path = _csv(tmp_path / "c.csv", 5000)
    for workers in (1, 2, 4):
        plans, chunking = plan_input(path, workers, max_records=10000)
        assert len(plans) >= 2 * workers, (workers, [p.n for p in plans])
        assert sum(p.n for p in plans) == 5000
        ordinals = [r.ordinal for p in plans for r in read_chunk(p)]
        assert ordinals == list(range(5000))                           # every record once, in order
        assert max(p.n for p in plans) <= 2 * -(-5000 // (CHUNKS_PER_WORKER * workers))   # balanced
    plans, _ = plan_input(path, 2, max_records=300)                     # memory bound: never more than max_records
    assert max(p.n for p in plans) <= 300 and sum(p.n for p in plans) == 5000
    plans, chunking = plan_input(path, 2, max_records=10000, chunk_size=700)
    assert [p.n for p in plans] == [700] * 7 + [100] and chunking == {"chunk_size": 700}


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    assert exe, "summary.html is tested in headless chromium: apt-get install -y chromium (as .ci/run does)"
    return exe


# Measures, once the page has loaded, each chart's box and the boxes of the marks drawn in it, and
# writes them into the page, which chromium then prints (--dump-dom).
_PROBE = """<script>
window.addEventListener('load', () => {
  const out = [...document.querySelectorAll('figure.chart svg')].map(svg => {
    const b = svg.getBoundingClientRect();
    const marks = [...svg.querySelectorAll('path, rect, image')].filter(e => {
      const r = e.getBoundingClientRect(); return r.width > 0 && r.height > 0; }).length;
    const texts = [...svg.querySelectorAll('text')].map(t => t.textContent);
    return {id: svg.parentElement.id, width: b.width, height: b.height, marks: marks, texts: texts};
  });
  const pre = document.createElement('pre'); pre.id = 'probe'; pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


def test_summary_html_renders_its_charts_offline_in_headless_chromium(run, tmp_path):
    _, _, out, _ = run
    page = (out / "summary.html").read_text(encoding="utf-8")
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", page)       # loads nothing
    assert "<script" not in page
    probe = tmp_path / "summary.html"
    probe.write_text(page.replace("</body>", _PROBE + "</body>"), encoding="utf-8")
    cmd = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp_path / 'profile'}", "--proxy-server=127.0.0.1:9",   # no network: a dead proxy
           "--virtual-time-budget=5000", "--dump-dom", probe.as_uri()]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=dict(os.environ, HOME=str(tmp_path)))
    assert r.returncode == 0, r.stderr[-2000:]
    m = re.search(r'<pre id="probe">(.*?)</pre>', r.stdout, re.S)
    assert m, r.stdout[-2000:]
    charts = {c["id"]: c for c in json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&"))}
    doc = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert set(charts) == {"chart-attrition", "chart-findings", "chart-sex", "chart-age_band", "chart-pregnancy"}
    shown = [c for c, v in doc["codes"].items() if v["patients"]]
    for c in charts.values():
        assert c["width"] > 200 and c["height"] > 100, c
        assert c["marks"] >= 3, c
    texts = " ".join(charts["chart-findings"]["texts"])
    assert all(f"({code})" in texts for code in shown)               # a bar per finding found, labelled
    assert f"n={doc['by']['sex']['female']['patients']:,}" in " ".join(charts["chart-sex"]["texts"])


def test_query_answers_the_shipped_cohort_counts_over_inferred_nq(tmp_path, capsys):
    """`b12kg query cohort-counts.rq --graph inferred.nq` loads the knowledge base itself and
    answers with the counts of summary.json, in the SPARQL 1.1 TSV and JSON results formats."""
    import pyoxigraph as ox

    from b12kg.cli import main
    from b12kg.paths import QUERIES_DIR

    path = _csv(tmp_path / "c.csv", 80)
    out = tmp_path / "out"
    s = assess_cohort(path, out, workers=1, progress=False, write_graph=True)
    assert s.findings
    query = QUERIES_DIR / "explain" / "cohort-counts.rq"
    for fmt, rformat in (("tsv", ox.QueryResultsFormat.TSV), ("json", ox.QueryResultsFormat.JSON)):
        assert main(["query", str(query), "--graph", str(out / "inferred.nq"), "--format", fmt]) == 0
        text = capsys.readouterr().out
        got = {r["code"].value: int(r["patients"].value)
               for r in ox.parse_query_results(text.encode(), format=rformat)}
        assert got == s.findings, fmt
    bad = tmp_path / "bad.nq"
    bad.write_text("<a> <b> .\n")
    assert main(["query", str(query), "--graph", str(bad)]) == 1
    assert "bad.nq" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["long", "bulk", "omop"])
def test_grouped_inputs_are_planned_for_every_worker(tmp_path, kind):
    """A bulk export, OMOP tables or a long table of 300 patients is grouped in >= 2 x workers
    chunks, every patient in one of them once."""
    from b12kg.cohort.planner import plan_grouped
    from b12kg.testing import convert

    cases = list(synth.generate(300, seed=9, edge_cases=False))
    getattr(convert, f"write_{kind}")(cases, tmp_path / kind)
    for workers in (1, 2):
        plans = plan_grouped(tmp_path / kind, kind, 10000, tmp_path / f"wd-{workers}", workers)
        patients = [p for p in plans if not p.orphans]
        assert len(patients) >= 2 * workers and sum(p.n for p in patients) == 300, [p.n for p in plans]
        ids = [r.ref for p in patients for r in read_chunk(p)]
        assert len(ids) == len(set(ids)) == 300
    assert len(plan_grouped(tmp_path / kind, kind, 10000, tmp_path / "wd-fixed")) == 1     # a fixed size: one chunk


def test_a_duplicate_in_a_later_chunk_leaves_the_graph_too(tmp_path):
    """With --graph, a record refused as a duplicate in a later chunk leaves no triple in
    inferred.nq: the patient's findings in the graph are those of the first record."""
    from b12kg.explain.assemble import graph_store
    from b12kg.rdf.terms import patient_iri

    cases = [dict(c) for c in synth.generate(30, seed=21, edge_cases=False)]
    from b12kg import assess

    codes = [set(assess(c, engine="compiled").codes) for c in cases]
    i = next(i for i in range(len(cases)) if codes[i])                               # a patient with findings
    first = cases[i]
    other = next(c for c, k in zip(cases, codes) if k - codes[i])                      # findings the first lacks
    path = tmp_path / "c.csv"
    with open(path, "w") as fh:
        write_csv(cases + [dict(other, id=first["id"])], fh)
    out = tmp_path / "out"
    s = assess_cohort(path, out, workers=1, chunk_size=10, progress=False, write_graph=True)
    assert s.duplicates == 1 and s.assessed == 30
    want = {f["code"] for d in lines(out / "findings.ndjson") if d["patient"] == first["id"] for f in d["findings"]}
    store = graph_store([out / "inferred.nq"])
    got = {str(r["code"].value) for r in store.query(
        "PREFIX b12: <https://w3id.org/b12kg/> PREFIX skos: <http://www.w3.org/2004/02/skos/core#> "
        f"SELECT ?code WHERE {{ <{patient_iri(first['id'])}> b12:hasFinding/a/skos:notation ?code }}",
        use_default_graph_as_union=True)}
    assert got == want and want
