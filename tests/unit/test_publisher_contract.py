"""The publisher contract (feeds/publish.py): the same tests for feeds on disk and on
S3-compatible storage (feeds/s3.py, against moto's S3 server on loopback). A feed is
replaced only whole, unchanged bytes are not written again (validators stay), removal,
listing; on S3 also the headers, one PUT, and clear errors."""

from __future__ import annotations

import itertools
import time

import pytest
from s3_server import CREDENTIALS, client

from escapia_ical.errors import PublishError
from escapia_ical.feeds.publish import (
    current_bytes,
    feed_files,
    feed_present,
    publish_feed,
    remove_feed,
    subfolders,
    use_s3,
)
from escapia_ical.feeds.s3 import S3Output

_buckets = itertools.count()
FEED = b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nEND:VCALENDAR\r\n"


class Output:
    def __init__(self, kind: str, root, endpoint: str | None):
        self.kind, self.root, self.endpoint = kind, root, endpoint
        self.bucket = f"feeds-{next(_buckets)}"
        if kind == "s3":
            client(endpoint).create_bucket(Bucket=self.bucket)
            self.store = S3Output(root, self.bucket, "tenant-a/", endpoint, "us-east-1")
            use_s3(root, self.store)

    def validators(self, path) -> tuple:
        """What an HTTP cache revalidates with: (ETag, Last-Modified) or the file's mtime."""
        if self.kind == "disk":
            return (path.stat().st_mtime_ns,)
        head = client(self.endpoint).head_object(Bucket=self.bucket, Key=self.store.key(path))
        return head["ETag"], head["LastModified"]


@pytest.fixture(params=["disk", "s3"])
def output(request, tmp_path, monkeypatch):
    endpoint = None
    if request.param == "s3":
        endpoint = request.getfixturevalue("s3_endpoint")
        for name, value in CREDENTIALS.items():
            monkeypatch.setenv(name, value)
    found = Output(request.param, tmp_path / "output", endpoint)
    (tmp_path / "output").mkdir()
    yield found
    use_s3(tmp_path / "output", None)


def test_a_feed_is_written_then_left_alone_while_unchanged(output):
    path = output.root / "acct" / "1020-101.ics"
    assert not feed_present(path)
    assert publish_feed(path, FEED) is True
    assert current_bytes(path) == FEED and feed_present(path)
    before = output.validators(path)
    time.sleep(1.1)  # (Last-Modified has whole seconds)
    assert publish_feed(path, FEED) is False
    assert output.validators(path) == before  # consumers' and CDNs' validators stay valid
    assert publish_feed(path, FEED, force=True) is True
    changed = FEED.replace(b"2.0", b"2.0\r\nX-WR-CALNAME:x")
    assert publish_feed(path, changed) is True
    assert current_bytes(path) == changed


def test_removal_and_listing(output):
    for name in ("a.ics", "b.ics"):
        publish_feed(output.root / "acct" / name, FEED)
    publish_feed(output.root / "acct" / "airbnb" / "c.ics", FEED)
    assert feed_files(output.root / "acct") == [output.root / "acct" / "a.ics", output.root / "acct" / "b.ics"]
    assert subfolders(output.root / "acct") == [output.root / "acct" / "airbnb"]
    assert subfolders(output.root) == [output.root / "acct"]
    assert remove_feed(output.root / "acct" / "a.ics") is True
    assert remove_feed(output.root / "acct" / "a.ics") is False
    assert not feed_present(output.root / "acct" / "a.ics")
    assert feed_files(output.root / "acct") == [output.root / "acct" / "b.ics"]
    assert feed_files(output.root / "nothing") == [] and subfolders(output.root / "nothing") == []


def test_s3_objects_carry_the_feed_headers_and_come_from_one_put(s3_endpoint, tmp_path, monkeypatch):
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    output = Output("s3", tmp_path / "output", s3_endpoint)
    try:
        path = output.root / "acct" / "x.ics"
        publish_feed(path, FEED * 2000)  # 90 KB: still one PUT, never multipart
        head = client(s3_endpoint).head_object(Bucket=output.bucket, Key="tenant-a/acct/x.ics")
        assert head["ContentType"] == "text/calendar; charset=utf-8"
        assert head["CacheControl"] == "no-cache"
        assert "-" not in head["ETag"]  # a multipart upload's ETag is "<md5>-<parts>"
        assert head["Metadata"]["sha256"] and len(head["Metadata"]["sha256"]) == 64
    finally:
        use_s3(tmp_path / "output", None)


def test_s3_errors_are_one_clear_line(s3_endpoint, tmp_path, monkeypatch):
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    root = tmp_path / "output"
    use_s3(root, S3Output(root, "no-such-bucket", "", s3_endpoint, "us-east-1"))
    try:
        with pytest.raises(PublishError, match=r"^cannot list s3://no-such-bucket/acct/: NoSuchBucket: "):
            publish_feed(root / "acct" / "x.ics", FEED)
        with pytest.raises(PublishError, match="does not name a feed below output_dir"):
            publish_feed(root / "acct" / ".." / ".." / "x.ics", FEED)  # never a key outside the prefix
    finally:
        use_s3(root, None)


def test_listing_is_current_after_our_own_writes(output):
    assert subfolders(output.root) == [] and feed_files(output.root / "acct") == []  # listed (empty)
    publish_feed(output.root / "acct" / "airbnb" / "c.ics", FEED)
    publish_feed(output.root / "acct" / "a.ics", FEED)
    assert subfolders(output.root) == [output.root / "acct"]
    assert subfolders(output.root / "acct") == [output.root / "acct" / "airbnb"]
    assert feed_files(output.root / "acct") == [output.root / "acct" / "a.ics"]
    remove_feed(output.root / "acct" / "a.ics")
    assert feed_files(output.root / "acct") == [] and not feed_present(output.root / "acct" / "a.ics")
