"""Writing a report folder without harming anything seqlab did not write.

A folder is seqlab's when it holds the manifest ``.seqlab-report.json`` or is empty (apart
from seqlab's own temporary files). Anything else is the user's: the build refuses rather
than overwrite it. The manifest is not trusted: it is a file in the user's folder (often a
committed one), so seqlab removes or replaces a file only when

- its name is one a build writes (a page, ``figures/*.png``, an export), inside the folder,
  never through a symbolic link, and
- its bytes still have the sha256 the manifest recorded when seqlab wrote it.

A manifest naming a path outside the folder is refused; a file the user changed is kept
(stale) or refused (to be replaced). Each file is written to a temporary file created
exclusively in its folder (``tempfile.mkstemp``: ``O_CREAT | O_EXCL``, so an existing name or
link is never opened) and renamed over its name, so a reader never sees half a file. The
manifest is written first with the hashes this build is about to write (``pending``), so a
build killed half-way leaves a folder the next build still recognises as its own.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import tempfile
from pathlib import Path

MANIFEST = ".seqlab-report.json"
FIGURE_DIR = "figures"
PAGES = ("index.html", "report.md", "claims.json")
TEMP_SUFFIX = ".seqlab-tmp"
# What a build writes: a plain name, or one under figures/; no hidden parts, no "..".
_OWN_NAME = re.compile(r"^(figures/)?[A-Za-z0-9][A-Za-z0-9_.-]*$")
# seqlab's temporary files: ours (mkstemp adds 8 random characters) and the ".NAME.tmp" of
# versions before 0.x's exclusive temp files, left behind when a build was killed.
_TEMP_NAME = re.compile(r"^\.[A-Za-z0-9][A-Za-z0-9_.-]*\.(tmp|[A-Za-z0-9_]{8}" + re.escape(TEMP_SUFFIX) + ")$")


class ReportOutputError(ValueError):
    """The output folder cannot be written safely; the message names the path and why."""


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _is_temp(relative: str) -> bool:
    parts = relative.split("/")
    return (len(parts) == 1 or (len(parts) == 2 and parts[0] == FIGURE_DIR)) and bool(
        _TEMP_NAME.match(parts[-1]))


def _relative_files(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if not p.is_dir()}


def _regular_file_hash(path: Path) -> str | None:
    """The sha256 of ``path`` when it is a regular file reached without a link; else None."""
    try:
        if path.parent.is_symlink() or not stat.S_ISREG(path.lstat().st_mode):
            return None
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    with os.fdopen(fd, "rb") as handle:
        return _sha256(handle.read())


def _check_name(manifest: Path, name: object) -> str:
    if not isinstance(name, str) or not _OWN_NAME.match(name) or ".." in name.split("/"):
        raise ReportOutputError(
            f"report manifest {manifest} lists {name!r}, not a file a report writes inside "
            "its folder; seqlab removes only its own files: remove the manifest or choose "
            "another folder")
    return name


def _read_manifest(manifest: Path) -> dict[str, set[str]]:
    """Each name the manifest lists and the hashes seqlab wrote it with (empty: a manifest
    of a version that recorded no hashes; such files are replaced but never removed)."""
    try:
        document = json.loads(manifest.read_text(encoding="utf-8"))
        listed, pending = document["files"], document.get("pending", {})
        if isinstance(listed, list):
            listed = dict.fromkeys(listed)
        if not isinstance(listed, dict) or not isinstance(pending, dict):
            raise TypeError("'files' is not a list or an object")
    except (ValueError, KeyError, TypeError, OSError) as exc:
        raise ReportOutputError(f"report manifest {manifest} is damaged ({exc}); "
                                "remove it or choose another folder") from exc
    hashes: dict[str, set[str]] = {}
    for name, digest in [*listed.items(), *pending.items()]:
        hashes.setdefault(_check_name(manifest, name), set())
        for one in digest if isinstance(digest, list) else [digest]:
            if isinstance(one, str):
                hashes[name].add(one)
    return hashes


def clean_own_temp_files(out_dir: Path) -> list[str]:
    """Remove the temporary files a killed build of seqlab left in ``out_dir`` (links with
    such names are removed as links: their targets are never touched)."""
    removed = []
    for folder in (out_dir, out_dir / FIGURE_DIR):
        if folder.is_symlink() or not folder.is_dir():
            continue
        for path in folder.iterdir():
            relative = path.relative_to(out_dir).as_posix()
            if _is_temp(relative) and (path.is_symlink() or path.is_file()):
                path.unlink()
                removed.append(relative)
    return removed


def previous_files(out_dir: Path) -> dict[str, set[str]]:
    """The files an earlier build wrote here, each with the hashes it was written with;
    raises ReportOutputError when the folder is not seqlab's to write."""
    if out_dir.is_symlink() or (out_dir.exists() and not out_dir.is_dir()):
        raise ReportOutputError(f"report output {out_dir} exists and is not a folder; "
                                "give --out a folder (new or a report folder)")
    if not out_dir.exists():
        return {}
    manifest = out_dir / MANIFEST
    if manifest.is_symlink():
        raise ReportOutputError(f"{manifest} is a symbolic link; seqlab does not read or write "
                                "through links: remove it or choose another folder")
    if manifest.is_file():
        return _read_manifest(manifest)
    foreign = sorted(f for f in _relative_files(out_dir) if not _is_temp(f))
    if foreign:
        raise ReportOutputError(f"report output {out_dir} holds files seqlab did not write "
                                f"({', '.join(foreign[:3])}); choose an empty or new folder")
    return {}


def _safe_target(out_dir: Path, name: str) -> Path:
    path = out_dir / name
    for part in (path.parent, path):
        if part.is_symlink():
            raise ReportOutputError(f"{part} is a symbolic link; seqlab does not write "
                                    "through links: remove it or choose another folder")
    return path


def _write_atomically(path: Path, data: bytes) -> None:
    """``data`` into a new temporary file beside ``path`` (created exclusively: never an
    existing file or link), then renamed over ``path``."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)  # replaces the name itself, never a link's target
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _manifest_bytes(files: dict, pending: dict[str, str] | None = None) -> bytes:
    document: dict = {"files": dict(sorted(files.items()))}
    if pending:
        document["pending"] = dict(sorted(pending.items()))
    return json.dumps(document, indent=1).encode("utf-8")


def write_report_files(out_dir: Path, files: dict[str, bytes]) -> list[Path]:
    """Write ``files`` (relative name -> bytes) into ``out_dir`` and record them with their
    sha256. Stale files of an earlier build go when unchanged; files the user added or
    changed stay, and a file of the user's under a name this build writes is refused."""
    earlier = previous_files(out_dir)
    targets = {_check_name(out_dir / MANIFEST, name): _safe_target(out_dir, name)
               for name in files}
    for name, path in targets.items():
        if not (path.exists() or path.is_symlink()):
            continue
        digest = _regular_file_hash(path)
        known = earlier.get(name)
        if digest is None or known is None or (known and digest not in known):
            raise ReportOutputError(
                f"{path} is not the file seqlab wrote there (changed, a link or not listed in "
                f"{MANIFEST}); move it away or choose another folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    clean_own_temp_files(out_dir)
    manifest = _safe_target(out_dir, MANIFEST)
    old = {name: sorted(hashes) for name, hashes in earlier.items()}
    new = {name: _sha256(data) for name, data in files.items()}
    _write_atomically(manifest, _manifest_bytes(old, new))  # a killed build stays ours
    written = []
    for name, data in files.items():
        path = targets[name]
        path.parent.mkdir(exist_ok=True)
        _safe_target(out_dir, name)
        _write_atomically(path, data)
        written.append(path)
    for stale in sorted(set(earlier) - set(files)):
        path = out_dir / stale
        digest = _regular_file_hash(path)
        if digest is not None and digest in earlier[stale]:
            path.unlink()
    _write_atomically(manifest, _manifest_bytes(new))
    return written
