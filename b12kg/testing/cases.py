"""Run a folder of acceptance cases (the format of shared/cases/README.md): every *.yaml at any
depth, valid cases checked against their expected and forbidden findings and explanation words,
invalid cases checked to be refused with an error naming the expected words."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from ..api import assess
from ..errors import B12kgError, InputError
from ..inputs import load_record
from ..inputs.files import read_file


@dataclass(frozen=True)
class CaseResult:
    case_id: str
    path: str
    passed: bool
    detail: str


def case_files(folder: str | Path) -> list[Path]:
    root = Path(folder)
    if root.is_file():
        return [root]
    return sorted(p for p in root.rglob("*.yaml") if p.is_file())


def run_case(path: Path, *, engine: str = "oxigraph") -> CaseResult:
    try:
        data = read_file(path)
    except InputError as exc:
        return CaseResult(path.stem, str(path), False, f"case file unreadable: {exc}")
    if not isinstance(data, Mapping) or not isinstance(data.get("expect"), Mapping):
        return CaseResult(path.stem, str(path), False, "not a case: no 'expect' mapping")
    cid = str(data.get("id", path.stem))
    expect = data["expect"]
    record = {k: v for k, v in data.items() if k not in ("expect", "claims")}
    if expect.get("error"):
        return _run_invalid(cid, path, record, expect, engine)
    try:
        a = assess(_with_base(record, path), engine=engine)
    except B12kgError as exc:
        return CaseResult(cid, str(path), False, f"refused, but the case is valid: {exc}")
    problems = []
    codes = set(a.codes)
    missing = [c for c in expect.get("findings") or [] if c not in codes]
    forbidden = [c for c in expect.get("not_findings") or [] if c in codes]
    if missing:
        problems.append("missing " + ", ".join(missing))
    if forbidden:
        problems.append("forbidden " + ", ".join(forbidden))
    unassessed = {f.code for f in a.unassessed}
    # expect.unassessed (findings.md v2, S1): codes that must come out unassessed, neither derived
    # nor simply absent
    not_unassessed = [c for c in expect.get("unassessed") or [] if c not in unassessed or c in codes]
    if not_unassessed:
        problems.append("not unassessed " + ", ".join(
            f"{c} ({'derived' if c in codes else 'absent'})" for c in not_unassessed))
    for code, words in (expect.get("explanation_mentions") or {}).items():
        f = a.finding(code)
        if f is None:
            problems.append(f"no {code} to explain")
            continue
        absent = [w for w in words if str(w).lower() not in f.explanation.lower()]
        if absent:
            problems.append(f"explanation of {code} lacks " + ", ".join(map(repr, absent)))
    if problems:
        return CaseResult(cid, str(path), False, "; ".join(problems))
    return CaseResult(cid, str(path), True, f"{len(codes)} findings" +
                      (f", {len(unassessed)} unassessed" if unassessed else ""))


def _with_base(record: Mapping[str, Any], path: Path) -> Any:
    if "input" in record:
        return load_record(record, base_dir=path.parent)
    return record


def _run_invalid(cid: str, path: Path, record: Mapping, expect: Mapping, engine: str) -> CaseResult:
    try:
        a = assess(_with_base(record, path), engine=engine)
    except InputError as exc:
        message = str(exc)
        absent = [w for w in expect.get("error_mentions") or [] if str(w).lower() not in message.lower()]
        if absent:
            return CaseResult(cid, str(path), False, f"refused, but the message lacks {', '.join(map(repr, absent))}: {message}")
        return CaseResult(cid, str(path), True, f"refused: {message}")
    except B12kgError as exc:
        return CaseResult(cid, str(path), False, f"failed with a non-input error: {exc}")
    return CaseResult(cid, str(path), False, f"accepted ({len(a.findings)} findings), but must be refused")
