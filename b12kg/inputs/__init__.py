"""Inputs: one module per format, and ``load_record``, the one way in for a single record.

- ``files``: bounded reading, safe YAML, exact-decimal JSON, the structure check;
- ``record``: ``PatientRecord`` and ``Result``, the one normalised form of every input;
- ``normalise``: the checks every format shares (numbers, units, plausibility, time, age, the
  latest result, derived TSAT, notes);
- ``case`` (YAML/JSON case records), ``fhir`` (FHIR R4 Bundles), ``rdf`` (b12kg's patient
  vocabulary), ``csv`` (the wide cohort CSV).

>>> rec = load_record({"id": "x", "observations": {"ferritin": {"value": "<8", "unit": "ng/mL"}}})
>>> rec.results["ferritin"].comparator, str(rec.results["ferritin"].compared_value), rec.results["ferritin"].compared_unit
('<', '8', 'ug/L')
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import InputError, Issue
from .case import record_from_case
from .fhir import is_bundle, record_from_bundle
from .files import check_structure, read_file
from .normalise import check_profile, with_profile
from .rdf import record_from_rdf_file
from .record import PatientRecord, Result

__all__ = ["load_record", "PatientRecord", "Result"]


def load_record(source: Any, *, profile: str | None = None, base_dir: Path | None = None) -> PatientRecord:
    """A validated record from a PatientRecord, a case dict, a FHIR Bundle dict, or a file
    (.yaml/.yml/.json case or Bundle, .ttl/.jsonld/.nt in b12kg's patient vocabulary)."""
    if isinstance(source, PatientRecord):
        return with_profile(source, profile) if profile else source
    if isinstance(source, (str, Path)):
        p = Path(source)
        if p.suffix.lower() in (".ttl", ".jsonld", ".nt", ".rdf"):
            return record_from_rdf_file(p, profile=profile)
        data = read_file(p)
        return load_record(data, profile=profile, base_dir=p.parent) if not isinstance(data, Mapping) else \
            _from_mapping(data, profile=profile, base_dir=p.parent, source=str(p))
    if isinstance(source, Mapping):
        return _from_mapping(source, profile=profile, base_dir=base_dir, source=None)
    raise InputError([Issue("record", type(source).__name__, "is not a record, a mapping or a file path")])


# Fields a case may hold beside `input:` (a file to read): about the case, or naming it.
_BESIDE_INPUT = frozenset({"input", "id", "profile", "expect", "claims", "description", "corruption"})


def _from_mapping(data: Mapping, *, profile: str | None, base_dir: Path | None, source: str | None) -> PatientRecord:
    if profile is not None:
        check_profile(profile, source=source)
    if is_bundle(data):  # record_from_bundle checks the structure itself (it is also called directly)
        return record_from_bundle(data, source=source, profile=profile or "default")
    check_structure(data, source=source)
    if "input" in data:
        beside = sorted((str(k) for k in data if k not in _BESIDE_INPUT), key=str)
        if beside:
            raise InputError([Issue(k, None, "is beside `input:`, which names the file that holds the record: "
                                    f"only {', '.join(sorted(_BESIDE_INPUT - {'input'}))} may stand beside it, "
                                    "so this field would be dropped") for k in beside], source=source)
        ref = data["input"]
        if not isinstance(ref, str) or "://" in ref:
            raise InputError([Issue("input", ref, "is not a relative file path (nothing is fetched)")], source=source)
        target = (base_dir or Path.cwd()) / ref
        inner = read_file(target)
        if not isinstance(inner, Mapping):
            raise InputError([Issue("input", ref, "does not hold a record or a Bundle")], source=source)
        prof = profile or data.get("profile") or "default"
        rec = _from_mapping(inner, profile=prof, base_dir=target.parent, source=str(target))
        if "id" in data and not is_bundle(inner):
            rec.id = str(data["id"])
        return rec
    return record_from_case(data, source=source, profile=profile)
