"""sources/session.py: the environment's proxies and CA bundle, read once per origin, are
what requests itself would read on every request; ~/.netrc is never read."""

import http.client
import http.server
import threading

import pytest
import requests

from escapia_ical.sources import transport
from escapia_ical.sources.session import Session
from escapia_ical.sources.transport import new_session

ENVIRONMENTS = {
    "none": {},
    "http and https proxies": {"HTTP_PROXY": "http://proxy.example:3128", "HTTPS_PROXY": "http://tls.example:8080"},
    "lower case": {"https_proxy": "http://lower.example:1", "http_proxy": "http://lower.example:2"},
    "all_proxy": {"ALL_PROXY": "socks5://socks.example:1080"},
    "no_proxy names the host": {"HTTPS_PROXY": "http://p.example:1", "NO_PROXY": "localhost,api.example.com"},
    "no_proxy by suffix": {"HTTPS_PROXY": "http://p.example:1", "no_proxy": ".example.com"},
    "no_proxy elsewhere": {"HTTPS_PROXY": "http://p.example:1", "NO_PROXY": "other.example"},
    "no_proxy star": {"HTTP_PROXY": "http://p.example:1", "NO_PROXY": "*"},
    "CA bundle": {"REQUESTS_CA_BUNDLE": "/etc/ssl/ours.pem"},
    "curl CA bundle": {"CURL_CA_BUNDLE": "/etc/ssl/curl.pem"},
    "both bundles": {"REQUESTS_CA_BUNDLE": "/etc/ssl/ours.pem", "CURL_CA_BUNDLE": "/etc/ssl/curl.pem"},
}
URLS = ["https://api.example.com/v1/units?x=1", "http://api.example.com:8080/a", "https://10.0.0.7/b",
        "http://127.0.0.1:9/c"]
_VARIABLES = {name for env in ENVIRONMENTS.values() for name in env} | {"NETRC"}


@pytest.fixture
def environ(monkeypatch):
    for name in _VARIABLES | {n.lower() for n in _VARIABLES} | {n.upper() for n in _VARIABLES}:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.mark.parametrize("case", ENVIRONMENTS)
@pytest.mark.parametrize("verify", [None, True, False, "/given.pem"])
def test_the_settings_are_requests_own(environ, case, verify):
    for name, value in ENVIRONMENTS[case].items():
        environ.setenv(name, value)
    ours, theirs = Session(), requests.Session()
    for url in URLS:
        for _ in range(2):  # the second time from what was read the first
            assert ours.merge_environment_settings(url, {}, None, verify, None) == \
                theirs.merge_environment_settings(url, {}, None, verify, None), (case, url)


def test_the_environment_is_read_once_per_origin(environ, monkeypatch):
    environ.setenv("HTTPS_PROXY", "http://first.example:1")
    session = Session()
    assert session.merge_environment_settings(URLS[0], {}, None, None, None)["proxies"]["https"] == \
        "http://first.example:1"
    environ.setenv("HTTPS_PROXY", "http://second.example:1")
    same_origin = "https://api.example.com/other"
    assert session.merge_environment_settings(same_origin, {}, None, None, None)["proxies"]["https"] == \
        "http://first.example:1"
    assert Session().merge_environment_settings(same_origin, {}, None, None, None)["proxies"]["https"] == \
        "http://second.example:1"


def test_netrc_credentials_are_never_sent(environ, tmp_path):
    netrc = tmp_path / "netrc"
    netrc.write_text("machine api.example.com login someone password hunter2\n")
    netrc.chmod(0o600)
    environ.setenv("NETRC", str(netrc))
    request = requests.Request("GET", "https://api.example.com/v1/units")
    assert "Authorization" in requests.Session().prepare_request(request).headers  # what requests would do
    assert "Authorization" not in Session().prepare_request(request).headers


class _Proxy(http.server.BaseHTTPRequestHandler):
    seen: list[str] = []

    def do_GET(self):  # noqa: N802 - http.server's name
        self.seen.append(self.path)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


def test_a_request_goes_through_the_environment_proxy(environ):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Proxy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        environ.setenv("HTTP_PROXY", f"http://127.0.0.1:{server.server_address[1]}")
        with Session() as session:
            answer = session.get("http://escapia.invalid/v1/units", timeout=5)
        assert answer.text == "ok"
        assert _Proxy.seen == ["http://escapia.invalid/v1/units"]  # the absolute URI: a proxy's request
    finally:
        server.shutdown()
        server.server_close()


def test_send_request_goes_through_the_environment_proxy_too(environ):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Proxy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        environ.setenv("HTTP_PROXY", f"http://127.0.0.1:{server.server_address[1]}")
        _Proxy.seen.clear()
        with Session() as session, session.send_request("GET", "http://escapia.invalid/x", timeout=5) as answer:
            assert answer.content == b"ok"
        assert _Proxy.seen == ["http://escapia.invalid/x"]
    finally:
        server.shutdown()
        server.server_close()


class _Recorder(http.server.BaseHTTPRequestHandler):
    """Records each request as it came on the wire; answers a redirect with a cookie."""

    protocol_version = "HTTP/1.1"
    seen: list[tuple[str, str, list[tuple[str, str]], bytes]] = []

    def _answer(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.seen.append((self.command, self.path, list(self.headers.items()), body))
        self.send_response(302)
        self.send_header("Location", "/elsewhere")
        self.send_header("Set-Cookie", "session=abc; Path=/")
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = _answer  # noqa: N815 - http.server's names

    def log_message(self, *args):
        pass


REQUESTS = [
    ("GET", {"params": {"id": "R 1/ü", "n": 2}}),
    ("POST", {"json": {"dateRange": {"startDate": "2027-01-01"}, "unit": "ü"},
              "headers": {"Authorization": "Bearer t", "x-homeaway-hasp-api-pmcid": "1020"}}),
    ("POST", {"data": b"<?xml version='1.0'?><Envelope/>",
              "headers": {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": "UnitCalendarAvail"}}),
    ("GET", {"auth": (b"client", "s€cret".encode())}),
    ("GET", {"headers": {"accept": "text/calendar", "If-None-Match": '"e1"', "Accept-Encoding": None}}),
]


@pytest.mark.parametrize("make", [Session, new_session], ids=["adapter", "direct"])
@pytest.mark.parametrize(("method", "kwargs"), REQUESTS)
def test_send_request_sends_what_requests_would_and_keeps_no_cookie(environ, method, kwargs, make):
    """HttpClient's lean path, through requests' adapter and straight over http.client
    (sources/transport.py): the same bytes as Session.request (headers, query, body, auth),
    a redirect handed back rather than followed, and no cookie kept or sent."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/hsapi/Op"
    try:
        _Recorder.seen.clear()
        with requests.Session() as theirs:
            theirs.trust_env = False
            theirs.request(method, url, allow_redirects=False, timeout=5, **kwargs).close()
        direct: list[str] = []
        send = transport.Direct.send
        environ.setattr(transport.Direct, "send", lambda self, prepared, **kw: direct.append(prepared.url)
                        or send(self, prepared, **kw))
        with make() as ours:
            for _ in range(2):  # the second after the first answer's Set-Cookie
                with ours.send_request(method, url, timeout=5, **kwargs) as answer:
                    assert answer.status_code == 302
        assert len(direct) == (2 if make is new_session else 0), "sent by the transport named"
        expected, *sent = _Recorder.seen
        assert sent == [expected, expected]
        assert not any(name.lower() == "cookie" for name, _ in sent[1][2])
    finally:
        server.shutdown()
        server.server_close()


def test_one_kept_alive_connection_sends_each_request_as_requests_would(environ):
    """Direct's connection puts each header line it has put before from memory
    (transport._Connection.putheader): a run of different requests, json bodies of
    different lengths among them, leaves on the wire exactly as requests sends them."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/hsapi/Op"
    runs = [*REQUESTS, ("POST", {"json": {"unit": "1" * 150}, "headers": {"Authorization": "Bearer u"}}),
            ("POST", {"json": {"unit": "2"}, "headers": {"Authorization": "Bearer u"}})]
    try:
        _Recorder.seen.clear()
        for method, kwargs in runs:
            with requests.Session() as theirs:  # (one each: it would send the Set-Cookie back)
                theirs.trust_env = False
                theirs.request(method, url, allow_redirects=False, timeout=5, **kwargs).close()
        expected = list(_Recorder.seen)
        _Recorder.seen.clear()
        ours = new_session()
        with ours:
            for _ in range(2):
                for method, kwargs in runs:
                    with ours.send_request(method, url, timeout=5, **kwargs) as answer:
                        assert answer.status_code == 302
            connections = list(ours.direct._connections.values())
        assert _Recorder.seen == expected + expected
        assert len(connections) == 1 and connections[0]._lines, "one connection, its lines remembered"
    finally:
        server.shutdown()
        server.server_close()


PREPARED = [
    ("GET", "https://api.example.com/hsapi/GetReservationById", {"params": {"id": "R 1/ü"}}),
    ("GET", "https://api.example.com/hsapi/GetReservationById", {"params": {"id": "R2"}}),
    ("GET", "https://api.example.com/hsapi/GetReservationChanges", {"params": {"startVersion": 7}}),
    ("GET", "https://api.example.com/hsapi/GetReservationChanges", {"params": {"startVersion": "7", "x": 1}}),
    ("GET", "https://api.example.com/hsapi/GetReservationChanges", {"params": [("startVersion", 8)]}),
    ("POST", "https://api.example.com/hsapi/GetUnitNonAvailability", {"json": {"unit": "1"}}),
    ("POST", "https://Bücher.example/soap?wsdl", {"data": b"<Envelope/>"}),
    ("get", "https://api.example.com/hsapi/auth/token", {"auth": (b"id", b"secret")}),
]


def test_prepared_requests_are_requests_own_also_when_the_url_is_remembered():
    """Session._prepare (URLs without params remembered) gives what
    requests.Request(...).prepare() gives, on first sight and on every later one, with
    different params for one URL never sharing a query."""
    ours = Session()
    for _ in range(2):
        for method, url, kwargs in PREPARED:
            theirs = requests.Request(method, url, headers={"A": "1"}, **kwargs).prepare()
            mine = ours._prepare(method, url, requests.structures.CaseInsensitiveDict({"A": "1"}), **kwargs)
            assert (mine.method, mine.url, dict(mine.headers), mine.body) == (
                theirs.method, theirs.url, dict(theirs.headers), theirs.body)


def test_a_header_value_with_a_line_break_is_still_refused():
    ours = Session()
    ours._prepare("GET", "https://api.example.com/a", requests.structures.CaseInsensitiveDict())
    with pytest.raises(requests.exceptions.InvalidHeader):
        ours._prepare("GET", "https://api.example.com/a",
                      requests.structures.CaseInsensitiveDict({"Authorization": "Bearer t\r\nX-Evil: 1"}))


def test_the_remembered_urls_are_bounded(monkeypatch):
    monkeypatch.setattr("escapia_ical.sources.session.MAX_URLS", 3)
    ours = Session()
    for index in range(10):
        url = f"https://api.example.com/op{index}"
        assert ours._prepare("GET", url, requests.structures.CaseInsensitiveDict()).url == url
    assert len(ours._urls) == 3


def _theirs(method, url, session_headers, headers, **kwargs):
    """What requests.Session.request would prepare (no environment, no cookies)."""
    with requests.Session() as theirs:
        theirs.trust_env = False
        theirs.headers = requests.structures.CaseInsensitiveDict(session_headers)
        return theirs.prepare_request(requests.Request(method, url, headers=headers, **kwargs))


def test_json_requests_seen_before_are_prepared_as_requests_prepares_them():
    """A json= request whose method, URL and headers were seen before takes its headers from
    the first: the same headers in the same order, the body and its Content-Length its own,
    and a change of token, of a session header or of the URL prepared afresh."""
    ours = Session()
    ours.headers["User-Agent"] = "escapia-ical/test"
    url = "https://api.example.com/hsapi/GetUnitNonAvailability"
    bodies = [{"nativePMSUnitID": "1"}, {"nativePMSUnitID": "123456789", "n": "ü€"}, {"a": [1, 2.5, None]}]
    for token, session_agent, where in [("t1", "a", url), ("t1", "a", url), ("t2", "a", url),
                                        ("t2", "b", url), ("t2", "b", url + "?x=1"), ("t1", "a", url)]:
        ours.headers["User-Agent"] = session_agent
        headers = {"Authorization": f"Bearer {token}", "x-homeaway-hasp-api-pmcid": "1020", "Accept": None}
        for body in bodies:
            mine = ours._prepare_json("POST", where, headers, json=body)
            theirs = _theirs("POST", where, ours.headers, headers, json=body)
            assert (mine.method, mine.url, list(mine.headers.items()), mine.body) == (
                theirs.method, theirs.url, list(theirs.headers.items()), theirs.body)
    assert len(ours._json_heads) == 4, "one set of headers per method, URL and headers"


def test_a_json_request_is_refused_as_by_requests_also_once_its_headers_are_known():
    ours = Session()
    url = "https://api.example.com/hsapi/Op"
    headers = {"Authorization": "Bearer t"}
    ours._prepare_json("POST", url, headers, json={"ok": 1})
    with pytest.raises(requests.exceptions.InvalidJSONError):
        ours._prepare_json("POST", url, headers, json={"n": float("nan")})
    with pytest.raises(requests.exceptions.InvalidHeader):
        ours._prepare_json("POST", url, {"Authorization": "Bearer t\r\nX-Evil: 1"}, json={"ok": 1})
    assert ours._prepare_json("POST", url, headers, params={"a": 1}, json={"ok": 1}) is None, \
        "with params (or data, or auth): requests' own steps"
    assert ours._prepare_json("POST", url, {"X": ["a"]}, json={"ok": 1}) is None, "not hashable: requests' steps"
    with pytest.raises(requests.exceptions.InvalidHeader):
        ours.send_request("POST", url, timeout=1, headers={"X": ["a"]}, json={"ok": 1})
    for _ in range(2):
        assert ours._prepare_json(b"post", url, headers, json={"ok": 1}).method == "POST"


def test_the_known_json_heads_are_bounded(monkeypatch):
    monkeypatch.setattr("escapia_ical.sources.session.MAX_URLS", 3)
    ours = Session()
    for index in range(10):
        ours._prepare_json("POST", "https://api.example.com/op", {"Authorization": f"Bearer {index}"}, json={})
    assert 1 <= len(ours._json_heads) <= 3
    assert any(("Authorization", "Bearer 9") in key[3] for key in ours._json_heads), "the newest is kept"


def test_a_header_line_is_put_from_memory_only_for_the_same_str_value():
    """1, True and 1.0 are equal keys: each is still written (or refused) as http.client does."""
    ours, theirs = transport._Connection("127.0.0.1", 80), http.client.HTTPConnection("127.0.0.1", 80)
    for connection in (ours, theirs):
        connection.putrequest("GET", "/")
    for value in ("1", 1, True, "1", b"1"):
        ours.putheader("X-N", value)
        theirs.putheader("X-N", value)
    for connection in (ours, theirs):
        with pytest.raises(TypeError):
            connection.putheader("X-N", 1.0)
    assert ours._buffer == theirs._buffer
    assert [key for key in ours._lines if key[0] == "X-N"] == [("X-N", "1")], "only the str value remembered"
