"""Cohorts beyond one machine: assess a Spark DataFrame with b12kg on the executors.

``assess(df, profile=...)`` takes a DataFrame with the columns of the cohort CSV (one row per
patient: ``id``, ``sex``, ``age_years``, ..., ``<key>``, ``<key>_unit``; see
``b12kg.cohort.planner``) and returns three DataFrames: the patient rows and the long findings
(the same tables as ``patients.parquet`` and ``findings.parquet`` of ``assess-cohort``, built by
``b12kg.cohort.tables``) and the refused rows with their reasons. Each Arrow batch is assessed on
an executor by the code of the cohort worker (``worker.assess_raws``: the same parsing, checks,
compiled rules), through ``DataFrame.mapInArrow``; nothing is collected on the driver. A patient
id that an earlier row has (by the order Spark gives the rows, ``monotonically_increasing_id``)
is refused, the first one counting, as in ``assess-cohort``.

pyspark is not a dependency of b12kg: this module imports nothing from it at import time; the
caller brings a SparkSession (``pip install pyspark``, Java 17), and the executors need b12kg
installed (``spark-submit --py-files`` or the same environment; see the README)."""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal
from typing import Iterator, NamedTuple

import pyarrow as pa

from .cohort.planner import RawRecord
from .cohort.tables import FINDINGS_SCHEMA, Assessed, findings_table, patient_schema, patient_table
from .cohort.worker import Options, assess_raws, duplicate_reject
from .errors import B12kgError
from .inputs.csv import check_csv_header
from .inputs.long import LAB_COLUMNS, PERSON_COLUMNS, long_bundle
from .rdf.terms import DEFAULT_BASE

RECORD = "_b12kg_record"
FIRST = "_b12kg_first"
#: what one long-findings row holds under its patient (the long table less patient and record)
FINDING_FIELDS = [f for f in FINDINGS_SCHEMA if f.name not in ("patient", "record")]


class SparkResult(NamedTuple):
    patients: object        # pyspark.sql.DataFrame: patient_schema()
    findings: object        # pyspark.sql.DataFrame: FINDINGS_SCHEMA
    rejects: object         # pyspark.sql.DataFrame: record, source, patient, error, issues (JSON)


def output_schema() -> pa.Schema:
    """One row per input row: the patient row (null but for patient, record and source when
    refused), ``error`` and ``issues`` (JSON) when refused, and the patient's findings."""
    return pa.schema(list(patient_schema()) + [("error", pa.string()), ("issues", pa.string()),
                                              ("findings", pa.list_(pa.struct(FINDING_FIELDS)))])


def _ddl_type(t: pa.DataType) -> str:
    if pa.types.is_string(t):
        return "string"
    if pa.types.is_int64(t):
        return "bigint"
    if pa.types.is_int32(t):
        return "int"
    if pa.types.is_float64(t):
        return "double"
    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_list(t):
        return f"array<{_ddl_type(t.value_type)}>"
    if pa.types.is_struct(t):
        return "struct<" + ",".join(f"`{f.name}`:{_ddl_type(f.type)}" for f in t) + ">"
    raise B12kgError(f"internal error: no Spark type for {t}")


def ddl(schema: pa.Schema) -> str:
    """The Spark DDL of an Arrow schema (what mapInArrow is told it yields)."""
    return ", ".join(f"`{f.name}` {_ddl_type(f.type)}" for f in schema)


def cell_text(v) -> str:
    """A Spark value as the text of a cohort CSV cell: numbers as their shortest exact text
    (a double as Python's repr, which reads back to the same double), dates in ISO form."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, Decimal):
        return format(v, "f")
    if isinstance(v, (date, datetime)):
        return v.isoformat()
    return str(v)


def _with_findings(assessed: list[Assessed], rejects: list[dict]) -> pa.Table:
    """The output batch (output_schema) of one input batch."""
    schema = output_schema()
    patients = patient_table(assessed)
    long = findings_table(assessed)
    counts: dict[int, int] = {}
    for r in long.column("record").to_pylist():
        counts[r] = counts.get(r, 0) + 1
    offsets = [0]
    for a in assessed:
        offsets.append(offsets[-1] + counts.get(a.ordinal, 0))
    items = pa.StructArray.from_arrays([long.column(f.name).combine_chunks() for f in FINDING_FIELDS],
                                       fields=FINDING_FIELDS)
    found = pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), items)
    n = patients.num_rows
    done = pa.table([*patients.columns, pa.nulls(n, pa.string()), pa.nulls(n, pa.string()), found], schema=schema)
    cols: dict[str, list] = {f.name: [None] * len(rejects) for f in schema}
    cols["patient"] = [r.get("patient") for r in rejects]
    cols["record"] = [r["record"] for r in rejects]
    cols["source"] = [r["source"] for r in rejects]
    cols["error"] = [r["error"] for r in rejects]
    cols["issues"] = [json.dumps(r["issues"], ensure_ascii=False) for r in rejects]
    cols["findings"] = [[] for _ in rejects]
    return pa.concat_tables([done, pa.table(cols, schema=schema)])


def assess_batches(batches: Iterator[pa.RecordBatch], header: list[str], options: Options) -> Iterator[pa.RecordBatch]:
    """The function each executor runs over its Arrow batches (see the module docstring)."""
    for b in batches:
        cols = [b.column(h).to_pylist() for h in header]
        records = b.column(RECORD).to_pylist()
        firsts = b.column(FIRST).to_pylist()
        raws: list[RawRecord] = []
        dups: list[dict] = []
        for i, (rec, first) in enumerate(zip(records, firsts)):
            row = [cell_text(c[i]) for c in cols]
            if first is not None and first != rec:
                pid = row[header.index("id")].strip()
                dups.append(duplicate_reject(rec, f"record {rec}", pid, first, f"record {first}"))
                continue
            raws.append(RawRecord(rec, f"record {rec}", "csv", (header, row)))
        assessed, rejects, _ = assess_raws(raws, options)
        yield from _with_findings(assessed, sorted(rejects + dups, key=lambda r: r["record"])).to_batches()


def assess(df, *, profile: str | None = None, base: str = DEFAULT_BASE, persist: bool = True) -> SparkResult:
    """Assess a wide DataFrame (the cohort CSV's columns; any Spark types) on the executors; see
    the module docstring. The three DataFrames share one assessment: with ``persist`` (the
    default) it is kept (memory and disk) so that using all three assesses once."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    header = list(df.columns)
    problems = check_csv_header(header)
    if problems:
        raise B12kgError("the DataFrame's columns: " + "; ".join(problems))
    if "id" not in header:
        raise B12kgError("the DataFrame has no id column: b12kg needs each patient's id")
    options = Options(profile=profile, base=base)
    numbered = df.withColumn(RECORD, F.monotonically_increasing_id())
    pid = F.trim(F.col("id").cast("string"))
    first = F.when(pid.isNotNull() & (pid != ""), F.min(RECORD).over(Window.partitionBy(pid)))
    numbered = numbered.withColumn(FIRST, first)
    out = numbered.mapInArrow(lambda it: assess_batches(it, header, options), ddl(output_schema()))
    return _split(out, persist)


def _split(out, persist: bool) -> SparkResult:
    """The patients, findings and rejects of an output_schema() DataFrame."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    if persist:
        out = out.persist(StorageLevel.MEMORY_AND_DISK)
    patients = out.where(F.col("error").isNull()).select(*patient_schema().names)
    findings = (out.where(F.col("error").isNull()).select("patient", "record", F.explode("findings").alias("f"))
                .select("patient", "record", *[F.col(f"f.`{f.name}`").alias(f.name) for f in FINDING_FIELDS]))
    rejects = out.where(F.col("error").isNotNull()).select("record", "source", "patient", "error", "issues")
    return SparkResult(patients, findings, rejects)


def _long_groups(tables: Iterator[pa.Table], options: Options, what: str) -> Iterator[pa.RecordBatch]:
    """applyInArrow over a long table grouped by patient: the patient's rows become the Bundle
    the in-process long reader makes (``inputs.long.long_bundle``); a row with no patient, or
    naming one the person table does not hold, becomes a Bundle of its own, refused with why."""
    for t in tables:
        rows = sorted(t.to_pylist(), key=lambda r: (r["src"], r["ord"]))
        pkey, orphan = rows[0]["pkey"], rows[0]["orphan"]
        if pkey is None or orphan:
            raws = []
            for r in rows:
                why = "has no patient reference" if pkey is None else f"names patient {pkey!r}, who is not in {what}"
                raws.append(RawRecord(r["ord"], f"{r['src']} row {r['ord']}: {why}", "bundle",
                                      long_bundle("", [r]).encode()))
        else:
            first = min((r["ord"] for r in rows if r["src"] == "lab"), default=0)
            raws = [RawRecord(first, f"Patient/{pkey}", "bundle", long_bundle(pkey, rows).encode())]
        assessed, rejects, _ = assess_raws(raws, options)
        yield from _with_findings(assessed, rejects).to_batches()


def assess_long(lab, person=None, *, profile: str | None = None, base: str = DEFAULT_BASE,
                persist: bool = True) -> SparkResult:
    """Assess a long lab table (one row per result: patient_id, loinc or analyte, value, unit, ...;
    README, Cohorts) with an optional person table (patient_id, sex, birth_date), as DataFrames:
    each patient's rows are grouped on the executors (``groupBy().applyInArrow``) and read by the
    in-process long reader's own Bundle maker, so a patient gives what ``assess-cohort`` gives for
    the same table. Returns what ``assess`` returns; ``record`` is the row number of the
    patient's first lab row by Spark's order."""
    from pyspark.sql import functions as F

    problems = [f"{name}: unknown columns {', '.join(c for c in df.columns if c not in allowed)}"
                for name, df, allowed in (("lab", lab, LAB_COLUMNS), ("person", person, PERSON_COLUMNS))
                if df is not None and any(c not in allowed for c in df.columns)]
    if problems:
        raise B12kgError("; ".join(problems) + f" (lab columns: {', '.join(LAB_COLUMNS)}; person: {', '.join(PERSON_COLUMNS)})")
    options = Options(profile=profile, base=base)

    def as_rows(df, src: str, ordinal):
        text = df.select(*[F.col(c).cast("string").alias(c) for c in df.columns])
        return text.select(F.col("patient_id").alias("pkey"), F.lit(src).alias("src"), ordinal.alias("ord"),
                           F.to_json(F.struct(*text.columns)).alias("row"))
    rows = as_rows(lab, "lab", F.monotonically_increasing_id() + 1)
    what = "the person table"
    if person is not None:
        rows = as_rows(person, "person", F.lit(0).cast("bigint")).unionByName(rows)
        known = person.select(F.col("patient_id").cast("string").alias("pkey")).distinct().withColumn("known", F.lit(True))
        rows = rows.join(known, "pkey", "left").withColumn("orphan", F.col("known").isNull()).drop("known")
    else:
        rows = rows.withColumn("orphan", F.lit(False))
    # rows with no patient are each a group of their own (a null key would gather them all)
    rows = rows.withColumn("gkey", F.coalesce(F.col("pkey"), F.concat(F.lit("\0row "), F.col("ord").cast("string"))))
    out = rows.groupBy("gkey").applyInArrow(
        lambda t: pa.Table.from_batches(list(_long_groups(iter([t.drop_columns(["gkey"])]), options, what)),
                                        schema=output_schema()), ddl(output_schema()))
    return _split(out, persist)


def assess_files(input_path: str, out_dir: str, *, master: str, profile: str | None = None) -> dict:
    """``assess-cohort --spark MASTER``: read a cohort CSV (every cell as text) or Parquet file or
    folder through Spark, assess it (``assess``) and write ``patients``, ``findings`` and
    ``rejects`` as Parquet folders under ``out_dir`` (replacing them). The executors' Python is
    PYSPARK_PYTHON, this interpreter when unset. Returns the counts."""
    import os
    import sys

    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    mine = SparkSession.getActiveSession() is None          # a session of the caller's is left running
    spark = SparkSession.builder.master(master).appName("b12kg assess-cohort").getOrCreate()
    try:
        reader = spark.read
        if str(input_path).lower().endswith(".csv"):
            df = reader.csv(str(input_path), header=True, inferSchema=False)
        else:
            df = reader.parquet(str(input_path))
        res = assess(df, profile=profile)
        for name in SparkResult._fields:
            getattr(res, name).write.mode("overwrite").parquet(f"{out_dir}/{name}")
        return {"assessed": res.patients.count(), "refused": res.rejects.count()}
    finally:
        if mine:
            spark.stop()
