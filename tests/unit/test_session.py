"""sources/session.py: the environment's proxies and CA bundle, read once per origin, are
what requests itself would read on every request; ~/.netrc is never read."""

import http.server
import threading

import pytest
import requests

from escapia_ical.sources.session import Session

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
