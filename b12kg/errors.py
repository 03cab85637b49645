"""Errors. Every refusal names the field, the value and what is wrong with it."""

from __future__ import annotations

from dataclasses import dataclass


class B12kgError(Exception):
    """Base class of b12kg's errors."""


@dataclass(frozen=True)
class Issue:
    """One problem with one field of an input record."""

    field: str
    value: object
    problem: str

    def __str__(self) -> str:
        # a file is named whole (the user's own path); a value is cut at 80 characters
        shown = repr(str(self.value)) if self.field == "file" and self.value is not None else _show(self.value)
        return f"{self.field}: {shown} {self.problem}" if shown else f"{self.field}: {self.problem}"

    def to_json(self) -> dict:
        return {"field": self.field, "value": _jsonable(self.value), "problem": self.problem}


def _show(value: object) -> str:
    if value is None:
        return ""
    text = str(value)
    if len(text) > 80:
        text = text[:77] + "..."
    return repr(text) if isinstance(value, str) else text


def _jsonable(value: object):
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


class InputError(B12kgError):
    """The input was refused. ``issues`` lists every problem found, each naming its field."""

    def __init__(self, issues: list[Issue], *, source: str | None = None):
        self.issues = list(issues)
        self.source = source
        where = f"{source}: " if source else ""
        super().__init__(where + "; ".join(str(i) for i in self.issues))

    def to_json(self) -> dict:
        return {"source": self.source, "issues": [i.to_json() for i in self.issues]}


class RuleError(B12kgError):
    """A rule could not be loaded or run."""
