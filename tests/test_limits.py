"""Limits (issue 5): numbers b12kg cannot compare exactly, records with thousands of results, huge
and deeply nested inputs. Each is either handled in bounded work and memory or refused with an
InputError that names where the problem is. Work is counted, not timed (a timing fails on a busy
machine): the function calls a call makes, Python and C, and the peak memory it allocates."""

from __future__ import annotations

import json
import re
from pathlib import Path
import time
from decimal import Decimal

import pytest

import b12kg
from b12kg import InputError

ADULT = {"sex": "female", "age_years": 40}


@pytest.fixture(scope="module", autouse=True)
def warm(tmp_path_factory):
    """Load the knowledge base, the rules and the file readers first: the work and memory bounds
    are about the input, whichever test runs first."""
    b12kg.assess({"id": "warm", "patient": dict(ADULT), "observations": {"ferritin": {"value": 6, "unit": "ug/L"}}})
    d = tmp_path_factory.mktemp("warm")
    (d / "warm.yaml").write_text("id: warm\nobservations: {ferritin: {value: 6, unit: ug/L}}\n", encoding="utf-8")
    (d / "warm.json").write_text('{"id": "warm", "observations": {"ferritin": {"value": 6, "unit": "ug/L"}}}',
                                 encoding="utf-8")
    b12kg.assess(d / "warm.yaml")
    b12kg.assess(d / "warm.json")
    with pytest.raises(InputError):
        b12kg.assess({"resourceType": "Bundle", "type": "collection", "entry": []})   # no Patient


def _ferritin(value, **extra) -> dict:
    return {"id": "limits", "patient": dict(ADULT), "observations": {"ferritin": {"value": value, "unit": "ug/L", **extra}}}


def _refused(record, *words: str, calls: int | None = 10_000, megabytes: float = 20) -> InputError:
    """assess(record) is refused within `calls` function calls (None: not counted) and
    `megabytes` of peak memory."""
    err, _ = _bounded_call(lambda: b12kg.assess(record), calls=calls, megabytes=megabytes)
    text = str(err)
    for w in words:
        assert w in text, (w, text[:300])
    assert len(text) < 5000, "a refusal message stays short whatever the input"
    return err


# ---------------------------------------------------------------------------------------------
# Numbers
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("value", [
    "1e1000000",            # overflowed the decimal context (decimal.Overflow escaped the loader)
    "1e999999999",
    "-1e999999999",
    "1e-999999999",         # its plain form is a billion characters: formatting it ran out of memory
    "1e21",
    "1e-21",
    "29.99999999999999999999999999999",   # 31 digits: rounded to 30 in the 28-digit context, not < 30
    "1" * 60,
])
def test_numbers_beyond_exact_comparison_are_refused_naming_the_field(value):
    _refused(_ferritin(value), "observations.ferritin.value", "not a number")


@pytest.mark.parametrize("value", ["<1e999999999", ">=1e-999999999"])
def test_censored_numbers_beyond_exact_comparison_are_refused(value):
    _refused(_ferritin(value), "observations.ferritin.value")


def test_huge_reference_limit_and_age_are_refused():
    rec = {"id": "x", "patient": dict(ADULT),
           "observations": {"mma": {"value": 0.3, "unit": "umol/L", "ref_high": "1e999999999"}}}
    _refused(rec, "observations.mma.ref_high")
    _refused({"id": "x", "patient": {"age_years": "1e-999999999"}}, "patient.age_years")


def test_twenty_significant_digits_are_still_read_exactly():
    a = b12kg.assess(_ferritin("29.999999999999999999"))     # 20 digits, below 30
    assert "LowFerritin" in a.codes
    a = b12kg.assess(_ferritin("30.000000000000000000"))     # trailing zeros are not significant
    assert "LowFerritin" not in a.codes


def test_decimal_places_beyond_what_the_store_compares_are_refused():
    """oxigraph compares xsd:decimal to 18 places; with more, every comparison with the literal is
    an error, so the patient would silently get no finding from it. The loader refuses such a
    number, as given or once converted to the unit it is compared in, naming the field."""
    _refused(_ferritin("29.9999999999999999999"), "observations.ferritin.value", "decimal places")
    _refused({"id": "x", "patient": {"sex": "female", "age_years": "40.0000000000000000001"}},
             "patient.age_years", "decimal places")
    iron = {"id": "x", "patient": dict(ADULT), "observations": {"iron": {"value": "100.000000000000001", "unit": "ug/dL"}}}
    _refused(iron, "observations.iron.value", "converted to umol/L", "has 19")
    iron["observations"]["iron"]["value"] = "100.00000000000001"      # 14 places, 18 once converted
    rec = b12kg.load_record(iron)
    assert str(rec.results["iron"].compared_value) == "17.910000000000001791"
    mma = {"id": "x", "patient": dict(ADULT),
           "observations": {"b12": {"value": 300, "unit": "ng/L", "ref_high": "900.0000000000000001"}}}
    rec = b12kg.load_record(mma)                                      # compared in ng/L: no conversion
    assert rec.results["b12"].ref_high_compared == Decimal("900.0000000000000001")


# ---------------------------------------------------------------------------------------------
# Files: size, unreadable paths
# ---------------------------------------------------------------------------------------------
class _OverBudget(BaseException):
    """Raised inside the code under test at its call budget (no `except Exception` catches it)."""


def _calls(fn, budget: int):
    """Run fn, counting the function calls it makes (Python and C, through a profile hook);
    return (its result, the count). The run is stopped and the test fails at `budget` calls, so
    an input that would make the code loop for minutes fails at once instead."""
    import sys

    count = 0

    def hook(frame, event, arg):
        nonlocal count
        if event == "call" or event == "c_call":
            count += 1
            if count > budget:
                raise _OverBudget

    sys.setprofile(hook)
    try:
        result = fn()
    except _OverBudget:
        pytest.fail(f"more than {budget} function calls")
    finally:
        sys.setprofile(None)
    return result, count


def _bounded_call(fn, *, calls: int | None, megabytes: float):
    """Run fn; return (its InputError, peak Python allocation in MB), asserting both bounds: at
    most `calls` function calls (None: not counted) and `megabytes` of peak memory."""
    import tracemalloc

    def refused():
        with pytest.raises(InputError) as exc:
            fn()
        return exc.value

    tracemalloc.start()
    try:
        err = _calls(refused, calls)[0] if calls is not None else refused()
        peak = tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()
    assert peak < megabytes, peak
    return err, peak


@pytest.mark.parametrize("suffix", [".yaml", ".json", ".ttl", ".nt", ".jsonld"])
def test_input_over_100_mb_is_refused_by_its_size_without_reading_it(tmp_path, suffix):
    from b12kg.api import MAX_INPUT_BYTES

    p = tmp_path / f"huge{suffix}"
    with open(p, "wb") as fh:               # sparse: 101 MiB on paper, nothing on disk
        fh.write(b"id: x\n" if suffix == ".yaml" else b"{")
        fh.truncate(MAX_INPUT_BYTES + 2**20)
    for call in (b12kg.load_record, b12kg.assess):   # first use imports lazily (what else ran in this worker varies)
        with pytest.raises(InputError):
            call(p)
    err, _ = _bounded_call(lambda: b12kg.load_record(p), calls=2_000, megabytes=20)
    assert err.issues[0].field == "file" and "byte limit" in str(err) and str(p) in str(err)
    err, _ = _bounded_call(lambda: b12kg.assess(p), calls=2_000, megabytes=20)
    assert "byte limit" in str(err)


def test_input_over_100_mb_written_for_real_is_refused_quickly(tmp_path):
    from b12kg.api import MAX_INPUT_BYTES

    p = tmp_path / "real.ttl"
    line = b"<urn:a> <urn:b> \"" + b"x" * 1000 + b"\" .\n"
    with open(p, "wb") as fh:
        for _ in range(MAX_INPUT_BYTES // len(line) + 1000):
            fh.write(line)
    err, _ = _bounded_call(lambda: b12kg.assess(p), calls=2_000, megabytes=20)
    assert "byte limit" in str(err)


@pytest.mark.parametrize("name", ["folder.yaml", "folder.json", "folder.ttl", "missing.yaml", "missing.ttl", "missing.jsonld"])
def test_unreadable_paths_are_refused_naming_the_file(tmp_path, name):
    p = tmp_path / name
    if name.startswith("folder"):
        p.mkdir()
    with pytest.raises(InputError) as exc:
        b12kg.assess(p)
    assert exc.value.issues[0].field == "file" and "cannot be read" in str(exc.value)


def test_a_device_without_a_true_size_is_read_only_up_to_the_limit(monkeypatch, tmp_path):
    import b12kg.inputs.files as api

    monkeypatch.setattr(api, "MAX_INPUT_BYTES", 1000)
    p = tmp_path / "dev.yaml"
    p.symlink_to("/dev/zero")                # stat says 0 bytes; reading never ends
    err, _ = _bounded_call(lambda: b12kg.load_record(p), calls=1_000, megabytes=5)
    assert "byte limit" in str(err)


# ---------------------------------------------------------------------------------------------
# YAML: aliases, nesting, integers (refused while parsing, at a line and column)
# ---------------------------------------------------------------------------------------------
def _laughs(levels: int) -> str:
    """Nested YAML aliases: `levels` lines that expand to 10**(levels + 1) values."""
    names = [f"l{i}" for i in range(levels + 1)]
    text = f"{names[0]}: &{names[0]} [x, x, x, x, x, x, x, x, x, x]\n"
    for prev, name in zip(names, names[1:]):
        text += f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 10) + "]\n"
    return text


@pytest.mark.parametrize("where", ["top", "value", "context"])
def test_yaml_alias_bomb_is_refused_at_once(tmp_path, where):
    # Before: nested aliases were expanded when the refusal message printed the value (10**9
    # values: three minutes and 5 GB); as unknown top-level keys they were silently accepted.
    tail = {"top": "", "value": "id: x\nobservations: {ferritin: {value: *l6, unit: ug/L}}\n",
            "context": "id: x\ncontext: *l6\n"}[where]
    p = tmp_path / "bomb.yaml"
    p.write_text(_laughs(6) + tail, encoding="utf-8")
    err, _ = _bounded_call(lambda: b12kg.load_record(p), calls=20_000, megabytes=20)
    assert "alias" in str(err) and "line 2, column" in str(err)


def test_yaml_alias_of_a_plain_value_is_refused_too(tmp_path):
    p = tmp_path / "alias.yaml"
    p.write_text("id: &i x\npatient: {sex: male, age_years: 50}\nobservations: {ferritin: {value: 5, unit: ug/L}}\n"
                 "context: [*i]\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"line 4, column 11: the alias \*i is not read"):
        b12kg.load_record(p)


@pytest.mark.parametrize("text", [
    "[" * 100_000 + "]" * 100_000,                                   # 10**5 levels (was RecursionError, no place)
    "id: x\nobservations: {ferritin: {unit: ug/L, value: " + "[" * 900 + "]" * 900 + "}}\n",
    "".join(" " * i + "- \n" for i in range(5000)),                  # block style
])
def test_deeply_nested_yaml_is_refused_at_a_line_and_column(tmp_path, text):
    p = tmp_path / "deep.yaml"
    p.write_text(text, encoding="utf-8")
    err, _ = _bounded_call(lambda: b12kg.load_record(p), calls=300_000, megabytes=200)
    assert "nested deeper than 64 levels" in str(err) and "at line" in str(err)


def test_yaml_integer_of_100000_digits_is_refused_at_its_place(tmp_path):
    p = tmp_path / "int.yaml"
    p.write_text("id: x\nobservations: {ferritin: {unit: ug/L, value: " + "1" * 100_000 + "}}\n", encoding="utf-8")
    err, _ = _bounded_call(lambda: b12kg.load_record(p), calls=1_000_000, megabytes=50)
    assert "line 2, column 46: an integer of more than 64 digits" in str(err)


def test_reading_a_small_record_allocates_about_its_size(tmp_path):
    # Before: every input was read with FileIO.read(100 MB + 1), which allocates that much first.
    import tracemalloc

    p = tmp_path / "small.yaml"
    p.write_text("id: x\nobservations: {ferritin: {value: 5, unit: ug/L}}\n", encoding="utf-8")
    b12kg.load_record(p)
    tracemalloc.start()
    try:
        b12kg.load_record(p)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 5 * 2**20, peak


# ---------------------------------------------------------------------------------------------
# JSON: nesting and integers
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".json", ".jsonld"])
@pytest.mark.parametrize("opener,closer", [("[", "]"), ('{"a":', "}")])
def test_json_nested_100000_levels_is_refused_at_a_line_and_column(tmp_path, suffix, opener, closer):
    # Before: "is not valid JSON: RecursionError", with no place.
    p = tmp_path / f"deep{suffix}"
    p.write_text("\n" + opener * 100_000 + "1" + closer * 100_000, encoding="utf-8")
    err, _ = _bounded_call(lambda: b12kg.assess(p), calls=5_000, megabytes=100)
    assert "nested deeper than 64 levels" in str(err)
    assert re.search(r"line 2,? column \d+", str(err)), str(err)


def test_json_integer_of_100000_digits_is_refused_naming_its_field(tmp_path):
    # Before: "is not valid JSON: ValueError" (Python's int-string limit), with no place.
    p = tmp_path / "int.json"
    p.write_text('{"id": "x", "observations": {"ferritin": {"unit": "ug/L", "value": ' + "1" * 100_000 + "}}}",
                 encoding="utf-8")
    err, _ = _bounded_call(lambda: b12kg.assess(p), calls=10_000, megabytes=50)
    assert [i.field for i in err.issues] == ["observations.ferritin.value"]


def test_json_with_bytes_that_are_not_utf8_names_the_byte(tmp_path):
    p = tmp_path / "bad.json"
    p.write_bytes(b'{"id": "\xff"}')
    with pytest.raises(InputError, match=r"at byte 8: invalid start byte"):
        b12kg.assess(p)
    p = tmp_path / "bad.yaml"
    p.write_bytes(b"id: \xff\n")
    with pytest.raises(InputError, match=r"at character 4: invalid start byte"):
        b12kg.assess(p)


# ---------------------------------------------------------------------------------------------
# Records given as Python structures (the API) and JSON nested less than the parser's limit
# ---------------------------------------------------------------------------------------------
def _nested(levels: int, leaf=1):
    root: list = []
    cur = root
    for _ in range(levels - 1):
        nxt: list = []
        cur.append(nxt)
        cur = nxt
    cur.append(leaf)
    return root


@pytest.mark.parametrize("where", ["id", "value", "context", "patient", "bundle"])
def test_python_structure_nested_100000_levels_is_refused_naming_the_path(where):
    # Before: RecursionError while the refusal message printed the value.
    deep = _nested(100_000)
    rec = _ferritin(5)
    field = {"id": "id", "value": "observations.ferritin.value", "context": "context", "patient": "patient",
             "bundle": "entry"}[where]
    if where == "value":
        rec["observations"]["ferritin"]["value"] = deep
    elif where == "bundle":
        rec = {"resourceType": "Bundle", "type": "collection", "entry": deep}
    else:
        rec[where] = deep
    err = _refused(rec, "nested deeper than 64 levels")
    assert err.issues[0].field.startswith(field + "[0]")


def test_json_nested_a_few_hundred_levels_is_refused_naming_the_path(tmp_path):
    # Parsed by json (under its recursion limit), then refused before the value is printed.
    p = tmp_path / "deep.json"
    p.write_text('{"id": "x", "observations": {"ferritin": {"unit": "ug/L", "value": ' + "[" * 900 + "]" * 900 + "}}}",
                 encoding="utf-8")
    err, _ = _bounded_call(lambda: b12kg.assess(p), calls=10_000, megabytes=50)
    assert err.issues[0].field.startswith("observations.ferritin.value[0][0]")


@pytest.mark.parametrize("where", ["id", "value", "age", "key"])
def test_python_integer_of_100000_digits_is_refused_naming_the_path(where):
    # Before: ValueError (Python's int-string limit) while the refusal message printed it.
    huge = 10**100_000 // 9                   # 111...1: int("1" * 100_000) is refused by Python itself
    rec = _ferritin(5)
    if where == "id":
        rec["id"] = huge
    elif where == "value":
        rec["observations"]["ferritin"]["value"] = huge
    elif where == "age":
        rec["patient"]["age_years"] = huge
    else:
        rec["observations"][huge] = {"value": 1, "unit": "ug/L"}
    err = _refused(rec, "integer of more than 64 digits")
    assert err.issues[0].field == {"id": "id", "value": "observations.ferritin.value", "age": "patient.age_years",
                                   "key": f"observations.<an integer of {huge.bit_length()} bits>"}[where]


def test_shared_python_values_are_counted_each_time_and_bounded(monkeypatch):
    # Ten lists of ten references each: 10**10 values when walked (YAML aliases, refused by the
    # YAML reader, make the same shape). Refused at the value limit, in bounded work: with the
    # limit lowered to 10,000 values, within 300,000 calls (the walk makes a few per value).
    monkeypatch.setattr("b12kg.inputs.files.MAX_VALUES", 10_000)
    shared: list = ["x"] * 10
    for _ in range(9):
        shared = [shared] * 10
    rec = _ferritin(5)
    rec["context"] = shared
    _refused(rec, "passes 10000 values, more than one record can hold", calls=300_000)


# ---------------------------------------------------------------------------------------------
# Thousands of results
# ---------------------------------------------------------------------------------------------
def _series(n: int) -> list[dict]:
    from datetime import datetime, timedelta

    t0 = datetime(2020, 1, 1)
    return [{"value": 5 + (i % 50), "unit": "ug/L", "time": (t0 + timedelta(minutes=i)).isoformat()} for i in range(n)]


def test_5000_results_of_one_analyte_are_read_in_bounded_time_and_memory():
    import tracemalloc

    rec = {"id": "series", "patient": dict(ADULT), "observations": {"ferritin": _series(5000)}}
    rec["observations"]["ferritin"][1234]["time"] = "2024-01-01T00:00:00"      # the latest, out of order (not in the future of the run)
    rec["observations"]["ferritin"][1234]["value"] = 7
    tracemalloc.start()
    try:
        r, load_calls = _calls(lambda: b12kg.load_record(rec), 2_000_000)
        peak = tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()
    a, assess_calls = _calls(lambda: b12kg.assess(rec), 3_000_000)
    assert r.results["ferritin"].value_as_given == "7" and len(r.superseded) == 4999
    assert "LowFerritin" in a.codes
    assert peak < 100, peak
    # The work grows with the number of results, not faster: 10 times the results of 500 make at
    # most 12 times the calls (a step quadratic in the results makes about 100 times).
    small = {"id": "series", "patient": dict(ADULT), "observations": {"ferritin": _series(500)}}
    assert load_calls < 12 * _calls(lambda: b12kg.load_record(small), 1_000_000)[1]
    assert assess_calls < 12 * _calls(lambda: b12kg.assess(small), 1_000_000)[1]


def test_10001_results_are_refused_at_once_naming_the_limit(monkeypatch):
    # At once: no result past the limit is read (each result read is one normalise_result call).
    read = []
    import b12kg.inputs.case as case

    normalise = case.normalise_result
    monkeypatch.setattr(case, "normalise_result", lambda *a, **k: read.append(1) or normalise(*a, **k))
    rec = {"id": "too-many", "patient": dict(ADULT), "observations": {"ferritin": _series(10_001)}}
    err = _refused(rec, "more than 10000 results", calls=None, megabytes=50)
    assert err.issues[-1].field == "observations" and len(read) == 10_000
    rec = {"id": "too-many", "patient": dict(ADULT),
           "observations": {"ferritin": _series(5001), "2276-4": _series(5000)}}      # across analytes
    _refused(rec, "more than 10000 results", calls=None, megabytes=50)
    assert len(read) == 20_000


@pytest.mark.parametrize("where", ["value", "ref_high", "age_years", "gestational_weeks", "csv"])
def test_a_number_string_of_100000_digits_is_refused(where, tmp_path):
    digits = "1" * 100_000
    if where == "csv":
        from b12kg.cohort import assess_cohort
        from b12kg.inputs.csv import case_to_row, csv_columns
        import csv as csvmod

        p = tmp_path / "c.csv"
        with open(p, "w", newline="", encoding="utf-8") as fh:
            w = csvmod.DictWriter(fh, fieldnames=csv_columns())
            w.writeheader()
            w.writerow(case_to_row(_ferritin(digits)))
            w.writerow(case_to_row(_ferritin(6)))
        assess_cohort(p, tmp_path / "first", engine="oxigraph", workers=1, progress=False)   # builds the engine
        # the budget holds the run's outputs too: summary.html's charts (matplotlib) take about a
        # million calls; a digit-by-digit reading of 100,000 digits would take billions
        s, _ = _calls(lambda: assess_cohort(p, tmp_path / "out", engine="oxigraph", workers=1, progress=False), 3_000_000)
        assert (s.read, s.assessed, s.refused) == (2, 1, 1)
        return
    rec = _ferritin(6)
    field = {"value": "observations.ferritin.value", "ref_high": "observations.mma.ref_high",
             "age_years": "patient.age_years", "gestational_weeks": "patient.gestational_weeks"}[where]
    if where == "value":
        rec["observations"]["ferritin"]["value"] = digits
    elif where == "ref_high":
        rec["observations"]["mma"] = {"value": 0.3, "unit": "umol/L", "ref_high": digits}
    else:
        rec["patient"][where] = digits
    err = _refused(rec, field)
    assert len(str(err)) < 2000


# -- b12kg query is bounded in time and memory (issue 11) ---------------------------------------
def _kb_store():
    import pyoxigraph as ox

    from b12kg.paths import ONTOLOGY_DIR

    store = ox.Store()
    store.bulk_load((ONTOLOGY_DIR / "modules" / "thresholds.ttl").read_bytes(), format=ox.RdfFormat.TURTLE)
    return store


def test_a_query_that_would_run_away_is_stopped_at_its_time_bound(capsys):
    from b12kg.cli.query import run_bounded

    cross = "SELECT * WHERE { ?a ?b ?c . ?d ?e ?f . ?g ?h ?i }"     # 10^10 rows over the thresholds module
    code, why = run_bounded(_kb_store(), cross, "tsv", seconds=2, memory_mb=2048)
    assert code == 1 and "time bound (2 s" in why


def test_a_query_that_needs_too_much_memory_is_stopped_at_its_memory_bound(capsys):
    from b12kg.cli.query import run_bounded

    sort_all = "SELECT ?a WHERE { ?a ?b ?c . ?d ?e ?f . ?g ?h ?i } ORDER BY ?c ?f ?i LIMIT 1"
    code, why = run_bounded(_kb_store(), sort_all, "tsv", seconds=120, memory_mb=300)
    assert code == 1 and "memory bound (300 MB" in why


def test_a_bounded_query_gives_its_answer(capsys):
    from b12kg.cli.query import run_bounded

    code, why = run_bounded(_kb_store(), "SELECT (COUNT(*) AS ?n) WHERE { ?s ?p ?o }", "json")
    out = capsys.readouterr().out
    assert (code, why) == (0, None)
    assert json.loads(out)["results"]["bindings"][0]["n"]["value"] == str(len(_kb_store()))   # SPARQL 1.1 JSON


# -- an NDJSON line has the byte limit of a file (issue 11) --------------------------------------
def test_an_ndjson_line_over_the_file_byte_limit_is_refused_without_being_held(tmp_path, monkeypatch):
    """A 400 MB NDJSON line was read whole (1.28 GB). Here the limit is lowered to 64 KB and the line
    is 8 MB: it is refused by its line, the lines around it are assessed, and well under the line's
    size is allocated while planning and reading it (it is skipped 1 MB at a time)."""
    import tracemalloc

    from b12kg.cohort import planner
    from b12kg.cohort.worker import parse_raw

    bundle = (Path(__file__).resolve().parents[1] / "vendor" / "shared" / "cases" / "fhir" /
              "p21-dual-deficiency.bundle.json").read_text(encoding="utf-8")
    one_line = json.dumps(json.loads(bundle))
    path = tmp_path / "c.ndjson"
    path.write_text(one_line + "\n" + '{"x": "' + "a" * 8_000_000 + '"}\n' + one_line + "\n", encoding="utf-8")
    monkeypatch.setattr(planner, "MAX_INPUT_BYTES", 64 * 1024)
    tracemalloc.start()
    plans = list(planner.plan_chunks(path, 10))
    raws = [r for p in plans for r in planner.read_chunk(p)]
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert [r.ref for r in raws] == ["line 1", "line 2", "line 3"] and peak < 8_000_000 / 2
    with pytest.raises(InputError, match=r"line 2: '8000010 bytes' is over the 65536 byte limit"):
        parse_raw(raws[1], None)
    assert parse_raw(raws[2], None).results
    assert [r.ref for r in planner.read_ndjson(path)] == ["line 1", "line 2", "line 3"]

