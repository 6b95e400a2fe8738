"""The shipped nginx snippet, under a real nginx, serving what the real CLI publishes.

config/nginx.conf.example is included as it is, with only its `listen 80;`, `root ...;` and
`access_log ...;` lines changed, into a minimal nginx.conf in tmp; nginx runs in the foreground on a free
loopback port with root = the deployment's output folder. scripts/test makes sure nginx is
installed. Without it these tests fail (they are never skipped silently) unless
ESCAPIA_ICAL_SKIP_NGINX=1 is set.
"""

from __future__ import annotations

import datetime as dt
import grp
import gzip
import json
import os
import pwd
import re
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import icalendar
import pytest
import requests

from escapia_ical.channels.logformat import parse_line
from escapia_ical.feeds.publish import publish_feed

REPO = Path(__file__).resolve().parents[2]
SNIPPET = REPO / "config" / "nginx.conf.example"
CONTENT_TYPE = "text/calendar; charset=utf-8"
CACHE_CONTROL = "no-cache"


def nginx_binary() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)
    if found:
        return found
    if os.environ.get("ESCAPIA_ICAL_SKIP_NGINX") == "1":
        pytest.skip("nginx is not installed and ESCAPIA_ICAL_SKIP_NGINX=1")
    pytest.fail("nginx is not installed (neither on PATH nor /usr/sbin/nginx): scripts/test installs "
                "it as root on Debian (apt-get install nginx); or set ESCAPIA_ICAL_SKIP_NGINX=1 to skip",
                pytrace=False)


def render_snippet(listen: str, root: Path, access_log: Path) -> str:
    """Return the shipped snippet listening on ``listen``, serving ``root`` and logging to
    ``access_log`` (in its own format); nothing else changes."""
    text = SNIPPET.read_text(encoding="utf-8")
    text, listens = re.subn(r"(?m)^(\s*)listen\s+80;", rf"\g<1>listen {listen};", text)
    text, roots = re.subn(r"(?m)^(\s*)root\s+/srv/escapia-ical/feeds;", rf"\g<1>root {root};", text)
    text, logs = re.subn(r"(?m)^(\s*)access_log\s+/var/log/nginx/escapia-ical\.access\.log escapia_ical;",
                         rf"\g<1>access_log {access_log} escapia_ical;", text)
    assert (listens, roots, logs) == (1, 1, 1), ("the snippet must have one `listen 80;`, one `root "
                                                 "/srv/escapia-ical/feeds;` and one `access_log ...;`")
    return text


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Nginx:
    base_url: str
    root: Path
    session: requests.Session
    access_log: Path

    def get(self, path: str, **headers: str) -> requests.Response:
        headers.setdefault("Accept-Encoding", "identity")
        return self.session.get(self.base_url + path, headers=headers, timeout=5)

    def raw_get(self, path: str) -> tuple[int, bytes]:
        """GET ``path`` sent exactly as written (no URL normalisation by the client)."""
        host, port = self.base_url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=5) as conn:
            conn.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            answer = b""
            while chunk := conn.recv(65536):
                answer += chunk
        status = int(answer.split(b" ", 2)[1])
        return status, answer


@pytest.fixture
def nginx(deployment, tmp_path_factory):
    binary = nginx_binary()
    work = tmp_path_factory.mktemp("nginx")
    port = free_port()
    access_log = work / "access.log"
    (work / "site.conf").write_text(render_snippet(f"127.0.0.1:{port}", deployment.output, access_log),
                                    encoding="utf-8")
    temp_paths = "".join(f"    {name}_temp_path {work / name};\n"
                         for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    # As root, workers would run as nobody, who cannot read pytest's 0700 tmp folders.
    user = (f"user {pwd.getpwuid(os.geteuid()).pw_name} {grp.getgrgid(os.getegid()).gr_name};\n"
            if os.geteuid() == 0 else "")
    (work / "nginx.conf").write_text(
        f"{user}worker_processes 1;\nerror_log {work / 'error.log'} warn;\nevents {{}}\n"
        f"http {{\n    access_log off;\n{temp_paths}    include {work / 'site.conf'};\n}}\n",
        encoding="utf-8")
    command = [binary, "-p", str(work), "-c", str(work / "nginx.conf"), "-e", str(work / "error.log"),
               "-g", f"daemon off; pid {work / 'nginx.pid'};"]
    output = work / "output.log"
    with open(output, "wb") as sink:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT)

    def log() -> str:
        return "".join(f.read_text(errors="replace") for f in (output, work / "error.log") if f.exists())

    try:
        deadline = time.monotonic() + 10
        while True:
            if process.poll() is not None:
                pytest.fail(f"nginx exited with {process.returncode}:\n{log()}", pytrace=False)
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"nginx did not listen on 127.0.0.1:{port} within 10 s:\n{log()}",
                                pytrace=False)
                time.sleep(0.02)
        session = requests.Session()
        session.trust_env = False  # no proxy from the environment for loopback
        yield Nginx(f"http://127.0.0.1:{port}", deployment.output, session, access_log)
        session.close()
    finally:
        process.terminate()  # SIGTERM: nginx's fast shutdown
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    assert "[emerg]" not in log() and "[alert]" not in log(), log()


def synced_unit(deployment) -> tuple[str, Path, str]:
    result = deployment.run("sync")
    assert result.returncode == 0, result.stderr
    unit_id = deployment.sandbox.unit_ids()[0]
    path = deployment.feed(unit_id)
    return unit_id, path, f"/sandbox/{path.name}"


def test_a_feed_is_served_as_utf8_calendar_with_validators_and_gzip(deployment, nginx):
    _, path, url = synced_unit(deployment)
    response = nginx.get(url)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == CONTENT_TYPE
    assert response.content == path.read_bytes()
    assert response.headers["ETag"] and "Content-Encoding" not in response.headers
    last_modified = dt.datetime.strptime(response.headers["Last-Modified"], "%a, %d %b %Y %H:%M:%S GMT")
    assert last_modified.replace(tzinfo=dt.UTC).timestamp() == int(path.stat().st_mtime)
    assert response.headers["Cache-Control"] == CACHE_CONTROL
    assert "Server" not in response.headers or response.headers["Server"] == "nginx"  # server_tokens off

    zipped = nginx.session.get(nginx.base_url + url, headers={"Accept-Encoding": "gzip"}, stream=True, timeout=5)
    assert zipped.status_code == 200
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert zipped.headers["Content-Type"] == CONTENT_TYPE
    assert "Accept-Encoding" in zipped.headers["Vary"]
    body = zipped.raw.read(decode_content=False)
    assert len(body) < path.stat().st_size
    assert gzip.decompress(body) == path.read_bytes()


def test_an_unchanged_sync_gives_304_to_conditional_requests(deployment, nginx):
    _, path, url = synced_unit(deployment)
    first = nginx.get(url)
    etag, last_modified = first.headers["ETag"], first.headers["Last-Modified"]
    time.sleep(1.1)  # so that a rewrite would change mtime, hence both validators
    result = deployment.run("sync")
    assert result.returncode == 0, result.stderr

    by_etag = nginx.get(url, **{"If-None-Match": etag})
    assert by_etag.status_code == 304 and by_etag.content == b""
    assert by_etag.headers["ETag"] == etag
    by_date = nginx.get(url, **{"If-Modified-Since": last_modified})
    assert by_date.status_code == 304 and by_date.content == b""
    # A compressed response carries the weak form of the ETag; it revalidates too.
    weak = nginx.get(url, **{"Accept-Encoding": "gzip", "If-None-Match": f"W/{etag}"})
    assert weak.status_code == 304
    assert nginx.get(url).content == path.read_bytes()


def test_a_changed_sync_changes_the_etag(deployment, nginx):
    unit_id, path, url = synced_unit(deployment)
    first = nginx.get(url)
    time.sleep(1.1)
    start = dt.date.today() + dt.timedelta(days=500)
    assert not deployment.truth(unit_id) & {start + dt.timedelta(days=i) for i in range(3)}
    deployment.sandbox.add_reservation(unit_id, start, start + dt.timedelta(days=3))
    result = deployment.run("sync")
    assert result.returncode == 0, result.stderr

    second = nginx.get(url, **{"If-None-Match": first.headers["ETag"]})
    assert second.status_code == 200
    assert second.headers["ETag"] != first.headers["ETag"]
    assert second.content == path.read_bytes() != first.content
    assert start.strftime("%Y%m%d").encode() in second.content
    stale_date = nginx.get(url, **{"If-Modified-Since": first.headers["Last-Modified"]})
    assert stale_date.status_code == 200


def test_a_profile_feed_is_served_like_the_default_and_revalidates(deployment, nginx):
    text = deployment.config.read_text(encoding="utf-8")
    deployment.config.write_text(text.replace("feeds:\n", "feeds:\n  profiles:\n    prep: {buffer_after_days: 1}\n"),
                                 encoding="utf-8")
    unit_id, _, _ = synced_unit(deployment)
    path = deployment.output / "sandbox" / "prep" / deployment.feed(unit_id).name
    url = f"/sandbox/prep/{path.name}"
    first = nginx.get(url)
    assert first.status_code == 200 and first.headers["Content-Type"] == CONTENT_TYPE
    assert first.content == path.read_bytes() and b"BEGIN:VEVENT" in first.content
    time.sleep(1.1)
    assert deployment.run("sync").returncode == 0
    assert nginx.get(url, **{"If-None-Match": first.headers["ETag"]}).status_code == 304
    assert nginx.get("/sandbox/prep/").status_code == 404  # no listing of a profile folder


def test_only_feeds_are_served_everything_else_is_404(deployment, nginx):
    _, path, url = synced_unit(deployment)
    secret = b"BEGIN:VCALENDAR half-written"
    (path.parent / f".{path.name}.4242.deadbeef.tmp").write_bytes(secret)
    (nginx.root / ".hidden").write_bytes(secret)
    (nginx.root / ".hidden.ics").write_bytes(secret)
    (nginx.root / "x.txt").write_bytes(secret)
    (nginx.root / "sandbox" / "notes.ics.bak").write_bytes(secret)
    (nginx.root / "sandbox" / "folder.ics").mkdir()
    (nginx.root.parent / "outside.ics").write_bytes(secret)  # next to output/, not in it

    assert nginx.get(url).status_code == 200
    for denied in (f"/sandbox/.{path.name}.4242.deadbeef.tmp", "/.hidden", "/.hidden.ics",
                   "/sandbox/", "/sandbox", "/", "/x.txt", "/sandbox/notes.ics.bak",
                   "/sandbox/folder.ics", "/sandbox/folder.ics/", "/sandbox/missing.ics",
                   f"/sandbox/%2E{path.name}.4242.deadbeef.tmp"):
        response = nginx.get(denied)
        assert response.status_code == 404, denied
        assert secret not in response.content and b"Index of" not in response.content, denied
        assert "nginx/" not in response.text, denied  # no version on error pages

    # Climbing out of root: nginx refuses such a URI itself (400) before any location runs;
    # either way the file outside output/ is never served.
    for traversal in ("/../outside.ics", "/sandbox/../../outside.ics", "/%2e%2e/outside.ics",
                      "/sandbox/..%2f..%2foutside.ics", "/sandbox/%2e%2e/%2e%2e/outside.ics"):
        status, answer = nginx.raw_get(traversal)
        assert status in (400, 404), traversal
        assert secret not in answer, traversal
    status, _ = nginx.raw_get("/sandbox/../x.txt")  # stays inside root: still only feeds
    assert status == 404


def test_a_reader_never_sees_a_partial_feed_during_200_publishes(deployment, nginx):
    _, path, url = synced_unit(deployment)
    small = path.read_bytes()
    calendar = icalendar.Calendar.from_ical(small)
    for day in range(150):  # a much longer calendar, so a torn read would show
        event = icalendar.Event()
        event.add("SUMMARY", "Not available")
        event.add("DTSTART", dt.date(2030, 1, 1) + dt.timedelta(days=2 * day))
        event.add("DTEND", dt.date(2030, 1, 2) + dt.timedelta(days=2 * day))
        event.add("DTSTAMP", dt.datetime(2030, 1, 1, tzinfo=dt.UTC))
        event.add("UID", f"hammer-{day}@escapia-ical")
        calendar.add_component(event)
    large = calendar.to_ical()
    versions = (small, large)
    assert len(large) > 4 * len(small)

    done = threading.Event()
    reads: list[bytes] = []
    problems: list[str] = []

    def reader() -> None:
        session = requests.Session()
        session.trust_env = False
        deadline = time.monotonic() + 30
        try:
            while not done.is_set() and time.monotonic() < deadline:
                encoding = "gzip" if len(reads) % 2 else "identity"
                response = session.get(nginx.base_url + url, headers={"Accept-Encoding": encoding}, timeout=5)
                if response.status_code != 200:
                    problems.append(f"HTTP {response.status_code}")
                    continue
                body = response.content  # gunzipped by requests when compressed
                if body not in versions:
                    problems.append(f"a {len(body)}-byte body that is neither version")
                reads.append(body)
        except Exception as exc:  # reported below, in the test's thread
            problems.append(repr(exc))
        finally:
            session.close()

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    try:
        for i in range(200):
            assert publish_feed(path, versions[i % 2], force=True)
            time.sleep(0.001)  # let the reader in between publishes
    finally:
        done.set()
        thread.join(timeout=35)
    assert not thread.is_alive()
    assert problems == [], problems[:5]
    assert len(reads) > 50, len(reads)
    assert set(reads) == set(versions)  # every read was whole, and both versions were seen
    events = {small: len(calendar.walk("VEVENT")) - 150, large: len(calendar.walk("VEVENT"))}
    for body in set(reads):  # identical bytes parse identically: parsing each distinct body covers every read
        parsed = icalendar.Calendar.from_ical(body)
        assert parsed.name == "VCALENDAR" and len(parsed.walk("VEVENT")) == events[body]
    assert not [p.name for p in path.parent.iterdir() if p.name.startswith(".")]  # no temp file left


def test_a_fetch_through_nginx_lands_in_its_log_and_channels_counts_it(deployment, nginx):
    unit_id, _, url = synced_unit(deployment)
    assert nginx.get(url, **{"User-Agent": "Google-Calendar-Importer"}).status_code == 200
    assert nginx.get("/sandbox/", **{"User-Agent": 'Evil"\tAgent'}).status_code == 404
    lines = nginx.access_log.read_bytes().splitlines()
    assert len(lines) == 2  # nginx writes each line as the request ends
    fetch, other = (parse_line(line) for line in lines)
    assert (fetch.method, fetch.path, fetch.status, fetch.user_agent) == ("GET", url, 200,
                                                                          "Google-Calendar-Importer")
    assert abs((dt.datetime.now(dt.UTC) - fetch.time).total_seconds()) < 60
    assert other is not None and other.status == 404 and "\t" not in other.user_agent  # escaped by nginx
    assert b"127.0.0.1" not in nginx.access_log.read_bytes()  # no client address in the shipped format

    deployment.config.write_text(deployment.config.read_text(encoding="utf-8")
                                 + f"channels:\n  access_log: {nginx.access_log}\n", encoding="utf-8")
    result = deployment.run("channels", "--json")
    assert result.returncode == 0, result.stderr
    rows = [r for r in json.loads(result.stdout)["feeds"] if r["channel"]]
    assert [(r["unit"], r["channel"], r["status"], r["count"]) for r in rows] == [
        (unit_id, "google-calendar", 200, 1)]
