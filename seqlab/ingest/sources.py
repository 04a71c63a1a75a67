"""Reading raw source bytes from files, folders, glob patterns and http(s) URLs."""

from __future__ import annotations

import glob
import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from seqlab.ingest.fetch import FetchError, SourceLimits, fetch_url, redact_url

_URL = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://")
_GLOB_CHARS = ("*", "?", "[")


class SourceError(Exception):
    """A source could not be read; the message names the file or URL and the reason."""


@dataclass(frozen=True)
class RawSource:
    """The untouched bytes of one source file and their fingerprint."""

    name: str  # path (as given) or URL
    data: bytes
    sha256: str  # hex sha256 of data

    @classmethod
    def from_bytes(cls, name: str, data: bytes) -> RawSource:
        return cls(name=name, data=data, sha256=hashlib.sha256(data).hexdigest())


def read_sources(source: str, limits: SourceLimits = SourceLimits()) -> list[RawSource]:
    """Read every CSV that ``source`` names: a file, a folder (its ``*.csv``, sorted by name),
    a glob pattern (matches sorted), or an http(s) URL (see ``seqlab.ingest.fetch``).

    Raises SourceError naming the source when nothing matches, a file cannot be read, a URL
    uses another scheme, is refused, fails or times out, or anything is larger than
    ``limits.max_bytes``.
    """
    return list(iter_sources(source, limits))


def iter_sources(source: str, limits: SourceLimits = SourceLimits()) -> Iterator[RawSource]:
    """Like ``read_sources``, but reads each file only when the caller asks for it, so a
    folder of big files is never in memory all at once. Nothing is read until the first
    ``next()``; the listing (and a listing error) comes first, each read error in turn.
    """
    if _URL.match(source):
        yield _read_url(source, limits)
        return
    for path in _list_files(source):
        yield _read_file(path, limits.max_bytes)


def _list_files(source: str) -> list[Path]:
    path = Path(source)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() == ".csv")
        if not files:
            raise SourceError(f"{source}: folder contains no *.csv files")
        return files
    if path.is_file():
        return [path]
    if any(char in source for char in _GLOB_CHARS):
        files = sorted(Path(match) for match in glob.glob(source) if Path(match).is_file())
        if not files:
            raise SourceError(f"{source}: pattern matched no files")
        return files
    if path.exists():
        raise SourceError(f"{source}: not a regular file or folder")
    raise SourceError(f"{source}: no such file or folder")


def _read_file(path: Path, max_bytes: int) -> RawSource:
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise SourceError(f"{path}: file is {size} bytes, over the limit of {max_bytes}")
        with path.open("rb") as handle:
            data = handle.read(max_bytes + 1)
    except OSError as error:
        raise SourceError(f"{path}: cannot read file ({error.strerror or error})") from error
    if len(data) > max_bytes:  # the file grew after stat
        raise SourceError(f"{path}: file is over the limit of {max_bytes} bytes")
    return RawSource.from_bytes(str(path), data)


def _read_url(url: str, limits: SourceLimits) -> RawSource:
    shown = redact_url(url)  # the name stored, logged and reported: credentials left out
    try:
        return RawSource.from_bytes(shown, fetch_url(url, limits))
    except FetchError as error:
        raise SourceError(f"{shown}: {error}") from error
