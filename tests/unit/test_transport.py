"""sources/transport.py: a request sent straight over http.client (Direct) ends exactly as it
ends through requests' adapter (ESCAPIA_ICAL_TRANSPORT=requests): the same result (status,
headers, decoded body) or the same error, counted the same, for every answer a loopback
server scripts byte by byte; kept-alive connections are reused, replaced when the server
closed them, and never reused after an unread answer; TLS checks the certificate and the
name, with the CA bundle from the environment."""

from __future__ import annotations

import datetime as dt
import gzip
import ipaddress
import socket
import ssl
import threading
import time
import zlib

import pytest
import urllib3.connection
from loopback import RawServer, ok

from escapia_ical.config import HttpPolicy
from escapia_ical.sources import transport
from escapia_ical.sources.http import HttpClient

OP = "GetUnitNonAvailability"
BODY = b'{"dateRange": "x", "padding": "' + b"y" * 3000 + b'"}'


def head(status: str = "200 OK", *lines: str, version: str = "HTTP/1.1") -> bytes:
    return (f"{version} {status}\r\n" + "".join(f"{line}\r\n" for line in lines) + "\r\n").encode()


def chunked(data: bytes, size: int = 700) -> bytes:
    parts = [b"%x\r\n%s\r\n" % (len(data[i:i + size]), data[i:i + size]) for i in range(0, len(data), size)]
    return b"".join(parts) + b"0\r\n\r\n"


def deflated(data: bytes, raw: bool) -> bytes:
    packer = zlib.compressobj(wbits=-15 if raw else 15)
    return packer.compress(data) + packer.flush()


ZIPPED = gzip.compress(BODY)

# name -> (what the server sends, then closes the connection when the answer says so)
ANSWERS: dict[str, tuple[bytes, bool]] = {
    "length": (ok(BODY), False),
    "chunked": (head("200 OK", "Transfer-Encoding: chunked") + chunked(BODY), False),
    "gzip": (head("200 OK", "Content-Encoding: gzip", f"Content-Length: {len(ZIPPED)}") + ZIPPED, False),
    "gzip chunked": (head("200 OK", "Content-Encoding: gzip", "Transfer-Encoding: chunked") + chunked(ZIPPED),
                     False),
    "x-gzip": (head("200 OK", "Content-Encoding: x-gzip", f"Content-Length: {len(ZIPPED)}") + ZIPPED, False),
    "deflate (zlib)": (head("200 OK", "Content-Encoding: deflate", "Transfer-Encoding: chunked")
                       + chunked(deflated(BODY, raw=False)), False),
    "deflate (raw)": (head("200 OK", "Content-Encoding: deflate", "Transfer-Encoding: chunked")
                      + chunked(deflated(BODY, raw=True)), False),
    "unknown encoding kept": (head("200 OK", "Content-Encoding: br", "Content-Length: 4") + b"abcd", False),
    "headers repeated and folded": (head("200 OK", "X-A: 1", "x-a: 2", "X-Folded: one", "  two",
                                         "Set-Cookie: s=1", "Content-Length: 2") + b"{}", False),
    "204": (head("204 No Content"), False),
    "HTTP/1.0 to the close": (head("200 OK", version="HTTP/1.0") + BODY, True),
    "Connection: close": (head("200 OK", "Connection: close") + BODY, True),
    "503 Retry-After": (head("503 Service Unavailable", "Retry-After: 0", "Content-Length: 4") + b"busy", False),
    "302": (head("302 Found", "Location: https://elsewhere.example/x?token=1", "Content-Length: 0"), False),
    "Content-Length above the cap": (head("200 OK", "Content-Length: 99999999999"), True),
    "cut before the length": (head("200 OK", "Content-Length: 5000") + BODY[:100], True),
    "chunked cut short": (head("200 OK", "Transfer-Encoding: chunked") + chunked(BODY)[:1000], True),
    "chunk size not a number": (head("200 OK", "Transfer-Encoding: chunked") + b"zz\r\nabc\r\n", True),
    "gzip broken": (head("200 OK", "Content-Encoding: gzip", "Content-Length: 10") + b"not gzip!!", False),
    "Content-Length twice": (head("200 OK", "Content-Length: 2", "Content-Length: 3") + b"{}", False),
    "status line garbage": (b"HTCPCP/1.0 418\r\n\r\n", True),
    "closed without an answer": (b"", True),
    "header line too long": (head("200 OK", "X-Long: " + "a" * 70000, "Content-Length: 2") + b"{}", True),
    # Header blocks that direct_answer.py leaves to http.client's own parse (the email
    # package), and answers whose body it leaves to urllib3, next to those it reads itself.
    "100 Continue first": (head("100 Continue", "X-Skipped: 1") + ok(BODY), False),
    "a line without a colon": (head("200 OK", "Content-Length: 2", "not a header", "X-After: 1") + b"{}", False),
    "a name with a space": (head("200 OK", "X Bad: 1", "Content-Length: 2") + b"{}", False),
    "bare LF line ends": (b"HTTP/1.1 200 OK\nX-A: 1\nContent-Length: 2\n\n{}", False),
    "a CR inside a value": (head("200 OK", "X-A: 1\r2", "Content-Length: 2") + b"{}", False),
    "blanks around values, Latin-1": (b"HTTP/1.1 200 OK\r\nX-A:\t caf\xe9 \r\nX-Empty:\r\n"
                                      b"Content-Length:  2\r\n\r\n{}", False),
    "101 headers": (head("200 OK", *[f"X-{n}: {n}" for n in range(100)], "Content-Length: 2") + b"{}", True),
    "Content-Length 0": (head("200 OK", "Content-Length: 0"), False),
    "Content-Length not a number": (head("200 OK", "Content-Length: 2x", "Connection: close") + b"{}", True),
    "Content-Length +2": (head("200 OK", "Content-Length: +2") + b"{}", False),
    "Content-Length twice, equal": (head("200 OK", "Content-Length: 2", "content-length: 2") + b"{}", False),
    "304 with a length": (head("304 Not Modified", "Content-Length: 10"), False),
    "longer than its length": (head("200 OK", "Content-Length: 2") + b"{}tail", True),
    "a length, then Connection: close": (head("200 OK", "Connection: close", "Content-Length: 2") + b"{}", True),
    "HTTP/1.0 with a length": (head("200 OK", "Content-Length: 2", version="HTTP/1.0") + b"{}", True),
    "identity encoding": (head("200 OK", "Content-Encoding: identity", "Content-Length: 2") + b"{}", False),
}


def client(**policy) -> HttpClient:
    defaults = dict(retry_attempts=1, retry_initial_wait=0, connect_timeout=5, read_timeout=5)
    return HttpClient(HttpPolicy(**{**defaults, **policy}))


@pytest.fixture
def direct_sends(monkeypatch):
    """Counts the requests Direct sent (the adapter's are the rest)."""
    sent: list[str] = []
    send = transport.Direct.send

    def counting(self, prepared, **kwargs):
        sent.append(prepared.url)
        return send(self, prepared, **kwargs)

    monkeypatch.setattr(transport.Direct, "send", counting)
    return sent


def outcome(monkeypatch, name: str, url: str, **policy):
    """Send one request with ``name``'s transport; return (result or error, the counts)."""
    if name == "requests":
        monkeypatch.setenv(transport.TRANSPORT_ENV, "requests")
    else:
        monkeypatch.delenv(transport.TRANSPORT_ENV, raising=False)
    http = client(**policy)
    try:
        result = http.request("GET", url, operation=OP)
        got = ("answer", result.status, result.headers, result.body)
    except Exception as exc:  # noqa: BLE001 - the error is what is compared
        got = (type(exc).__name__, str(exc))
    return got, dict(http.responses_by_status)


def serve(answer: bytes, close: bool) -> RawServer:
    def send(conn, head_, n):
        conn.sendall(answer)
        if close:
            conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    return RawServer(send)


@pytest.mark.parametrize("case", ANSWERS)
def test_direct_ends_every_answer_as_the_adapter_does(monkeypatch, direct_sends, case):
    seen = {}
    for name in ("requests", "direct"):
        with serve(*ANSWERS[case]) as server:
            seen[name] = outcome(monkeypatch, name, server.url + "/hsapi/x?id=1")
    assert direct_sends == [direct_sends[0]], "one request, and only with Direct, went straight"
    assert seen["direct"] == seen["requests"]
    if case in ("gzip", "gzip chunked", "chunked", "deflate (zlib)", "deflate (raw)", "length"):
        assert seen["direct"][0][3] == BODY


@pytest.mark.parametrize(("answer", "close", "size"), [
    (head("200 OK", "Content-Length: 5000") + BODY[:1500], True, 1024),  # cut: a short chunk, then a read
    (head("200 OK", "Content-Length: 5000") + BODY[:1500], True, None),  # cut, read in one go
    (ok(BODY), False, 0),
    (head("200 OK", "Content-Length: " + "1" * 5000) + b"{}", True, 1024),  # past int()'s digit limit
], ids=["cut, 1024", "cut, None", "size 0", "5000 digits"])
def test_a_plain_body_streams_fails_and_is_read_again_as_urllib3_s(monkeypatch, answer, close, size):
    """What requests' Response makes of a body read in chunks, then again: the same chunks,
    the same error, and the same error (not an empty body) on a second read."""
    seen = {}
    for name in ("requests", "direct"):
        monkeypatch.setenv(transport.TRANSPORT_ENV, name)
        got: list = []
        with serve(answer, close) as server, transport.new_session() as session:
            try:
                with session.send_request("GET", server.url, timeout=5) as reply:
                    try:
                        got.extend(len(chunk) for chunk in reply.iter_content(size))
                    except Exception as exc:  # noqa: BLE001 - compared
                        got.append(f"{type(exc).__name__}: {exc}")
                    try:
                        got.append(("again", reply.content))
                    except Exception as exc:  # noqa: BLE001 - compared
                        got.append(("again", f"{type(exc).__name__}: {exc}"))
            except Exception as exc:  # noqa: BLE001 - compared
                got.append(("send", type(exc).__name__))
        seen[name] = got
    assert seen["direct"] == seen["requests"]


def test_a_refused_connection_and_a_read_timeout_read_the_same(monkeypatch, direct_sends):
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        refused = f"http://127.0.0.1:{unused.getsockname()[1]}/x"  # bound, never listening
        results = [outcome(monkeypatch, name, refused) for name in ("requests", "direct")]
    assert results[0] == results[1] == (("TransportError", f"{OP}: connection failed (connection refused)"),
                                        {(OP, "error"): 1})
    with RawServer(lambda conn, head_, n: None) as silent:  # reads the request, never answers
        results = [outcome(monkeypatch, name, silent.url, read_timeout=0.3) for name in ("requests", "direct")]
    assert results[0] == results[1] == (("TransportError", f"{OP}: timed out (timed out)"), {(OP, "timeout"): 1})
    assert len(direct_sends) == 2


def test_a_kept_alive_connection_is_reused_and_replaced_once_the_server_closed_it(monkeypatch, direct_sends):
    closing = threading.Event()

    def send(conn, head_, n):
        conn.sendall(ok(b'{"n": %d}' % n))
        if n == 1:  # an idle keep-alive connection the server drops after its answer
            closing.wait(5)
            conn.close()

    monkeypatch.delenv(transport.TRANSPORT_ENV, raising=False)
    http = client()
    with RawServer(send) as server:
        first = http.request("GET", server.url, operation=OP).body
        second = http.request("GET", server.url, operation=OP).body
        closing.set()
        for _ in range(100):  # until the client's side sees the close
            if server.connections == 1 and http.session.direct._connections:
                connection = next(iter(http.session.direct._connections.values()))
                if connection.sock is None or transport.wait_for_read(connection.sock, 0.01):
                    break
        third = http.request("GET", server.url, operation=OP).body
        assert (first, second, third) == (b'{"n": 0}', b'{"n": 1}', b'{"n": 0}')
        assert server.connections == 2, "reused once, then replaced: not an error"
    assert http.responses_by_status == {(OP, "200"): 3} and len(direct_sends) == 3


def test_an_answer_not_read_to_its_end_never_leaves_its_rest_for_the_next(monkeypatch):
    whole = b"[" + b"1," * 5000 + b"1]"

    def send(conn, head_, n):
        answer = ok(whole)
        conn.sendall(answer[:200])
        if n == 0:  # the rest comes after the client gave up on this answer
            time.sleep(0.3)
        conn.sendall(answer[200:])

    monkeypatch.delenv(transport.TRANSPORT_ENV, raising=False)
    session = transport.new_session()
    with RawServer(send) as server:
        with session.send_request("GET", server.url, timeout=5) as answer:
            assert next(answer.iter_content(10)) == b"[1,1,1,1,1"  # then closed mid-body
        with session.send_request("GET", server.url, timeout=5) as answer:
            assert answer.content == whole
        assert server.connections == 2


# -- TLS -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    """A CA and a certificate for 127.0.0.1 and localhost it signed (files in a temp dir)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    folder = tmp_path_factory.mktemp("tls")
    now = dt.datetime.now(dt.UTC)

    def certificate(subject, key, issuer, issuer_key, ca: bool, names=()):
        builder = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
                   .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
                   .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
                                  critical=False)
                   .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                                key_encipherment=not ca, data_encipherment=False,
                                                key_agreement=False, key_cert_sign=ca, crl_sign=ca,
                                                encipher_only=False, decipher_only=False), critical=True))
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(list(names)), critical=False)
            builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                                            critical=False)
        return builder.sign(issuer_key, hashes.SHA256())

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = certificate("escapia-ical test CA", ca_key, "escapia-ical test CA", ca_key, True)
    leaf = certificate("127.0.0.1", key, "escapia-ical test CA", ca_key, False,
                       [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    other = certificate("wrong.example", key, "escapia-ical test CA", ca_key, False, [x509.DNSName("wrong.example")])
    pem = serialization.Encoding.PEM
    (folder / "ca.pem").write_bytes(ca.public_bytes(pem))
    for name, cert in (("leaf.pem", leaf), ("wrong.pem", other)):
        (folder / name).write_bytes(cert.public_bytes(pem) + key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return folder


@pytest.fixture
def tls_server(tls, request):
    """(port, the server) of a TLS server on loopback with ``request.param``'s certificate."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls / getattr(request, "param", "leaf.pem"))
    with RawServer(lambda conn, head_, n: conn.sendall(ok(b'{"tls": true}')),
                   wrap=lambda conn: context.wrap_socket(conn, server_side=True)) as server:
        yield server.port, server


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_tls_with_the_environment_ca_bundle_is_sent_directly(monkeypatch, direct_sends, tls, tls_server, host):
    port, server = tls_server
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tls / "ca.pem"))
    results = [outcome(monkeypatch, name, f"https://{host}:{port}/x") for name in ("requests", "direct")]
    assert results[0] == results[1]
    assert results[1][0][3] == b'{"tls": true}'
    assert len(direct_sends) == 1
    before, http = server.connections, client()
    assert [http.request("GET", f"https://{host}:{port}/y", operation=OP).body for _ in range(2)] == [
        b'{"tls": true}'] * 2
    assert server.connections == before + 1, "one TLS connection, kept alive for both"


@pytest.mark.parametrize(("tls_server", "bundle"), [("leaf.pem", None), ("wrong.pem", "ca.pem")],
                         ids=["unknown CA", "another name"], indirect=["tls_server"])
def test_tls_refuses_an_unknown_certificate_and_a_wrong_name_as_the_adapter_does(monkeypatch, direct_sends,
                                                                                  tls, tls_server, bundle):
    port, _ = tls_server
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    if bundle:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tls / bundle))
    else:
        monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    refused = [outcome(monkeypatch, name, f"https://127.0.0.1:{port}/x") for name in ("requests", "direct")]
    assert refused[0] == refused[1]
    assert refused[1] == (("TransportError", f"{OP}: connection failed (SSLCertVerificationError)"),
                          {(OP, "error"): 1})
    assert len(direct_sends) == 1


def test_a_proxy_a_missing_bundle_or_the_fallback_takes_the_adapter(monkeypatch, direct_sends, tmp_path):
    with serve(*ANSWERS["length"]) as server:
        monkeypatch.setenv("HTTP_PROXY", server.url)  # the proxy answers for anyone
        assert outcome(monkeypatch, "direct", "http://escapia.invalid/x")[0][3] == BODY
        monkeypatch.delenv("HTTP_PROXY")
        assert outcome(monkeypatch, "requests", server.url)[0][3] == BODY
        assert "/x" not in "".join(direct_sends) and direct_sends == []
        assert outcome(monkeypatch, "direct", server.url)[0][3] == BODY
        assert direct_sends == [server.url + "/"]
        with transport.new_session() as session, \
                session.send_request("POST", server.url + "/text", timeout=5, data="ü") as answer:
            assert answer.content == BODY  # a text body: http.client and urllib3 encode it differently
        assert direct_sends == [server.url + "/"]
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "missing.pem"))
    results = [outcome(monkeypatch, name, "https://127.0.0.1:9/x") for name in ("requests", "direct")]
    assert results[0] == results[1] and len(direct_sends) == 1


def test_a_reused_connection_takes_each_request_s_read_timeout(monkeypatch):
    monkeypatch.delenv(transport.TRANSPORT_ENV, raising=False)
    session = transport.new_session()
    with RawServer(lambda conn, head_, n: conn.sendall(ok()) if n == 0 else None) as server:
        with session.send_request("GET", server.url, timeout=(5, 5)) as answer:
            assert answer.content == b"{}"
        started = time.monotonic()
        with pytest.raises(transport.requests.ReadTimeout):
            session.send_request("GET", server.url, timeout=(5, 0.3))
        assert time.monotonic() - started < 2 and server.connections == 1


def test_a_request_s_head_and_body_leave_in_one_write(monkeypatch):
    writes: list[bytes] = []

    class Counting(socket.socket):
        def sendall(self, data, *args):
            writes.append(bytes(data))
            return super().sendall(data, *args)

    tcp = transport._Connection._tcp
    monkeypatch.setattr(transport._Connection, "_tcp", lambda self: Counting(fileno=tcp(self).detach()))
    monkeypatch.delenv(transport.TRANSPORT_ENV, raising=False)
    with RawServer(lambda conn, head_, n: conn.sendall(ok())) as server, transport.new_session() as session:
        for _ in range(2):
            with session.send_request("POST", server.url + "/op", timeout=5, json={"unit": "1"}) as answer:
                assert answer.content == b"{}"
        assert len(writes) == 2 and writes[0] == writes[1], "one write a request"
        assert writes[0].startswith(b"POST /op HTTP/1.1\r\n") and writes[0].endswith(b'\r\n\r\n{"unit": "1"}')
        assert b"".join(writes) == server.received[0]


def test_a_body_cut_by_a_read_timeout_never_leaves_its_rest_for_the_retry(monkeypatch, direct_sends):
    """urllib3 closes the http.client answer itself when reading it fails: the connection
    must still not be reused (its socket would hand the old body's tail to the retry)."""
    answer = ok(b"[" + b"1," * 3000 + b"1]")

    def send(conn, head_, n):
        if n == 0 and conn_count() == 1:  # the first request: half, a stall, the rest
            conn.sendall(answer[:300])
            time.sleep(0.6)
        conn.sendall(answer[300:] if n == 0 and conn_count() == 1 else answer)

    results = {}
    for name in ("requests", "direct"):
        with RawServer(send) as server:
            conn_count = lambda: server.connections  # noqa: E731
            got = outcome(monkeypatch, name, server.url, read_timeout=0.3, retry_attempts=2)
            results[name] = (got, server.connections, sum(r.count(b"GET / HTTP/1.1") for r in server.received))
    assert results["direct"] == results["requests"]
    assert results["direct"][0][0][3] == b"[" + b"1," * 3000 + b"1]" and results["direct"][1:] == (2, 2)
    assert results["direct"][0][1] == {(OP, "error"): 1, (OP, "200"): 1}


@pytest.mark.parametrize(("ours", "theirs"), [
    (lambda: transport._TlsConnection("api.example.com", 443, ""), lambda: urllib3.connection.HTTPSConnection(
        "api.example.com", 443)),
    (lambda: transport._TlsConnection("api.example.com", 8443, ""), lambda: urllib3.connection.HTTPSConnection(
        "api.example.com", 8443)),
    (lambda: transport._TlsConnection("::1", 443, ""), lambda: urllib3.connection.HTTPSConnection("::1", 443)),
    (lambda: transport._Connection("api.example.com", 80), lambda: urllib3.connection.HTTPConnection(
        "api.example.com", 80)),
    (lambda: transport._Connection("api.example.com", 8080), lambda: urllib3.connection.HTTPConnection(
        "api.example.com.", 8080)),  # Direct strips a trailing dot before, as urllib3 does
], ids=["https default port", "https other port", "https IPv6", "http default port", "http trailing dot"])
def test_the_host_header_is_urllib3_s(ours, theirs):
    mine, urllib3s = ours(), theirs()
    for connection in (mine, urllib3s):
        http_client_putrequest = transport.http.client.HTTPConnection.putrequest
        http_client_putrequest(connection, "GET", "/x")
    assert mine._buffer == urllib3s._buffer


def test_a_ca_bundle_that_is_not_one_fails_as_through_the_adapter(monkeypatch, direct_sends, tls_server, tmp_path):
    port, _ = tls_server
    (tmp_path / "not.pem").write_text("not a certificate\n")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "not.pem"))
    results = [outcome(monkeypatch, name, f"https://127.0.0.1:{port}/x") for name in ("requests", "direct")]
    assert results[0] == results[1] and results[1][1] == {(OP, "error"): 1}
    assert results[1][0][1].startswith(f"{OP}: connection failed (")
    assert len(direct_sends) == 1 and not transport._contexts.get(str(tmp_path / "not.pem"))


def test_a_stalled_send_ends_at_the_connect_timeout_as_through_the_adapter(monkeypatch, direct_sends):
    """urllib3 sends under the connect timeout and waits for the answer under the read
    timeout: a server that never reads a large body fails the request at the former."""
    results = {}
    for name in ("requests", "direct"):
        with RawServer(lambda conn, head_, n: None, read_requests=False) as server:  # never reads
            monkeypatch.setenv(transport.TRANSPORT_ENV, name)
            http = client(connect_timeout=0.5, read_timeout=3, total_timeout=20)
            started = time.monotonic()
            with pytest.raises(Exception) as caught:
                http.request("POST", server.url, operation=OP, data=b"x" * (64 << 20))
            results[name] = (str(caught.value), dict(http.responses_by_status), time.monotonic() - started < 2)
    assert results["direct"] == results["requests"] == (
        f"{OP}: connection failed (timed out)", {(OP, "error"): 1}, True)
    assert len(direct_sends) == 1


def test_a_body_read_again_after_it_failed_does_not_make_its_connection_reusable(monkeypatch):
    answer = ok(b"[" + b"1," * 3000 + b"1]")

    def send(conn, head_, n):
        if server.connections == 1 and n == 0:
            conn.sendall(answer[:300])
            time.sleep(0.6)
            conn.sendall(answer[300:])
        else:
            conn.sendall(ok())

    monkeypatch.delenv(transport.TRANSPORT_ENV, raising=False)
    session = transport.new_session()
    with RawServer(send) as server:
        with session.send_request("GET", server.url, timeout=(5, 0.3)) as first:
            with pytest.raises(transport.requests.ConnectionError):
                first.content  # noqa: B018 - the read is the point
            assert first.content == b""  # requests' answer to a second read: nothing, "consumed"
        with session.send_request("GET", server.url, timeout=5) as second:
            assert second.content == b"{}"
        assert server.connections == 2


def test_an_answer_left_open_is_not_read_as_the_next_one(monkeypatch):
    """A 204 left unread leaves nothing readable on the socket: only the connection's own
    record of its last answer shows it was never finished (http.client would refuse)."""
    monkeypatch.delenv(transport.TRANSPORT_ENV, raising=False)
    session = transport.new_session()
    answers = iter([head("204 No Content")])
    with RawServer(lambda conn, head_, n: conn.sendall(next(answers, ok(b'{"second": 1}')))) as server:
        first = session.send_request("POST", server.url, timeout=5, data=b"1")  # neither read nor closed
        with session.send_request("POST", server.url, timeout=5, data=b"2") as second:
            assert second.status_code == 200 and second.content == b'{"second": 1}'
        assert first.status_code == 204  # still held (collected, it would close its connection)
        assert server.connections == 2 and sum(r.count(b"POST") for r in server.received) == 2
