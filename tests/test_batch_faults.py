"""Batch faults (issue 5): corrupt records mixed with good ones, and a cohort run killed midway.

- A cohort of a few thousand generated patients with about 1 % corrupt records
  (b12kg.synth.generate_invalid): every good record is in findings.ndjson, every bad one in
  rejects.ndjson with its reason and where it was, and read = assessed + refused.
- Records that break the loaders in unusual ways (lone surrogates, deep nesting, huge numbers,
  bytes that are not UTF-8) are refused one by one; the run completes.
- A run killed with SIGKILL after some parts exist, then rerun: the outputs equal those of an
  uninterrupted run, line for line, with no duplicate, and no output file exists before the run
  completes (only the .parts folder).

The 10,000-patient version of the cohort check is tests/fuzz/cohort_10k.py (see its timing)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from b12kg.cohort import assess_cohort

REPO = Path(__file__).resolve().parent.parent
BUNDLE = REPO / "vendor" / "shared" / "cases" / "fhir" / "p21-dual-deficiency.bundle.json"


def _lines(path: Path) -> list[str]:
    """NDJSON lines (split at newline only: U+2028 may occur inside a JSON string)."""
    return [x for x in path.read_text(encoding="utf-8").split("\n") if x]


# ---------------------------------------------------------------------------------------------
# Records that used to stop a whole run
# ---------------------------------------------------------------------------------------------
def test_ndjson_bundle_with_a_lone_surrogate_is_refused_and_the_run_completes(tmp_path):
    # Before: the pydantic issue carried the raw '\ud800'; writing rejects.ndjson as UTF-8 raised
    # UnicodeEncodeError and the run stopped.
    line = BUNDLE.read_text(encoding="utf-8").replace("\n", " ")
    bad = line.replace('"p21"', '"\\ud800"', 1)
    path = tmp_path / "b.ndjson"
    path.write_text(line + "\n" + bad + "\n" + line + "\n", encoding="utf-8")
    s = assess_cohort(path, tmp_path / "out", engine="oxigraph", workers=1, progress=False)
    assert (s.read, s.assessed, s.refused) == (3, 2, 1)
    rej = [json.loads(x) for x in _lines(tmp_path / "out" / "rejects.ndjson")]
    assert rej[0]["source"] == "line 2" and rej[0]["issues"][0]["field"] == "entry[0].resource.id"


@pytest.mark.parametrize("where", ["id", "unit", "key", "context"])
def test_folder_record_with_a_lone_surrogate_is_refused_and_the_run_completes(tmp_path, where):
    rec = {"id": "x", "patient": {"sex": "female", "age_years": 40},
           "observations": {"ferritin": {"value": 6, "unit": "ug/L"}}, "context": ["infection"]}
    bad = copy.deepcopy(rec)
    if where == "id":
        bad["id"] = "a\ud800"
    elif where == "unit":
        bad["observations"]["ferritin"]["unit"] = "ug/L\udc00"
    elif where == "key":
        bad["observations"]["ferr\ud800"] = {"value": 1, "unit": "ug/L"}
    else:
        bad["context"] = ["\ud800"]
    folder = tmp_path / "records"
    folder.mkdir()
    (folder / "a.json").write_text(json.dumps(rec), encoding="utf-8")
    (folder / "b.json").write_text(json.dumps(bad), encoding="utf-8")       # ensure_ascii: "\ud800" escaped
    s = assess_cohort(folder, tmp_path / "out", engine="oxigraph", workers=1, progress=False)
    assert (s.read, s.assessed, s.refused) == (2, 1, 1)
    rej = json.loads(_lines(tmp_path / "out" / "rejects.ndjson")[0])
    assert rej["source"].endswith("b.json") and rej["issues"][0]["field"]
