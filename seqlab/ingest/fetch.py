"""Downloading one http(s) source within limits: bytes, time, redirects and addresses.

A URL may be typed by a user or sit in a deployment's parameters, so the fetch trusts none
of what the server says: every redirect hop is checked again (http and https only), the
whole download has a deadline (a server dripping one byte at a time resets a per-read
timeout forever), the body is capped in bytes, and the host must resolve to public
addresses only. The address check runs in the connection itself, on every address the name
resolves to, and the socket then connects to an address that was checked: no second
lookup a DNS answer could change in between. Proxy variables are not used, for the same
reason: the address checked must be the address connected to.
"""

from __future__ import annotations

import base64
import http.client
import ipaddress
import re
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

ALLOWED_SCHEMES = ("http", "https")
_CHUNK_BYTES = 1 << 20
_ALLOW_HINT = "--allow-private-urls or SEQLAB_ALLOW_PRIVATE_URLS=1"


@dataclass(frozen=True)
class SourceLimits:
    """What reading one source may cost, and which hosts a URL may reach."""

    max_bytes: int = 512 * 2**20  # per file or download (SEQLAB_SOURCE_MAX_BYTES)
    read_timeout_s: float = 30.0  # longest silence while connecting or reading
    deadline_s: float = 300.0  # a whole download, redirects included (SEQLAB_URL_DEADLINE_S)
    allow_private_urls: bool = False  # loopback, private, link-local (SEQLAB_ALLOW_PRIVATE_URLS)

    @classmethod
    def from_env(cls, allow_private_urls: bool | None = None) -> SourceLimits:
        """Limits from the checked ``SEQLAB_*`` variables (seqlab.config); an explicit
        ``allow_private_urls`` wins."""
        from seqlab.config import EnvironmentSettings

        env = EnvironmentSettings.load()
        return cls(
            max_bytes=env.source_max_bytes,
            read_timeout_s=cls().read_timeout_s,
            deadline_s=env.url_deadline_s,
            allow_private_urls=env.allow_private_urls if allow_private_urls is None
            else allow_private_urls,
        )


class FetchError(Exception):
    """A download that failed or was refused; the message says why (the caller adds the URL)."""


class FetchRefused(FetchError):
    """A scheme, redirect hop or address the limits do not allow."""


class FetchLimitReached(FetchError):
    """The overall deadline or the byte cap: final, a retry would only multiply it."""


# Query parameters whose values are credentials by their name (api_key, access_token,
# X-Amz-Signature, sig, password, ...): never stored, logged or shown.
_SECRET_PARAMETER = re.compile(r"key|token|secret|pass|auth|sig|credential|session", re.IGNORECASE)


def redact_url(url: str) -> str:
    """``url`` as it may be stored and shown: no ``user:password@``, no fragment, and the
    values of credential-like query parameters replaced by ``<redacted>``."""
    parts = urllib.parse.urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    shown = "&".join(f"{name}=<redacted>" if _SECRET_PARAMETER.search(name) else
                     urllib.parse.urlencode([(name, value)]) for name, value in query)
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, shown, ""))


def scheme_refusal(url: str) -> str | None:
    """Why ``url``'s scheme is refused, or None for http and https."""
    scheme = urlsplit(url).scheme
    if scheme.lower() in ALLOWED_SCHEMES:
        return None
    return f"scheme {scheme!r} is not allowed (only http and https)"


def address_refusal(host: str, address: str) -> str | None:
    """Why connecting to ``address`` (what ``host`` resolved to) is refused, or None."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return f"{host} resolves to {address!r}, which is not an IP address"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_global and not ip.is_multicast:
        return None
    kind = (
        "a loopback" if ip.is_loopback
        else "a link-local" if ip.is_link_local
        else "a private" if ip.is_private
        else "a non-public"
    )  # fmt: skip
    return (
        f"{host} resolves to {ip}, {kind} address; such hosts are refused unless "
        f"{_ALLOW_HINT} is given"
    )


class _Deadline:
    """Shuts the download's connections down when its time is up.

    A blocked read then returns or fails at once, wherever it is (headers, body, a chunk
    size line): a per-read timeout alone lets a server that sends a byte every few seconds
    hold the ingest for ever. It keeps a duplicate of each socket's descriptor: http.client
    lets go of its own reference once a response is under way, TLS wraps the socket into a
    new object, and a shutdown through any descriptor ends the connection for all of them.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.ends = time.monotonic() + seconds
        self.expired = False
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def remaining(self) -> float:
        return max(0.0, self.ends - time.monotonic())

    def passed(self) -> bool:
        """Expired, or close enough that a timeout bounded by it counts as the deadline."""
        return self.expired or self.remaining() < 0.1

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock.dup())
            if self.expired:
                self._shut_down(self._sockets[-1])

    @staticmethod
    def _shut_down(sock: socket.socket) -> None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already closed by the peer

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                self._shut_down(sock)

    def __enter__(self) -> _Deadline:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()
        with self._lock:
            for sock in self._sockets:
                sock.close()
            self._sockets.clear()


class _Connector:
    """Makes http.client connections that resolve, check and connect to one address."""

    def __init__(self, limits: SourceLimits, deadline: _Deadline) -> None:
        self.limits = limits
        self.deadline = deadline

    def connection_class(self, base: type[http.client.HTTPConnection]):
        def make(host: str, **kwargs) -> http.client.HTTPConnection:
            connection = base(host, **kwargs)
            # http.client's own hook for opening the socket; TLS (SNI, certificate) still
            # uses the host name, only the TCP connection goes to the checked address.
            connection._create_connection = self.create_connection  # type: ignore[attr-defined]
            return connection

        return make

    def create_connection(self, address, timeout=None, source_address=None) -> socket.socket:
        host, port = address
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        if not self.limits.allow_private_urls:
            for *_, sockaddr in infos:
                reason = address_refusal(host, sockaddr[0])
                if reason:
                    raise FetchRefused(reason)
        if self.deadline.passed():  # a redirect hop after the time is up
            raise TimeoutError("deadline passed")
        error: OSError | None = None
        for family, kind, proto, _, sockaddr in infos:
            sock = socket.socket(family, kind, proto)
            try:
                # A shutdown cannot stop a connect in progress: bound it by the deadline.
                sock.settimeout(min(self.limits.read_timeout_s, self.deadline.remaining()))
                if source_address:
                    sock.bind(source_address)
                sock.connect(sockaddr)
                sock.settimeout(self.limits.read_timeout_s)
                self.deadline.watch(sock)
                return sock
            except OSError as exc:
                sock.close()
                error = exc
        raise error or OSError(f"{host} resolves to no address")


class _HTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, connector: _Connector) -> None:
        super().__init__()
        self._connector = connector

    def http_open(self, req):
        return self.do_open(self._connector.connection_class(http.client.HTTPConnection), req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, connector: _Connector) -> None:
        super().__init__()
        self._connector = connector

    def https_open(self, req):
        return self.do_open(
            self._connector.connection_class(http.client.HTTPSConnection),
            req,
            context=self._context,
        )


class _RedirectHandler(urllib.request.HTTPRedirectHandler):
    """Follows redirects only to http and https; the address check runs on each hop's
    connection, like the first one's."""

    max_redirections = 5  # a longer chain is an HTTP error, like a loop

    def http_error_302(self, req, fp, code, msg, headers):
        location = headers.get("location") or headers.get("uri")
        if location:
            target = urljoin(req.full_url, location)
            reason = scheme_refusal(target)
            if reason:
                fp.close()
                raise FetchRefused(f"redirected to {redact_url(target)}: {reason}")
        return super().http_error_302(req, fp, code, msg, headers)

    http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302


def _build_opener(connector: _Connector) -> urllib.request.OpenerDirector:
    """Only the handlers a download needs: no file:, ftp: or data: openers, no proxies."""
    opener = urllib.request.OpenerDirector()
    for handler in (
        _HTTPHandler(connector),
        _HTTPSHandler(connector),
        _RedirectHandler(),
        urllib.request.HTTPDefaultErrorHandler(),
        urllib.request.HTTPErrorProcessor(),
        urllib.request.UnknownHandler(),
    ):
        opener.add_handler(handler)
    return opener


def fetch_url(url: str, limits: SourceLimits) -> bytes:
    """The body of ``url`` within ``limits``, or FetchError saying why not: a scheme,
    redirect or address refused (FetchRefused), the deadline or a silence longer than
    ``read_timeout_s``, a body over ``max_bytes``, an HTTP error status, a failed connection.
    """
    reason = scheme_refusal(url)
    if reason:
        raise FetchRefused(reason)
    request = _request(url)
    with _Deadline(limits.deadline_s) as deadline:
        opener = _build_opener(_Connector(limits, deadline))
        try:
            with opener.open(request, timeout=limits.read_timeout_s) as response:
                body = _read_body(response, limits.max_bytes)
        except FetchError as error:
            if deadline.expired and not isinstance(error, FetchLimitReached):
                # the deadline shut the socket: a short body then reads as "connection closed"
                raise _deadline_error(limits) from error
            raise
        except Exception as error:
            # A socket shut down by the deadline fails in whatever way the read in progress
            # fails (reset, TLS error, ValueError on an unwrapped TLS socket): name the cause.
            if deadline.passed():
                raise _deadline_error(limits) from error
            described = _describe(error, limits)
            if described is None:
                raise  # a bug, not a download problem: let it show as itself
            raise described from error
        if deadline.expired:  # the shut-down socket looked like the end of the body
            raise _deadline_error(limits)
    return body


def _request(url: str) -> urllib.request.Request:
    """The request for ``url``; ``user:password@`` becomes HTTP basic auth that is sent to
    this host only (an unredirected header: a redirect elsewhere does not carry it)."""
    parts = urlsplit(url)
    if parts.username is None:
        return urllib.request.Request(url, headers={"User-Agent": "seqlab-ingest"})
    bare = urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[-1]))
    request = urllib.request.Request(bare, headers={"User-Agent": "seqlab-ingest"})
    pair = f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
    request.add_unredirected_header("Authorization",
                                    "Basic " + base64.b64encode(pair.encode()).decode())
    return request


def _deadline_error(limits: SourceLimits) -> FetchError:
    return FetchLimitReached(
        f"the download took longer than its deadline of {limits.deadline_s:g} s "
        "(SEQLAB_URL_DEADLINE_S)"
    )


def _describe(error: Exception, limits: SourceLimits) -> FetchError | None:
    if isinstance(error, urllib.error.HTTPError):
        return FetchError(f"HTTP {error.code} {error.reason}")
    if isinstance(error, urllib.error.URLError):
        if isinstance(error.reason, TimeoutError):
            return FetchError(f"timed out after {limits.read_timeout_s:g} s without data")
        return FetchError(f"cannot fetch ({error.reason})")
    if isinstance(error, TimeoutError):
        return FetchError(f"timed out after {limits.read_timeout_s:g} s without data")
    if isinstance(error, (OSError, http.client.HTTPException)):
        return FetchError(f"cannot fetch ({str(error) or type(error).__name__})")
    return None


def _read_body(response, max_bytes: int) -> bytes:
    declared = response.headers.get("Content-Length")
    length = int(declared) if declared and declared.isdigit() else None
    if length is not None and length > max_bytes:
        raise FetchLimitReached(f"response is {length} bytes, over the limit of {max_bytes}")
    chunks: list[bytes] = []
    received = 0
    # read1 returns what one socket read brings, so the cap is checked as bytes arrive
    # and a server that lies about (or omits) its length cannot make us hold more.
    while chunk := response.read1(_CHUNK_BYTES):
        received += len(chunk)
        if received > max_bytes:
            raise FetchLimitReached(f"response is over the limit of {max_bytes} bytes")
        chunks.append(chunk)
    if length is not None and received < length:  # read1 does not check the length
        raise FetchError(f"connection closed after {received} of {length} bytes")
    return b"".join(chunks)
