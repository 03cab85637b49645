"""The switch of a cohort run's outputs into the ``--out`` folder, all or nothing (issue 11).

The output files are written whole beside the parts first (the runner's assembler), then switched
in by ``switch_outputs``, in an order that never leaves outputs of two runs side by side:

1. ``summary.json``, the manifest of a complete set, is removed: from here on the folder says it
   holds no complete set;
2. every output file of the earlier run is removed (a smaller set must not keep an old
   ``inferred.nq`` beside the new files);
3. each new file is renamed into place (same file system: each rename is atomic);
4. the manifest is written (temporary file, fsync, rename) with the size of every file of the set.

A run killed or failing before 1 leaves the earlier complete set; between 1 and 4, a folder with
no ``summary.json`` and only files of the new run (never a mix): rerun with the same input and it
resumes from its parts. The outputs are complete exactly when ``summary.json`` is present and its
``outputs`` sizes match (``verify_outputs``). A write that fails (a full disk, a read-only
folder) is an ``OutputError`` naming the folder, the file and the cause, never a traceback, and no
temporary file is left in the output folder."""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from ..errors import B12kgError

MANIFEST = "summary.json"


class OutputError(B12kgError):
    """The outputs could not be written: names the folder, the file and why."""


def output_error(out: Path, exc: OSError, when: str) -> OutputError:
    """A clear message for an OSError met while writing the outputs of a run into ``out``."""
    hint = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exhausted",
            errno.EROFS: "the folder is on a read-only file system", errno.EACCES: "no permission to write there",
            errno.EPERM: "no permission to write there"}.get(exc.errno or 0, exc.strerror or str(exc))
    where = f" ({exc.filename})" if exc.filename else ""
    return OutputError(f"{out}: cannot write the outputs {when}: {hint}{where}. No output of this run was switched "
                       "in; the folder holds the last complete set (summary.json present) or none; rerun to resume")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def switch_outputs(out: Path, staged: Mapping[str, Path], manifest: dict, *, names: Iterable[str]) -> None:
    """Switch the staged files (output name -> a complete, synced file on the same file system)
    into ``out`` and write the manifest last; ``names``: every output name a run may write."""
    tmp = out / (MANIFEST + ".tmp")
    try:
        for name in [MANIFEST, *names]:
            try:
                os.unlink(out / name)
            except FileNotFoundError:
                pass
        _fsync_dir(out)
        for name, src in staged.items():
            os.replace(src, out / name)
        _fsync_dir(out)
        body = dict(manifest, outputs={name: (out / name).stat().st_size for name in sorted(staged)})
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(body, indent=2, ensure_ascii=False))   # key order kept (age bands in age order)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, out / MANIFEST)
        _fsync_dir(out)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise output_error(out, exc, "at the switch of the new set") from None


def verify_outputs(out: str | Path) -> list[str]:
    """Why the folder does not hold a complete set of outputs (empty when it does)."""
    out = Path(out)
    try:
        manifest = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return [f"{out / MANIFEST} is missing or unreadable: the folder holds no complete set"]
    problems = []
    for name, size in sorted(manifest.get("outputs", {}).items()):
        p = out / name
        if not p.exists():
            problems.append(f"{p} is missing")
        elif p.stat().st_size != size:
            problems.append(f"{p} is {p.stat().st_size} bytes, not the {size} of the set")
    return problems
