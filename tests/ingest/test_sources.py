"""Reading sources: files, folders, glob patterns and http(s) URLs, and their failures."""

from __future__ import annotations

import hashlib
import http.server
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from seqlab.ingest.fetch import SourceLimits
from seqlab.ingest.parse import parse_source
from seqlab.ingest.sources import RawSource, SourceError, read_sources
from tests.conftest import serve_http

# Every server here listens on 127.0.0.1, which URL sources refuse unless allowed.
LOCAL = SourceLimits(allow_private_urls=True)

CSV = b"date,close\n2024-01-01,1.5\n2024-01-02,2.5\n"
BIG = b"date,close\n" + b"2024-01-01,1.5\n" * 10_000  # 150,011 bytes


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves a few fixed paths; HTTP/1.0 so a body without Content-Length ends at close."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        if self.path == "/eth.csv":
            self._send(CSV, declare_length=True)
        elif self.path == "/big.csv":
            self._send(BIG, declare_length=True)
        elif self.path == "/big-undeclared.csv":
            self._send(BIG, declare_length=False)
        elif self.path == "/slow.csv":
            time.sleep(1.5)
            self._send(CSV, declare_length=True)
        else:
            self.send_error(404, "Not Found")

    def _send(self, body: bytes, declare_length: bool) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/csv")
        if declare_length:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up on purpose (size limit, timeout)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    with serve_http(_Handler) as url:
        yield url


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "b.csv").write_bytes(CSV)
    (tmp_path / "a.CSV").write_bytes(CSV.replace(b"1.5", b"9.5"))
    (tmp_path / "notes.txt").write_text("not a csv")
    (tmp_path / "nested.csv").mkdir()  # a folder named like a CSV is not a source
    return tmp_path


def test_single_file_is_read_with_its_sha256(tmp_path: Path):
    path = tmp_path / "eth.csv"
    path.write_bytes(CSV)
    [source] = read_sources(str(path))
    assert source == RawSource(str(path), CSV, hashlib.sha256(CSV).hexdigest())


def test_folder_gives_its_csv_files_sorted_by_name(folder: Path):
    sources = read_sources(str(folder))
    assert [Path(s.name).name for s in sources] == ["a.CSV", "b.csv"]
    assert sources[0].data != sources[1].data


def test_glob_pattern_gives_matching_files_sorted(folder: Path):
    sources = read_sources(str(folder / "*.csv"))
    assert [Path(s.name).name for s in sources] == ["b.csv"]  # the pattern is case-sensitive


def test_real_folder_reads_all_core_files(real_data_dir: Path):
    sources = read_sources(str(real_data_dir))
    assert len(sources) == 8
    assert all(s.name.endswith(".csv") for s in sources)
    assert [s.name for s in sources] == sorted(s.name for s in sources)


@pytest.mark.parametrize(
    ("relative", "reason"),
    [
        ("missing.csv", "no such file or folder"),
        ("*.parquet", "pattern matched no files"),
        ("empty", "folder contains no *.csv files"),
    ],
)
def test_nothing_to_read_names_the_source_and_the_reason(tmp_path: Path, relative, reason):
    (tmp_path / "empty").mkdir()
    source = str(tmp_path / relative)
    with pytest.raises(SourceError) as caught:
        read_sources(source)
    assert str(caught.value) == f"{source}: {reason}"


def test_broken_link_is_reported_as_missing(tmp_path: Path):
    link = tmp_path / "gone.csv"
    link.symlink_to(tmp_path / "nowhere.csv")
    with pytest.raises(SourceError, match="gone.csv: no such file or folder"):
        read_sources(str(link))


def test_oversize_file_is_refused(tmp_path: Path):
    path = tmp_path / "big.csv"
    path.write_bytes(BIG)
    with pytest.raises(
        SourceError, match=r"big\.csv: file is 150011 bytes, over the limit of 1000"
    ):
        read_sources(str(path), SourceLimits(max_bytes=1000))
    assert read_sources(str(path), SourceLimits(max_bytes=len(BIG)))[0].data == BIG


def test_url_is_fetched_and_parses(server_url: str):
    [source] = read_sources(f"{server_url}/eth.csv", LOCAL)
    assert source.name == f"{server_url}/eth.csv"
    assert source.data == CSV and source.sha256 == hashlib.sha256(CSV).hexdigest()
    assert parse_source(source).rows["close"].to_list() == [1.5, 2.5]


def test_url_http_error_names_the_url_and_status(server_url: str):
    with pytest.raises(SourceError, match=r"/nothing\.csv: HTTP 404"):
        read_sources(f"{server_url}/nothing.csv", LOCAL)


@pytest.mark.parametrize("path", ["/big.csv", "/big-undeclared.csv"])
def test_url_over_the_size_limit_is_refused(server_url: str, path: str):
    with pytest.raises(SourceError, match="over the limit of 1000"):
        read_sources(f"{server_url}{path}", SourceLimits(max_bytes=1000, allow_private_urls=True))


def test_url_timeout_is_reported(server_url: str):
    began = time.perf_counter()
    with pytest.raises(SourceError, match=r"slow\.csv: (timed out|cannot fetch)"):
        read_sources(f"{server_url}/slow.csv", SourceLimits(read_timeout_s=0.3, allow_private_urls=True))
    assert time.perf_counter() - began < 1.4


def test_unreachable_url_is_a_source_error():
    # Port 9 (discard) on localhost is closed on a normal machine: connection refused.
    with pytest.raises(SourceError, match=r"http://127\.0\.0\.1:9/x\.csv: cannot fetch"):
        read_sources("http://127.0.0.1:9/x.csv", SourceLimits(read_timeout_s=2, allow_private_urls=True))


@pytest.mark.parametrize(
    "url", ["ftp://example.com/eth.csv", "file:///etc/passwd", "s3://bucket/eth.csv"]
)
def test_schemes_other_than_http_are_refused(url: str):
    scheme = url.split(":")[0]
    with pytest.raises(SourceError) as caught:
        read_sources(url)
    assert str(caught.value) == f"{url}: scheme '{scheme}' is not allowed (only http and https)"
