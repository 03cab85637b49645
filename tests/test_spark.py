"""b12kg.spark on a real local Spark (local[2], pyspark from PyPI, Java 17): the patient rows,
the long findings and the refusals equal those of the in-process cohort path, patient for
patient, on a generated cohort (100,000 patients; B12KG_SPARK_N changes it). Slow: in
`make test-all`."""

from __future__ import annotations

import json
import os
import sys

import pyarrow.parquet as pq
import pytest

from b12kg.cohort import assess_cohort
from b12kg.inputs.csv import write_csv
from b12kg.testing import synth

N = int(os.environ.get("B12KG_SPARK_N", "100000"))

pytestmark = [pytest.mark.slow, pytest.mark.spark]


@pytest.fixture(scope="module")
def spark(tmp_path_factory):
    import pyspark                                            # in the test extra (make install)
    from pyspark.sql import SparkSession

    os.environ["PYSPARK_PYTHON"] = sys.executable           # the executors' Python: this venv, with b12kg
    os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    session = (SparkSession.builder.master("local[2]").appName("b12kg-test")
               .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "4")
               .config("spark.local.dir", str(tmp_path_factory.mktemp("spark-local")))
               .config("spark.driver.memory", "1g").getOrCreate())
    assert pyspark.__version__
    yield session
    session.stop()


def _rows(rows: list[dict]) -> dict[str, dict]:
    return {r["patient"]: {k: v for k, v in r.items() if k not in ("record", "source")} for r in rows}


def test_spark_gives_the_in_process_results_patient_for_patient(spark, tmp_path):
    from b12kg.spark import assess

    cases = [dict(c) for c in synth.generate(N, seed=31, edge_cases=False)]
    bad = [{k: v for k, v in c.items() if k not in ("expect", "corruption")}
           for c in synth.generate_invalid(40, seed=31) if c["corruption"]["kind"] in ("wrong-unit", "not-a-number")][:5]
    rows = cases[: N // 2] + bad + cases[N // 2:] + [dict(cases[7])]          # a duplicate id last
    path = tmp_path / "cohort.csv"
    with open(path, "w") as fh:
        write_csv(rows, fh)
    s = assess_cohort(path, tmp_path / "local", progress=False)
    local_patients = pq.read_table(tmp_path / "local" / "patients.parquet").to_pylist()
    local_findings = pq.read_table(tmp_path / "local" / "findings.parquet").to_pylist()

    df = spark.read.csv(str(path), header=True, inferSchema=False)        # every cell as text, as the CSV reader
    res = assess(df)
    out = tmp_path / "spark"
    res.patients.write.parquet(str(out / "patients"))
    res.findings.write.parquet(str(out / "findings"))
    res.rejects.write.parquet(str(out / "rejects"))
    sp_patients = pq.read_table(out / "patients").to_pylist()
    sp_findings = pq.read_table(out / "findings").to_pylist()
    sp_rejects = pq.read_table(out / "rejects").to_pylist()

    assert len(sp_patients) == s.assessed == len(local_patients)
    assert _rows(sp_patients) == _rows(local_patients)

    def long(rows):
        return sorted(json.dumps({k: v for k, v in r.items() if k not in ("record", "source")}, sort_keys=True)
                      for r in rows)
    assert long(sp_findings) == long(local_findings)
    assert len(sp_findings) > N                                               # findings, not an empty comparison
    local_rejects = [json.loads(x) for x in (tmp_path / "local" / "rejects.ndjson").read_text().splitlines()]

    def reason(r):     # the error less where it was ("row 9" here, "record 9" on Spark)
        return "duplicate" if "earlier record" in r["error"] else r["error"].split(":", 1)[-1]
    assert sorted((r["patient"], reason(r)) for r in sp_rejects) == sorted((r["patient"], reason(r)) for r in local_rejects)
    assert len(local_rejects) == len(bad) + 1 and sum(reason(r) == "duplicate" for r in sp_rejects) == 1


def test_assess_cohort_on_spark_from_the_command_line(spark, tmp_path):
    """`b12kg assess-cohort cohort.csv --out DIR --spark local[2]` writes patients/, findings/ and
    rejects/ as Parquet through Spark, with the in-process path's patient rows."""
    from b12kg.cli import main

    path = tmp_path / "cohort.csv"
    with open(path, "w") as fh:
        write_csv(list(synth.generate(200, seed=32, edge_cases=False)), fh)
    assert main(["assess-cohort", str(path), "--out", str(tmp_path / "spark"), "--spark", "local[2]", "--quiet"]) == 0
    assess_cohort(path, tmp_path / "local", progress=False, workers=1)
    got = pq.read_table(tmp_path / "spark" / "patients").to_pylist()
    assert _rows(got) == _rows(pq.read_table(tmp_path / "local" / "patients.parquet").to_pylist())
    assert pq.read_table(tmp_path / "spark" / "rejects").num_rows == 0
    assert pq.read_table(tmp_path / "spark" / "findings").num_rows == \
        pq.read_table(tmp_path / "local" / "findings.parquet").num_rows


def test_a_long_lab_table_on_spark_gives_the_in_process_results(spark, tmp_path):
    """b12kg.spark.assess_long: a long lab table and its person table as DataFrames give the
    patient rows and findings `assess-cohort` gives for the same files; a lab row of a patient
    the person table does not hold is refused on both."""
    from b12kg.spark import assess_long
    from b12kg.testing import convert

    cases = list(synth.generate(300, seed=33, edge_cases=False))
    folder = tmp_path / "long"
    convert.write_long(cases, folder)
    with open(folder / "labs.csv", "a") as fh:
        fh.write("nobody,718-7,,120,,g/L,2026-01-15T09:00:00+00:00,,\n")
    s = assess_cohort(folder, tmp_path / "local", progress=False, workers=1)
    local = pq.read_table(tmp_path / "local" / "patients.parquet").to_pylist()
    local_long = pq.read_table(tmp_path / "local" / "findings.parquet").to_pylist()
    lab = spark.read.csv(str(folder / "labs.csv"), header=True, inferSchema=False)
    person = spark.read.csv(str(folder / "persons.csv"), header=True, inferSchema=False)
    res = assess_long(lab, person)
    got = [r.asDict(recursive=True) for r in res.patients.collect()]
    got_long = [r.asDict(recursive=True) for r in res.findings.collect()]
    rejects = [r.asDict() for r in res.rejects.collect()]
    assert len(got) == s.assessed == 300
    assert _rows(got) == _rows(local)

    def key(rows):
        return sorted(json.dumps({k: v for k, v in r.items() if k not in ("record", "source")}, sort_keys=True)
                      for r in rows)
    assert key(got_long) == key(local_long) and len(got_long) > 300
    assert len(rejects) == s.refused == 1 and "'nobody', who is not in the person table" in rejects[0]["source"] + rejects[0]["error"]
