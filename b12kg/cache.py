"""A disk cache for what b12kg derives from its own files at start-up: the rules compiled for the
cohort engine and the rules' SPARQL Update texts for pyoxigraph (parsing 80 SPARQL rules with rdflib
takes about 2 s), the knowledge base as N-Triples, and the table of units each result is compared
in (building the UCUM unit registry takes about 1 s). Without it a 1,000-patient
cohort spends most of its time starting up.

Each entry is keyed by a fingerprint of everything it is derived from: the b12kg version, the
Python and rdflib versions, and the bytes of every ontology and rule file and of the b12kg modules
that build the entries. Change any of them and the entry is simply not found, then rebuilt. An
entry that cannot be read (truncated, from another version, corrupt) is rebuilt too; a cache
folder that cannot be written is not an error, only slower.

Where: ``$B12KG_CACHE_DIR`` if set (``off`` turns the cache off), else ``$XDG_CACHE_HOME/b12kg``,
else ``~/.cache/b12kg``. Entries are pickles that b12kg wrote itself in the user's own cache
folder; like every cache of that kind (pip's, numba's), the folder must not be writable by others.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import os
import pickle
import sys
import tempfile
import threading
from pathlib import Path
from typing import Callable, TypeVar

from ._version import __version__
from .paths import ONTOLOGY_DIR, RULES_DIR

T = TypeVar("T")
_PKG = Path(__file__).resolve().parent
_MAGIC = b"b12kg-cache 1\n"
# One lock for every first-use build: two threads that both find a knowledge-base table missing
# must not both build it (rdflib's SPARQL parser, pyparsing, is not thread-safe), and a single
# lock cannot deadlock however the builders call one another.
_BUILD_LOCK = threading.RLock()


def import_once(name: str):
    """Import a costly module on first use (pyshacl, the FHIR models, an engine), under the build
    lock: two threads importing one package's modules at once can meet it half initialised."""
    with _BUILD_LOCK:
        return importlib.import_module(name)


def once(fn: Callable[..., T]) -> Callable[..., T]:
    """Memoise ``fn`` by its arguments, thread-safely: the first call with given arguments builds
    the value under the build lock, every later call returns it without locking."""
    results: dict = {}

    @functools.wraps(fn)
    def wrapper(*args):
        try:
            return results[args]
        except KeyError:
            pass
        with _BUILD_LOCK:
            if args not in results:
                results[args] = fn(*args)
            return results[args]

    wrapper.cache_clear = results.clear  # type: ignore[attr-defined]
    return wrapper


def _sources() -> list[Path]:
    """The code a cached entry may be shaped by: every module of the package, found on disk (not
    listed by hand, so a moved or new module cannot be missed)."""
    return sorted(_PKG.rglob("*.py"))


def cache_dir() -> Path | None:
    """The cache folder, or None when the cache is turned off."""
    env = os.environ.get("B12KG_CACHE_DIR")
    if env is not None:
        return None if env.strip().lower() in ("", "off", "0", "none") else Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "b12kg"


@once
def fingerprint() -> str:
    import rdflib

    h = hashlib.sha256()
    h.update(f"b12kg {__version__}; python {sys.version}; rdflib {rdflib.__version__}\n".encode())
    files = sorted(ONTOLOGY_DIR.rglob("*.ttl")) + sorted(RULES_DIR.rglob("*.ttl")) + _sources()
    for f in files:
        h.update(str(f.relative_to(f.parents[1]) if f.is_relative_to(_PKG) else f.name).encode() + b"\0")
        h.update(f.read_bytes())
        h.update(b"\0")
    return h.hexdigest()[:32]


def entry_path(name: str) -> Path | None:
    d = cache_dir()
    return None if d is None else d / f"{name}-{fingerprint()}.pickle"


def load_or_build(name: str, build: Callable[[], T], expect: type | tuple[type, ...] | None = None) -> T:
    """The cached entry ``name`` for the current fingerprint, else ``build()`` (and store it). An
    entry is used only when its content hash verifies and, with ``expect``, its value is of that
    type; anything else (truncated, one changed byte, another format, a wrong type) is rebuilt."""
    path = entry_path(name)
    if path is not None:
        value = _read(path)
        if value is not _MISSING and (expect is None or isinstance(value, expect)):
            return value
    value = build()
    if path is not None:
        _store(path, value)
    return value


_MISSING = object()


def _read(path: Path):
    try:
        data = path.read_bytes()
    except OSError:
        return _MISSING
    head = len(_MAGIC) + 64 + 1
    if not data.startswith(_MAGIC) or len(data) < head or data[head - 1:head] != b"\n":
        return _MISSING
    digest, payload = data[len(_MAGIC):head - 1], data[head:]
    if hashlib.sha256(payload).hexdigest().encode() != digest:
        return _MISSING
    try:
        return pickle.loads(payload)
    except Exception:                           # unreadable although its hash verifies: rebuild
        return _MISSING


def _store(path: Path, value) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        data = _MAGIC + hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload
        fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    except Exception:
        pass                                    # not cached: only slower next time
