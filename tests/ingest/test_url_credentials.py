"""Credentials in a source URL are used to fetch it and never stored, logged or published."""

from __future__ import annotations

import base64
import http.server
from pathlib import Path

import polars as pl
import pytest

from seqlab.ingest.fetch import SourceLimits, redact_url
from seqlab.ingest.sources import SourceError, read_sources
from seqlab.runners.ingest import IngestOptions, ingest_source
from seqlab.runners.publish import without_credentials
from seqlab.sample import SYNTHETIC_SYMBOL, SampleSpec, generate_sample_prices
from seqlab.warehouse import query
from tests.conftest import serve_http

LOCAL = SourceLimits(allow_private_urls=True, read_timeout_s=5)
SECRET = "S3CRET-9f2c"


class _Keyed(http.server.BaseHTTPRequestHandler):
    """Serves the CSV only to a request that carries the key, as a paid data API would."""

    body = b""
    seen: list[tuple[str, str | None]] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self.seen.append((self.path, self.headers.get("Authorization")))
        if f"api_key={SECRET}" not in self.path:
            self.send_error(403, "Forbidden")
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.mark.parametrize("url,shown", [
    ("https://alice:pw@data.example.com:8443/eth.csv?symbol=ETH&api_key=k#top",
     "https://data.example.com:8443/eth.csv?symbol=ETH&api_key=<redacted>"),
    ("https://h/eth.csv?X-Amz-Signature=abc&X-Amz-Date=20260101&access_token=t",
     "https://h/eth.csv?X-Amz-Signature=<redacted>&X-Amz-Date=20260101&access_token=<redacted>"),
    ("http://h/eth.csv", "http://h/eth.csv"),
])
def test_what_a_url_shows(url, shown):
    assert redact_url(url) == shown


def test_the_key_fetches_but_is_never_stored(tmp_path):
    prices = generate_sample_prices(SampleSpec(days=60, gaps=0))
    handler = type("Keyed", (_Keyed,), {"body": prices.write_csv().encode(), "seen": []})
    with serve_http(handler) as base:
        host = base.removeprefix("http://")
        url = f"http://bob:hunter2@{host}/eth.csv?api_key={SECRET}&interval=1d"
        warehouse = tmp_path / "w.duckdb"
        ingest_source(url, IngestOptions(symbol=SYNTHETIC_SYMBOL, warehouse=warehouse,
                                         docs_dir=tmp_path / "docs", sources=LOCAL))
        with pytest.raises(SourceError) as refused:  # a wrong key: the message keeps it out too
            read_sources(f"{base}/eth.csv?api_key=wrong-{SECRET}", LOCAL)
    # The real key and the password were sent (as basic auth), to this host.
    assert handler.seen[0] == (f"/eth.csv?api_key={SECRET}&interval=1d",
                               "Basic " + base64.b64encode(b"bob:hunter2").decode())
    stored = query(warehouse, "SELECT source FROM ingestions")["source"].to_list()
    assert stored == [f"http://{host}/eth.csv?api_key=<redacted>&interval=1d"]
    assert SECRET not in str(refused.value) and "403" in str(refused.value)
    for path in Path(tmp_path).rglob("*"):  # data docs, quarantine files, the warehouse
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes() and b"hunter2" not in path.read_bytes(), path


def test_urls_stored_by_older_versions_are_published_without_credentials():
    ingestions = pl.DataFrame({"source": [f"https://h/eth.csv?token={SECRET}", "/home/me/eth.csv"]})
    published = without_credentials({"ingestions": ingestions})["ingestions"]["source"].to_list()
    assert published == ["https://h/eth.csv?token=<redacted>", "/home/me/eth.csv"]


def test_a_password_is_not_carried_to_where_a_redirect_points():
    seen_there: list[str | None] = []

    class There(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            seen_there.append(self.headers.get("Authorization"))
            self.send_error(404, "Not Found")

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    with serve_http(There) as there:
        class Here(There):
            def do_GET(self) -> None:  # noqa: N802
                self.send_response(302)
                self.send_header("Location", f"{there}/eth.csv")
                self.end_headers()

        with serve_http(Here) as here:
            with pytest.raises(SourceError, match="404"):
                read_sources(here.replace("http://", "http://bob:hunter2@") + "/eth.csv", LOCAL)
    assert seen_there == [None]
