"""The cohort engine: streaming inputs, one line per patient, rejects with reasons, counts that
reconcile, atomic outputs, resume, and the same findings as the single-patient path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from b12kg import assess
from b12kg.testing import synth
from b12kg.api import load_record
from b12kg.cohort import assess_cohort
from b12kg.inputs.csv import write_csv
from b12kg.cohort.planner import plan_chunks, read_chunk
from b12kg.errors import B12kgError
from b12kg.inputs.files import load_json

SHARED = Path(__file__).resolve().parents[1] / "vendor" / "shared" / "cases"


def lines(p: Path) -> list[dict]:
    return [json.loads(x) for x in p.read_text().splitlines() if x]


@pytest.fixture(scope="module")
def cohort_csv(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("cohort") / "cohort.csv"
    with open(p, "w") as fh:
        write_csv(synth.generate(600, seed=99), fh)
    return p


def test_csv_cohort_equals_the_single_patient_path(cohort_csv, tmp_path):
    s = assess_cohort(cohort_csv, tmp_path / "out", workers=2, chunk_size=150, progress=False)
    assert s.read == s.assessed == 600 and s.refused == 0 and s.reconciles()
    docs = lines(tmp_path / "out" / "findings.ndjson")
    assert [d["record"] for d in docs] == list(range(600))       # input order kept
    cases = list(synth.generate(600, seed=99))
    for d in docs[::20]:
        a = assess(cases[d["record"]])
        assert [f["code"] for f in d["findings"]] == sorted(a.codes)
        one = {f.code: f for f in a.findings}
        for f in d["findings"]:
            assert f["rule_ids"] == sorted(one[f["code"]].rule_ids)
            assert sorted(e["analyte"] for e in f["evidence"]) == sorted(e.analyte for e in one[f["code"]].evidence)
    for d in docs[::60]:                                              # and the pySHACL reference
        ref = assess(cases[d["record"]], engine="pyshacl")
        assert [f["code"] for f in d["findings"]] == sorted(ref.codes)
    counts = {}
    for d in docs:
        for f in d["findings"]:
            counts[f["code"]] = counts.get(f["code"], 0) + 1
    assert counts == s.findings


def test_compiled_and_oxigraph_cohort_outputs_are_identical(cohort_csv, tmp_path):
    assess_cohort(cohort_csv, tmp_path / "c", engine="compiled", workers=1, chunk_size=250, progress=False, write_graph=True)
    assess_cohort(cohort_csv, tmp_path / "o", engine="oxigraph", workers=1, chunk_size=250, progress=False, write_graph=True)
    for name in ("findings.ndjson", "patients.csv", "patients.parquet", "findings.parquet"):
        assert (tmp_path / "c" / name).read_bytes() == (tmp_path / "o" / name).read_bytes(), name
    assert set((tmp_path / "c" / "inferred.nq").read_text().splitlines()) == \
        set((tmp_path / "o" / "inferred.nq").read_text().splitlines())


def test_bad_records_go_to_rejects_with_their_reason_and_counts_reconcile(tmp_path):
    good = list(synth.generate(200, seed=5))
    # a CSV has a column per analyte key: unknown analytes and other LOINC codes are header errors
    csv_kinds = {"wrong-unit", "missing-unit", "not-a-number", "implausible-value"}
    bad = [c for c in synth.generate_invalid(40, seed=5) if c["corruption"]["kind"] in csv_kinds][:10]
    mixed = good[:100] + bad + good[100:]
    p = tmp_path / "mixed.csv"
    with open(p, "w") as fh:
        write_csv([{k: v for k, v in c.items() if k not in ("expect", "corruption")} for c in mixed], fh)
    s = assess_cohort(p, tmp_path / "out", workers=2, chunk_size=50, progress=False)
    assert (s.read, s.assessed, s.refused) == (210, 200, 10) and s.reconciles()
    rejects = lines(tmp_path / "out" / "rejects.ndjson")
    assert [r["record"] for r in rejects] == list(range(100, 110))
    for r, c in zip(rejects, bad):
        assert r["error"] and r["issues"], r
        assert c["corruption"]["field"].split(".")[-1] in r["error"] or c["corruption"]["field"] in r["error"], (r, c)
    assert len(lines(tmp_path / "out" / "findings.ndjson")) == 200


def test_unknown_csv_column_stops_before_anything_is_written(tmp_path):
    p = tmp_path / "typo.csv"
    p.write_text("id,sex,age_years,feritin,feritin_unit\nx,female,40,9,ug/L\n")
    with pytest.raises(B12kgError) as e:
        assess_cohort(p, tmp_path / "out", progress=False)
    assert "feritin" in str(e.value)
    assert not (tmp_path / "out" / "findings.ndjson").exists()


def test_csv_quoted_newlines_and_blank_lines_are_read_as_rows(tmp_path):
    p = tmp_path / "q.csv"
    p.write_text('id,sex,age_years,ferritin,ferritin_unit,context\n'
                 '"a\nb",female,40,9,ug/L,"vegan-diet;odd word"\n\n'
                 'c,male,50,600,ug/L,\n')
    plans = list(plan_chunks(p, 1))
    assert [pl.n for pl in plans] == [1, 1]
    recs = [r for pl in plans for r in read_chunk(pl)]
    assert [r.payload[1][0] for r in recs] == ["a\nb", "c"]
    s = assess_cohort(p, tmp_path / "out", workers=1, progress=False)
    assert s.assessed == 1 and s.refused == 1     # findings.md v2: an unknown word refuses its record
    rejects = lines(tmp_path / "out" / "rejects.ndjson")
    assert "odd word" in rejects[0]["error"] and rejects[0]["source"].startswith("row")


def test_ndjson_of_fhir_bundles(tmp_path):
    bundle = (SHARED / "fhir" / "p21-dual-deficiency.bundle.json").read_text()
    one = json.dumps(json.loads(bundle))
    p = tmp_path / "b.ndjson"
    p.write_text(one + "\n" + "{not json\n" + one.replace('"p21"', '"p22"') + "\n")
    s = assess_cohort(p, tmp_path / "out", workers=1, progress=False)
    assert (s.read, s.assessed, s.refused) == (3, 2, 1)
    rej = lines(tmp_path / "out" / "rejects.ndjson")[0]
    assert rej["source"] == "line 2" and "JSON" in rej["error"]
    codes = {f["code"] for f in lines(tmp_path / "out" / "findings.ndjson")[0]["findings"]}
    assert codes == set(assess(load_json(bundle)).codes)


def test_folder_of_records(tmp_path):
    s = assess_cohort(SHARED, tmp_path / "out", workers=2, chunk_size=16, progress=False)
    # the valid cases, the invalid ones and 1 FHIR Bundle file: fhir/p21-... is read first, so the
    # case file of the same patient (valid/p21-fhir-bundle-...) is refused as a duplicate id
    valid, invalid = len(list((SHARED / "valid").glob("*.yaml"))), len(list((SHARED / "invalid").glob("*.yaml")))
    bundles = len(list((SHARED / "fhir").glob("*.json")))
    assert bundles == 1 and valid > 0 and invalid > 0
    assert (s.read, s.assessed, s.refused, s.duplicates) == (valid + invalid + bundles, valid, invalid + 1, 1)
    rejects = lines(tmp_path / "out" / "rejects.ndjson")
    dup = [r for r in rejects if "/invalid/" not in r["source"]]
    assert [(r["patient"], Path(r["source"]).parent.name) for r in dup] == [("p21", "valid")]
    assert "fhir/p21-dual-deficiency.bundle.json" in dup[0]["error"] and "first one counts" in dup[0]["error"]


def test_rerun_resumes_from_finished_parts_and_restart_starts_over(cohort_csv, tmp_path):
    out = tmp_path / "out"
    first = assess_cohort(cohort_csv, out, workers=1, chunk_size=100, progress=False)
    reference = (out / "findings.ndjson").read_bytes()
    # simulate an interrupted run: parts of a run with the same fingerprint, outputs removed
    from b12kg.cohort import runner

    def boom(*a, **k):
        raise KeyboardInterrupt
    orig = runner._Assembler.finish
    runner._Assembler.finish = boom
    try:
        with pytest.raises(KeyboardInterrupt):
            assess_cohort(cohort_csv, out, workers=1, chunk_size=100, progress=False, resume=False)
    finally:
        runner._Assembler.finish = orig
    assert (out / ".parts").is_dir()
    assert not list(out.glob("*.tmp"))                      # no half-written output
    second = assess_cohort(cohort_csv, out, workers=1, chunk_size=100, progress=False)
    assert second.resumed_chunks == second.chunks == 6
    assert (out / "findings.ndjson").read_bytes() == reference and second.read == first.read
    third = assess_cohort(cohort_csv, out, workers=1, chunk_size=100, progress=False, resume=False)
    assert third.resumed_chunks == 0 and (out / "findings.ndjson").read_bytes() == reference
    assert not (out / ".parts").exists()
