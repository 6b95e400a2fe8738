"""Atomic publishing, the unchanged rule, temp-file cleanup, the overlap lock."""

import os
import stat

import pytest

from escapia_ical.errors import LockHeld, PublishError
from escapia_ical.feeds.publish import clean_temp_files, publish_feed
from escapia_ical.sync.lock import account_lock


def test_first_publish_writes_file_with_mode_0644_and_no_temp_left(tmp_path):
    path = tmp_path / "acme" / "1.ics"
    assert publish_feed(path, b"BEGIN:VCALENDAR\r\n") is True
    assert path.read_bytes() == b"BEGIN:VCALENDAR\r\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert os.listdir(path.parent) == ["1.ics"]


def test_mode_is_0644_whatever_the_umask(tmp_path):
    old = os.umask(0o077)
    try:
        publish_feed(tmp_path / "1.ics", b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "1.ics").stat().st_mode) == 0o644


def test_unchanged_content_leaves_the_file_untouched(tmp_path):
    path = tmp_path / "1.ics"
    publish_feed(path, b"same")
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    inode = path.stat().st_ino
    assert publish_feed(path, b"same") is False
    assert path.stat().st_mtime_ns == 1_000_000_000 and path.stat().st_ino == inode


def test_changed_content_replaces_the_file_atomically(tmp_path):
    path = tmp_path / "1.ics"
    publish_feed(path, b"old")
    old_inode = path.stat().st_ino
    assert publish_feed(path, b"new") is True
    assert path.read_bytes() == b"new"
    assert path.stat().st_ino != old_inode  # a rename, not an in-place rewrite


def test_force_rewrites_identical_content(tmp_path):
    path = tmp_path / "1.ics"
    publish_feed(path, b"same")
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    assert publish_feed(path, b"same", force=True) is True
    assert path.stat().st_mtime_ns != 1_000_000_000


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_unwritable_folder_keeps_the_old_feed(tmp_path):
    path = tmp_path / "1.ics"
    publish_feed(path, b"good")
    tmp_path.chmod(0o555)
    try:
        with pytest.raises(PublishError, match="cannot write"):
            publish_feed(path, b"new")
    finally:
        tmp_path.chmod(0o755)
    assert path.read_bytes() == b"good"


def test_failed_write_keeps_the_old_feed_and_leaves_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "1.ics"
    publish_feed(path, b"good")

    def no_space(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(PublishError, match="No space left on device"):
        publish_feed(path, b"new")
    assert path.read_bytes() == b"good"
    assert os.listdir(tmp_path) == ["1.ics"]


def test_clean_temp_files_removes_only_our_temp_files(tmp_path):
    ours = [".1.ics.123.0a1b2c3d.tmp", ".x~ab.ics.9.ffffffff.tmp"]
    keep = ["1.ics", ".htaccess", "notes.tmp", ".1.ics.tmp"]
    for name in ours + keep:
        (tmp_path / name).write_text("x")
    assert clean_temp_files(tmp_path) == 2
    assert sorted(os.listdir(tmp_path)) == sorted(keep)
    assert clean_temp_files(tmp_path / "missing") == 0


def test_second_lock_holder_is_refused_and_lock_is_released(tmp_path):
    with (account_lock(tmp_path, "a"), pytest.raises(LockHeld, match="account 'a' is being synced by pid"),
          account_lock(tmp_path, "a")):
        pass
    with account_lock(tmp_path, "a"):  # released on exit
        pass
    assert stat.S_IMODE((tmp_path / "accounts" / "a" / "sync.lock").stat().st_mode) == 0o600
