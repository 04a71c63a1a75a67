"""Writing a report folder without harming anything seqlab did not write.

A folder is seqlab's when it holds the manifest ``.seqlab-report.json`` (the files the
last build wrote) or is empty, or holds nothing but the names a report writes (a folder
from before manifests existed). Anything else is the user's: the build refuses rather
than overwrite it. Within its own folder a build replaces its files atomically, removes
only files an earlier build listed and this one did not draw, and never writes through a
symbolic link.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

MANIFEST = ".seqlab-report.json"
FIGURE_DIR = "figures"
PAGES = ("index.html", "report.md", "claims.json")


class ReportOutputError(ValueError):
    """The output folder cannot be written safely; the message names the path and why."""


def _relative_files(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if not p.is_dir()}


def _looks_like_a_report(files: set[str]) -> bool:
    return all(f in PAGES or (f.startswith(f"{FIGURE_DIR}/") and f.endswith(".png")
                              and f.count("/") == 1) for f in files)


def previous_files(out_dir: Path) -> set[str]:
    """The files an earlier build wrote here; raises ReportOutputError when the folder is
    not seqlab's to write."""
    if out_dir.is_symlink() or (out_dir.exists() and not out_dir.is_dir()):
        raise ReportOutputError(f"report output {out_dir} exists and is not a folder; "
                                "give --out a folder (new or a report folder)")
    if not out_dir.exists():
        return set()
    manifest = out_dir / MANIFEST
    if manifest.is_file() and not manifest.is_symlink():
        try:
            return set(json.loads(manifest.read_text(encoding="utf-8"))["files"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ReportOutputError(f"report manifest {manifest} is damaged ({exc}); "
                                    "remove it or choose another folder") from exc
    files = _relative_files(out_dir)
    if files and not _looks_like_a_report(files):
        foreign = sorted(f for f in files if not _looks_like_a_report({f}))[:3]
        raise ReportOutputError(f"report output {out_dir} holds files seqlab did not write "
                                f"({', '.join(foreign)}); choose an empty or new folder")
    return files


def _safe_target(out_dir: Path, name: str) -> Path:
    path = out_dir / name
    for part in (path.parent, path):
        if part.is_symlink():
            raise ReportOutputError(f"{part} is a symbolic link; seqlab does not write "
                                    "through links: remove it or choose another folder")
    return path


def write_report_files(out_dir: Path, files: dict[str, bytes]) -> list[Path]:
    """Write ``files`` (relative name -> bytes) into ``out_dir`` and record them.

    Stale files of an earlier build go; files the user added stay.
    """
    earlier = previous_files(out_dir)
    targets = {name: _safe_target(out_dir, name) for name in files}
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, data in files.items():
        path = targets[name]
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)  # a reader never sees half a file
        written.append(path)
    for stale in sorted(earlier - set(files)):
        path = out_dir / stale
        if path.is_file() and not path.is_symlink():
            path.unlink()
    manifest = _safe_target(out_dir, MANIFEST)
    manifest.write_text(json.dumps({"files": sorted(files)}, indent=1), encoding="utf-8")
    return written
