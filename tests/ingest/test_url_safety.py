"""URL sources under hostile servers and addresses: redirects, drips, floods, private hosts.

Every server here is a thread on 127.0.0.1 that ends by itself within seconds; tests that
fetch from it pass ``allow_private_urls`` (127.0.0.1 is refused by default, which other
tests show without connecting anywhere).
"""

from __future__ import annotations

import http.server
import socket
import time
from collections.abc import Iterator

import pytest

import seqlab.ingest.fetch as fetch
from seqlab.ingest.fetch import SourceLimits
from seqlab.ingest.sources import SourceError, read_sources
from tests.conftest import serve_http

CSV = b"date,close\n2024-01-01,1.5\n2024-01-02,2.5\n"
LOCAL = SourceLimits(allow_private_urls=True, read_timeout_s=5)
DRIP_SECONDS = 0.2  # one byte this often, for at most DRIP_BYTES bytes
DRIP_BYTES = 100


class _Hostile(http.server.BaseHTTPRequestHandler):
    """Redirects, a drip of bytes, an endless body and a short one, per path."""

    ftp_port = 0  # set by the fixture: a listening socket that must never be contacted

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        try:
            self._answer()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up on purpose

    def _answer(self) -> None:
        if self.path == "/eth.csv":
            self._headers(200, {"Content-Length": str(len(CSV))})
            self.wfile.write(CSV)
        elif self.path == "/to-ftp":
            self._headers(302, {"Location": f"ftp://127.0.0.1:{self.ftp_port}/eth.csv"})
        elif self.path == "/to-file":
            self._headers(301, {"Location": "file:///etc/passwd"})
        elif self.path == "/to-http":
            self._headers(307, {"Location": "/eth.csv"})
        elif self.path == "/to-metadata":
            self._headers(302, {"Location": "http://169.254.169.254/latest/meta-data/"})
        elif self.path == "/drip-body":
            self._headers(200, {})
            self._drip(b"date,close\n" + b"9" * DRIP_BYTES)
        elif self.path == "/drip-sized":  # says its length, then drips it
            body = b"date,close\n" + b"9" * DRIP_BYTES
            self._headers(200, {"Content-Length": str(len(body))})
            self._drip(body)
        elif self.path == "/drip-headers":
            self._drip(b"HTTP/1.0 200 OK\r\nX-Slow: " + b"a" * DRIP_BYTES)
        elif self.path == "/endless":
            self._headers(200, {})
            for _ in range(2000):  # 128 MB at most, if the client never stops reading
                self.wfile.write(b"2024-01-01,1.5\n" * 4096)
        elif self.path == "/short":
            self._headers(200, {"Content-Length": "1000"})
            self.wfile.write(CSV)
        else:
            self.send_error(404, "Not Found")

    def _headers(self, status: int, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.flush()

    def _drip(self, data: bytes) -> None:
        for byte in data:
            self.wfile.write(bytes([byte]))
            self.wfile.flush()
            time.sleep(DRIP_SECONDS)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture(scope="module")
def ftp_listener() -> Iterator[socket.socket]:
    """A port that accepts connections (so a followed redirect would succeed in connecting)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.setblocking(False)
    yield listener
    listener.close()


@pytest.fixture(scope="module")
def server(ftp_listener) -> Iterator[str]:
    handler = type("Hostile", (_Hostile,), {"ftp_port": ftp_listener.getsockname()[1]})
    with serve_http(handler) as url:
        yield url


def refusal(url: str, limits: SourceLimits = LOCAL) -> str:
    with pytest.raises(SourceError) as caught:
        read_sources(url, limits)
    message = str(caught.value)
    assert message.startswith(f"{url}: "), message
    return message


# --- redirects --------------------------------------------------------------------------


def test_redirect_to_ftp_is_refused_without_connecting(server, ftp_listener):
    port = ftp_listener.getsockname()[1]
    message = refusal(f"{server}/to-ftp")
    assert f"redirected to ftp://127.0.0.1:{port}/eth.csv" in message
    assert "scheme 'ftp' is not allowed (only http and https)" in message
    with pytest.raises(BlockingIOError):  # nobody knocked
        ftp_listener.accept()


def test_redirect_to_a_local_file_is_refused(server):
    assert "redirected to file:///etc/passwd: scheme 'file'" in refusal(f"{server}/to-file")


def test_redirect_to_http_is_followed(server):
    [source] = read_sources(f"{server}/to-http", LOCAL)
    assert source.data == CSV


def test_every_redirect_hop_is_checked_for_private_addresses(server, monkeypatch):
    # 127.0.0.1 stands in for a public server here; its redirect to the cloud metadata
    # address must then be refused like a first URL would be.
    checked = fetch.address_refusal
    monkeypatch.setattr(
        fetch, "address_refusal",
        lambda host, address: None if address == "127.0.0.1" else checked(host, address),
    )  # fmt: skip
    began = time.monotonic()
    message = refusal(f"{server}/to-metadata", SourceLimits(read_timeout_s=5))
    assert "169.254.169.254 resolves to 169.254.169.254, a link-local address" in message
    assert time.monotonic() - began < 2  # refused before any connection attempt


# --- time and size ------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/drip-body", "/drip-headers", "/drip-sized"])
def test_a_dripping_server_hits_the_overall_deadline(server, path):
    # /drip-sized: the deadline's shut-down socket ended the body early, which read as
    # "connection closed after 37 of 111 bytes" (issue 23) instead of naming the deadline.
    # Each byte arrives well within the 5 s read timeout; only the deadline ends this.
    limits = SourceLimits(allow_private_urls=True, read_timeout_s=5, deadline_s=1)
    began = time.monotonic()
    message = refusal(f"{server}{path}", limits)
    elapsed = time.monotonic() - began
    assert "took longer than its deadline of 1 s" in message
    assert elapsed < 3, f"{elapsed:.1f} s"


def test_a_silent_tls_server_hits_the_overall_deadline(ftp_listener):
    # The kernel completes the TCP handshake for a listener nobody accepts from: the TLS
    # handshake then waits for an answer that never comes.
    url = f"https://127.0.0.1:{ftp_listener.getsockname()[1]}/eth.csv"
    limits = SourceLimits(allow_private_urls=True, read_timeout_s=5, deadline_s=1)
    began = time.monotonic()
    assert "took longer than its deadline of 1 s" in refusal(url, limits)
    assert time.monotonic() - began < 3


def test_an_endless_body_stops_at_the_byte_cap(server):
    limits = SourceLimits(allow_private_urls=True, read_timeout_s=5, max_bytes=100_000)
    began = time.monotonic()
    assert "over the limit of 100000 bytes" in refusal(f"{server}/endless", limits)
    assert time.monotonic() - began < 3


def test_a_body_shorter_than_its_length_is_an_error(server):
    assert f"connection closed after {len(CSV)} of 1000 bytes" in refusal(f"{server}/short")


# --- private, loopback and link-local hosts --------------------------------------------------


@pytest.mark.parametrize(
    ("host", "address", "kind"),
    [
        ("127.0.0.1", "127.0.0.1", "loopback"),
        ("localhost", "127.0.0.1", "loopback"),
        ("2130706433", "127.0.0.1", "loopback"),  # decimal
        ("0x7f000001", "127.0.0.1", "loopback"),  # hex
        ("0177.0.0.1", "127.0.0.1", "loopback"),  # octal
        ("127.1", "127.0.0.1", "loopback"),  # short form
        ("[::1]", "::1", "loopback"),
        ("[::ffff:127.0.0.1]", "127.0.0.1", "loopback"),  # IPv4 inside IPv6
        ("169.254.169.254", "169.254.169.254", "link-local"),  # cloud metadata
        ("10.1.2.3", "10.1.2.3", "private"),
        ("192.168.0.1", "192.168.0.1", "private"),
        ("0.0.0.0", "0.0.0.0", "private"),
    ],
)
def test_private_addresses_are_refused_by_default(host, address, kind):
    url = f"http://{host}:8080/eth.csv"
    began = time.monotonic()
    message = refusal(url, SourceLimits(read_timeout_s=5))
    assert f"resolves to {address}, a {kind} address" in message
    assert "refused unless --allow-private-urls or SEQLAB_ALLOW_PRIVATE_URLS=1" in message
    assert time.monotonic() - began < 2  # no connection was tried


def test_https_urls_get_the_same_address_check():
    message = refusal("https://169.254.169.254/latest/meta-data/", SourceLimits())
    assert "a link-local address" in message


def test_a_local_server_is_refused_by_default_and_fetched_when_allowed(server):
    url = f"{server}/eth.csv"
    assert "a loopback address" in refusal(url, SourceLimits())
    [source] = read_sources(url, SourceLimits(allow_private_urls=True))
    assert source.data == CSV


def test_limits_come_from_the_environment(monkeypatch):
    assert SourceLimits.from_env() == SourceLimits()
    monkeypatch.setenv("SEQLAB_ALLOW_PRIVATE_URLS", "1")
    monkeypatch.setenv("SEQLAB_URL_DEADLINE_S", "12.5")
    monkeypatch.setenv("SEQLAB_SOURCE_MAX_BYTES", "2048")
    limits = SourceLimits.from_env()
    assert (limits.allow_private_urls, limits.deadline_s, limits.max_bytes) == (True, 12.5, 2048)
    assert SourceLimits.from_env(allow_private_urls=False).allow_private_urls is False


def test_public_addresses_pass_the_address_check():
    assert fetch.address_refusal("example.org", "93.184.215.14") is None
    assert fetch.address_refusal("example.org", "2606:2800:21f:cb07:6820:80da:af6b:8b2c") is None


def test_read_source_retries_passing_failures_only() -> None:
    """A refusal, the deadline or the byte cap is final (a retry would triple the deadline);
    a reset connection may be retried."""
    from prefect.states import Failed

    from seqlab.ingest.fetch import FetchError, FetchLimitReached, FetchRefused
    from seqlab.ingest.sources import SourceError
    from seqlab.tasks.ingest import retry_transient_download

    def failed_with(cause: Exception | None) -> Failed:
        error = SourceError("http://example.test/eth.csv: failed")
        error.__cause__ = cause
        return Failed(data=error)

    assert retry_transient_download(None, None, failed_with(FetchError("cannot fetch (reset)")))
    for final in (FetchRefused("scheme 'ftp'"), FetchLimitReached("deadline"), None):
        assert not retry_transient_download(None, None, failed_with(final)), final
