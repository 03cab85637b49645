"""Reading what a user gives b12kg, safely: files of bounded size, YAML without tags or aliases,
JSON with exact decimals and no key twice, and a structure check (depth, size, integers, text)
before anything reads, prints or recurses into a record."""

from __future__ import annotations

import json
import re
import stat
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from ..errors import InputError, Issue
from .normalise import NOT_TEXT, is_text, shown_text
from .record import MAX_DEPTH, MAX_INT_DIGITS
from ..cache import once

MAX_INPUT_BYTES = 100 * 1024 * 1024


def read_bytes(p: Path) -> bytes:
    """The bytes of an input file, refused (InputError naming the file) when it cannot be read
    (missing, a folder, no permission) or is over MAX_INPUT_BYTES, which is told from its size
    before reading and enforced while reading (a device or a growing file reports no true size)."""
    try:
        st = p.stat()
        if stat.S_ISFIFO(st.st_mode) or stat.S_ISSOCK(st.st_mode):
            raise InputError([Issue("file", str(p), "is a pipe or a socket, not a file: b12kg reads files "
                                    "(a pipe could keep it waiting for ever)")])
        size = st.st_size
        if size <= MAX_INPUT_BYTES:
            with open(p, "rb") as fh:
                data = fh.read(size + 1)      # read(n) allocates n bytes: ask for what stat says
                if len(data) > size:          # it said too little: read on, up to the limit
                    buf = bytearray(data)
                    while len(buf) <= MAX_INPUT_BYTES:
                        more = fh.read(min(1 << 20, MAX_INPUT_BYTES + 1 - len(buf)))
                        if not more:
                            break
                        buf += more
                    data = bytes(buf)
            size = max(size, len(data))
    except OSError as exc:
        raise InputError([Issue("file", str(p), f"cannot be read: {exc.strerror or exc}")]) from None
    if size > MAX_INPUT_BYTES:
        raise InputError([Issue("file", str(p), f"is {size}{'+' if size == MAX_INPUT_BYTES + 1 else ''} bytes, "
                                f"over the {MAX_INPUT_BYTES} byte limit for one record")])
    return data




# The YAML 1.2 core schema's implicit types (https://yaml.org/spec/1.2.2/#1032-tag-resolution):
# (tag, pattern, possible first characters).
_YAML_12_CORE = (
    ("tag:yaml.org,2002:null", r"^(?: ~ | null | Null | NULL | )$", ("~", "n", "N", "")),
    ("tag:yaml.org,2002:bool", r"^(?: true | True | TRUE | false | False | FALSE )$", "tTfF"),
    ("tag:yaml.org,2002:int", r"^(?: [-+]?[0-9]+ | 0o[0-7]+ | 0x[0-9a-fA-F]+ )$", "-+0123456789"),
    ("tag:yaml.org,2002:float", r"""^(?: [-+]? (?: \.[0-9]+ | [0-9]+ (?: \.[0-9]* )? ) (?: [eE][-+]?[0-9]+ )?
                                      | [-+]? \. (?: inf | Inf | INF ) | \. (?: nan | NaN | NAN ) )$""", "-+0123456789."),
)


def _yaml_decimal(loader, node) -> Decimal | float:
    """A YAML float as the exact decimal it spells (as JSON's are read): 29.99999999999999999 is not
    30.0. Infinity and NaN stay floats, which every number check refuses."""
    text = str(node.value)
    if text.lstrip("+-").lower() in (".inf", ".nan"):
        return loader.construct_yaml_float(node)
    return Decimal(text)


@once
def _yaml_loader():
    """yaml.SafeLoader (no tags beyond the YAML core ones), and: no aliases (a record needs none,
    and ten lines of nested aliases expand to a billion values), at most MAX_DEPTH levels of
    nesting (deeper raised RecursionError), integers of at most MAX_INT_DIGITS digits, no key
    twice in one mapping (PyYAML keeps the last value silently). Each refusal carries the line
    and column where it happened."""
    from yaml.composer import ComposerError
    from yaml.constructor import ConstructorError

    class RecordLoader(yaml.SafeLoader):
        depth = 0

        def compose_node(self, parent, index):
            event = self.peek_event()
            if isinstance(event, yaml.AliasEvent):
                raise ComposerError(None, None, f"the alias *{event.anchor} is not read: b12kg reads no YAML "
                                    "aliases; write the value out", event.start_mark)
            self.depth += 1
            try:
                if self.depth > MAX_DEPTH:
                    raise ComposerError(None, None, f"nested deeper than {MAX_DEPTH} levels", event.start_mark)
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

        def construct_mapping(self, node, deep=False):
            if isinstance(node, yaml.MappingNode):
                self.flatten_mapping(node)
                first: dict = {}
                for key_node, _ in node.value:
                    key = self.construct_object(key_node, deep=True)
                    try:
                        seen = first.setdefault(key, key_node.start_mark)
                    except TypeError:  # an unhashable key: the base class says so
                        continue
                    if seen is not key_node.start_mark:
                        raise ConstructorError(None, None, f"the key {key!r} appears twice in one mapping (first at "
                                               f"line {seen.line + 1}): which of the values counts is not guessed",
                                               key_node.start_mark)
            return super().construct_mapping(node, deep)

        def construct_yaml_int(self, node):
            text = str(node.value)
            if len(text) > MAX_INT_DIGITS:
                raise ConstructorError(None, None, f"an integer of more than {MAX_INT_DIGITS} digits", node.start_mark)
            sign = -1 if text[:1] == "-" else 1
            body = text.lstrip("+-")
            if body[:2] == "0o":
                return sign * int(body[2:], 8)
            if body[:2] == "0x":
                return sign * int(body[2:], 16)
            return sign * int(body)            # YAML 1.2: "0130" is 130, never octal

    # YAML 1.2 core schema, not PyYAML's YAML 1.1: no octal "0130" (88), no sexagesimal "1:30" (90),
    # no "yes"/"no"/"on"/"off" booleans, no "1_000": such forms stay text, so a field that needs a
    # number or true/false refuses them, naming the field, instead of reading another value.
    RecordLoader.yaml_implicit_resolvers = {}
    for tag, pattern, first in _YAML_12_CORE:
        RecordLoader.add_implicit_resolver(tag, re.compile(pattern, re.X), list(first))  # type: ignore[arg-type]
    RecordLoader.add_constructor("tag:yaml.org,2002:int", RecordLoader.construct_yaml_int)
    RecordLoader.add_constructor("tag:yaml.org,2002:bool", lambda loader, node: node.value.lower() == "true")
    RecordLoader.add_constructor("tag:yaml.org,2002:float", _yaml_decimal)
    return RecordLoader


def read_file(path: str | Path) -> Any:
    """Parse a YAML or JSON file (safely: no YAML tags, no aliases, bounded nesting, decimals exact)."""
    p = Path(path)
    text = read_bytes(p)
    suffix = p.suffix.lower()
    try:
        if suffix == ".json":
            return load_json(text)
        return yaml.load(text, Loader=_yaml_loader())
    except Exception as exc:  # yaml.YAMLError, json.JSONDecodeError, UnicodeDecodeError, RecursionError
        where = ""
        problem = getattr(exc, "problem", None) or getattr(exc, "msg", None)
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        elif getattr(exc, "lineno", None):
            where = f" at line {exc.lineno}, column {exc.colno}"
        elif isinstance(exc, UnicodeDecodeError):
            where, problem = f" at byte {exc.start}", f"{exc.reason} ({exc.encoding})"
        elif isinstance(getattr(exc, "position", None), int):   # yaml.reader.ReaderError
            where, problem = f" at character {exc.position}", getattr(exc, "reason", None)
        raise InputError([Issue("file", str(p), f"is not valid {'JSON' if suffix == '.json' else 'YAML'}{where}: "
                                f"{problem or exc.__class__.__name__}")]) from None


def load_json(text: str | bytes) -> Any:
    """JSON with decimals kept exact (FHIR decimals are decimals). An integer of more than
    MAX_INT_DIGITS digits is read as a Decimal (Python refuses to read it as an int, with no
    place in the error), so the record's checks refuse it naming its field; nesting too deep for
    the parser is a JSONDecodeError at the line and column where it passes MAX_DEPTH levels."""
    try:
        return json.loads(text, parse_float=Decimal, parse_int=_json_int, object_pairs_hook=_json_object)
    except RecursionError:
        doc = text if isinstance(text, str) else text.decode(json.detect_encoding(text), "replace")
        raise json.JSONDecodeError(f"nested deeper than {MAX_DEPTH} levels", doc, _too_deep(doc, MAX_DEPTH)) from None


class DuplicateKeys(dict):
    """A JSON object that named a key more than once (json keeps the last value silently); the
    structure check refuses it naming the key's path (check_structure)."""

    duplicate_keys: tuple = ()


def _json_object(pairs: list) -> dict:
    d = dict(pairs)
    if len(d) == len(pairs):
        return d
    seen: set = set()
    out = DuplicateKeys(d)
    out.duplicate_keys = tuple(k for k, _ in pairs if k in seen or seen.add(k))
    return out


def _json_int(text: str) -> int | Decimal:
    return int(text) if len(text) <= MAX_INT_DIGITS else Decimal(text)


_JSON_TOKENS = re.compile(r'\\.|["\[\]{}]', re.DOTALL)


def _too_deep(doc: str, limit: int) -> int:
    """The index where JSON text first opens more than ``limit`` arrays and objects (0 if never)."""
    depth = 0
    in_string = False
    for m in _JSON_TOKENS.finditer(doc):
        c = m.group()
        if in_string:
            in_string = c != '"'
        elif c == '"':
            in_string = True
        elif c in "[{":
            depth += 1
            if depth > limit:
                return m.start()
        elif c in "]}":
            depth -= 1
    return 0


MAX_VALUES = 2_000_000     # values in one record, counted each time they are reached


def check_structure(data: Any, *, source: str | None = None) -> None:
    """Refuse, naming the path, a parsed record that nests deeper than MAX_DEPTH levels, holds
    more than MAX_VALUES values (a value shared by several parents, as a Python structure can
    share them, counts each time), an integer of more than MAX_INT_DIGITS digits or a string
    with a lone surrogate (JSON can hold one; no file, IRI or literal can): walked without
    recursion, before anything reads, prints or recurses into it."""
    big = 10 ** MAX_INT_DIGITS
    stack: list = [(data, None, 0)]
    seen = 0
    while stack:
        node, trail, depth = stack.pop()
        seen += 1
        problem = None
        if depth > MAX_DEPTH:
            problem = f"is nested deeper than {MAX_DEPTH} levels"
        elif seen > MAX_VALUES:
            problem = f"is where the record passes {MAX_VALUES} values, more than one record can hold"
        elif isinstance(node, int) and not isinstance(node, bool) and not -big < node < big:
            problem = f"is an integer of more than {MAX_INT_DIGITS} digits"
        elif isinstance(node, str) and not is_text(node):
            problem = NOT_TEXT
        elif isinstance(node, Mapping):
            dups = getattr(node, "duplicate_keys", None)
            if dups:
                raise InputError([Issue(_path((dups[0], trail)), None, "appears twice in one JSON object: which of "
                                        "the values counts is not guessed")], source=source)
            for k, v in node.items():
                if isinstance(k, int) and not isinstance(k, bool) and not -big < k < big:
                    raise InputError([Issue(_path((k, trail)), None, f"is a key: an integer of more than "
                                            f"{MAX_INT_DIGITS} digits")], source=source)
                if isinstance(k, str) and not is_text(k):
                    raise InputError([Issue(_path((k, trail)), None, f"is a key that {NOT_TEXT}")], source=source)
                stack.append((v, (k, trail), depth + 1))
        elif isinstance(node, (list, tuple)):
            stack.extend((v, (i, trail), depth + 1) for i, v in enumerate(node))
        if problem:
            raise InputError([Issue(_path(trail), None, problem)], source=source)


def _path(trail) -> str:
    """'observations.ferritin[2].value' from the linked (key, parent) trail of a value."""
    parts: list[str] = []
    while trail is not None:
        key, trail = trail
        if isinstance(key, str) and not is_text(key):
            key = shown_text(key)
        if isinstance(key, int) and not isinstance(key, bool) and key.bit_length() > 200:
            key = f"<an integer of {key.bit_length()} bits>"
        parts.append(f"[{key}]" if isinstance(key, int) and not isinstance(key, bool) else f".{key}")
    return "".join(reversed(parts)).lstrip(".") or "record"
