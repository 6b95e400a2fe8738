"""Atomic publishing, the unchanged rule, temp-file cleanup, the overlap lock."""

import datetime as dt
import logging
import os
import re
import stat

import pytest

from escapia_ical.errors import LockHeld, PublishError
from escapia_ical.feeds import publish
from escapia_ical.feeds.publish import clean_temp_files, publish_feed, remove_feed
from escapia_ical.feeds.rotation import update_old_names
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



# --- symbolic links and names from state --------------------------------------------------


def linked_account_folder(tmp_path):
    """Return (output_dir, victim): output_dir/acct is a link to the victim folder."""
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "1.ics").write_bytes(b"precious")
    (victim / ".1.ics.1.0a1b2c3d.tmp").write_bytes(b"precious too")
    output = tmp_path / "output"
    output.mkdir()
    (output / "acct").symlink_to(victim)
    return output, victim


def refusal(folder) -> str:
    return f"^{re.escape(str(folder))} is a symbolic link; refusing to write through it$"


@pytest.mark.parametrize("content", [b"new", b"precious"])
def test_publish_refuses_a_linked_account_folder(tmp_path, content):
    output, victim = linked_account_folder(tmp_path)
    with pytest.raises(PublishError, match=refusal(output / "acct")):
        publish_feed(output / "acct" / "1.ics", content)
    with pytest.raises(PublishError, match=refusal(output / "acct")):
        clean_temp_files(output / "acct")
    with pytest.raises(PublishError, match=refusal(output / "acct")):
        remove_feed(output / "acct" / "1.ics")
    assert sorted(os.listdir(victim)) == [".1.ics.1.0a1b2c3d.tmp", "1.ics"]
    assert (victim / "1.ics").read_bytes() == b"precious"


def test_a_linked_output_dir_is_the_operators_choice(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "output").symlink_to(real)
    assert publish_feed(tmp_path / "output" / "acct" / "1.ics", b"x") is True
    assert (real / "acct" / "1.ics").read_bytes() == b"x"


def test_a_folder_swapped_for_a_link_during_the_write_gets_nothing(tmp_path, monkeypatch):
    victim = tmp_path / "victim"
    victim.mkdir()
    folder = tmp_path / "output" / "acct"
    publish_feed(folder / "1.ics", b"old")
    read_at = publish.read_at

    def swap_then_read(descriptor, name):  # runs after the folder was opened, before the write
        folder.rename(tmp_path / "output" / "moved")
        folder.symlink_to(victim)
        return read_at(descriptor, name)

    monkeypatch.setattr(publish, "read_at", swap_then_read)
    assert publish_feed(folder / "1.ics", b"new") is True
    assert os.listdir(victim) == []
    assert (tmp_path / "output" / "moved" / "1.ics").read_bytes() == b"new"


def test_a_fifo_or_link_in_place_of_a_feed_is_replaced_not_read(tmp_path):
    os.mkfifo(tmp_path / "1.ics")  # reading it would block the run
    (tmp_path / "secret").write_bytes(b"same")
    (tmp_path / "2.ics").symlink_to(tmp_path / "secret")
    assert publish_feed(tmp_path / "1.ics", b"feed") is True
    assert publish_feed(tmp_path / "2.ics", b"same") is True
    assert (tmp_path / "1.ics").read_bytes() == b"feed" and not (tmp_path / "2.ics").is_symlink()
    assert (tmp_path / "secret").read_bytes() == b"same"


NOW = dt.datetime(2026, 11, 23, 22, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize("retired", [None, "2000-01-01T00:00:00+00:00"], ids=["in grace", "grace over"])
def test_old_names_from_state_never_leave_the_folder(tmp_path, caplog, retired):
    folder = tmp_path / "output" / "acct"
    folder.mkdir(parents=True)
    victims = [tmp_path / "output" / "victim.ics", tmp_path / "victim-abs.ics"]
    for victim in victims:
        victim.write_bytes(b"precious")
    entry = {"unit": "1", "digest": "d"} | ({"retired": retired} if retired else {})
    stamps = {"1.ics": {"unit": "1"}, "../victim.ics": dict(entry), str(victims[1]): dict(entry),
              "old.ics": dict(entry)}
    with caplog.at_level(logging.WARNING):
        update_old_names(folder, "1", "1.ics", b"feed", {"unit": "1"}, stamps, NOW, grace_days=7)
    assert all(v.read_bytes() == b"precious" for v in victims)
    assert "../victim.ics" not in stamps and str(victims[1]) not in stamps
    assert len([r for r in caplog.records if "not a feed file name" in r.getMessage()]) == 2
    assert (folder / "old.ics").exists() == (retired is None)


def test_a_run_fsyncs_each_feed_and_each_folder_once(tmp_path, monkeypatch):
    synced: list[str] = []
    real = os.fsync
    monkeypatch.setattr(publish.os, "fsync", lambda fd: (synced.append(
        "folder" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file"), real(fd))[1])
    unsynced: set = set()
    for i in range(3):
        assert publish.publish_feed(tmp_path / "acct" / f"{i}.ics", b"x%d" % i, unsynced=unsynced)
    assert synced == ["file"] * 3 and unsynced == {tmp_path / "acct"}
    publish.sync_folders(unsynced, tmp_path)
    assert synced == ["file"] * 3 + ["folder"] and not unsynced
    assert publish.publish_feed(tmp_path / "acct" / "single.ics", b"y")  # without: synced at once
    assert synced[-2:] == ["file", "folder"]
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(PublishError, match="symbolic link"):
        publish.sync_folders({tmp_path / "link"}, tmp_path)


def test_a_missing_output_dir_and_account_folder_are_made(tmp_path):
    root = tmp_path / "srv" / "feeds"  # output_dir and its parent do not exist yet
    path = root / "acme" / "1.ics"
    assert publish_feed(path, b"BEGIN:VCALENDAR\r\n", root=root)
    assert path.read_bytes() == b"BEGIN:VCALENDAR\r\n"
    assert not publish_feed(path, b"BEGIN:VCALENDAR\r\n", root=root)  # the same bytes: untouched


def test_a_folder_listed_once_tells_feeds_present_as_a_stat_would(tmp_path):
    """feed_names lists a folder once (scandir); feed_present with it agrees with is_file:
    files and links to files are present; folders, dangling links and missing names not."""
    folder = tmp_path / "acct"
    folder.mkdir()
    (folder / "a.ics").write_bytes(b"x")
    (folder / "dir.ics").mkdir()
    (folder / "link.ics").symlink_to(folder / "a.ics")
    (folder / "dangling.ics").symlink_to(folder / "gone.ics")
    names = ["a.ics", "dir.ics", "link.ics", "dangling.ics", "gone.ics"]
    listed = publish.feed_names(folder)
    assert listed == {"a.ics", "link.ics"}
    assert [publish.feed_present(folder / n, listed) for n in names] == [(folder / n).is_file() for n in names] \
        == [True, False, True, False, False]
    (folder / "a.ics").unlink()  # after the listing: the caller's listing, the disk's now
    assert publish.feed_present(folder / "a.ics", listed) and not publish.feed_present(folder / "a.ics")
    assert publish.feed_names(tmp_path / "missing") == set()  # no folder: nothing present


def _directory_opens(monkeypatch) -> list[str]:
    opened: list[str] = []
    real = os.open

    def counting(path, flags, *args, **kwargs):
        if flags & os.O_DIRECTORY:
            opened.append(str(path))
        return real(path, flags, *args, **kwargs)

    monkeypatch.setattr(publish.os, "open", counting)
    return opened


def test_a_run_opens_each_feed_folder_once_and_closes_it(tmp_path, monkeypatch):
    root = tmp_path / "out"
    (root / "acct").mkdir(parents=True)
    opened = _directory_opens(monkeypatch)
    folders = publish.OpenFolders()
    for i in range(4):
        assert publish_feed(root / "acct" / f"{i}.ics", b"x%d" % i, root=root, folders=folders)
    assert not publish_feed(root / "acct" / "0.ics", b"x0", root=root, folders=folders), "unchanged: untouched"
    assert opened == [str(root), "acct"], "output_dir and the account folder, once for the run"
    assert sorted(os.listdir(root / "acct")) == [f"{i}.ics" for i in range(4)]
    assert [(root / "acct" / f"{i}.ics").read_bytes() for i in range(4)] == [b"x%d" % i for i in range(4)]
    descriptor = folders.open(root / "acct", root)
    folders.close()
    with pytest.raises(OSError):
        os.fstat(descriptor)
    opened.clear()
    publish_feed(root / "acct" / "9.ics", b"y", root=root)  # without: opened for the feed, and closed
    publish_feed(root / "acct" / "8.ics", b"y", root=root)
    assert opened == [str(root), "acct"] * 2


def test_a_folder_swapped_for_a_link_mid_run_never_receives_the_feeds(tmp_path):
    """Opened once, through O_NOFOLLOW: a folder replaced by a link later in the run is not
    followed: the feeds go on into the folder opened first, not where the link points."""
    root, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    elsewhere.mkdir()
    folders = publish.OpenFolders()
    publish_feed(root / "acct" / "1.ics", b"one", root=root, folders=folders)
    (root / "acct").rename(tmp_path / "moved")
    (root / "acct").symlink_to(elsewhere)
    publish_feed(root / "acct" / "2.ics", b"two", root=root, folders=folders)
    folders.close()
    assert os.listdir(elsewhere) == []
    assert sorted(os.listdir(tmp_path / "moved")) == ["1.ics", "2.ics"]
    with pytest.raises(PublishError, match="symbolic link"):  # a new run's folders refuse the link
        publish_feed(root / "acct" / "3.ics", b"three", root=root, folders=publish.OpenFolders())


def test_a_folder_deleted_mid_run_is_made_again_and_a_moved_one_synced_where_the_feeds_went(
        tmp_path, monkeypatch):
    root = tmp_path / "out"
    folders, unsynced = publish.OpenFolders(), set()
    publish_feed(root / "acct" / "1.ics", b"one", root=root, folders=folders, unsynced=unsynced)
    (root / "acct" / "1.ics").unlink()
    (root / "acct").rmdir()
    assert publish_feed(root / "acct" / "2.ics", b"two", root=root, folders=folders, unsynced=unsynced)
    assert os.listdir(root / "acct") == ["2.ics"]
    (root / "acct").rename(tmp_path / "moved")  # moved, and a new folder in its place
    (root / "acct").mkdir()
    publish_feed(root / "acct" / "3.ics", b"three", root=root, folders=folders, unsynced=unsynced)
    synced: list[tuple[int, int]] = []
    real = os.fsync
    monkeypatch.setattr(publish.os, "fsync", lambda fd: (synced.append(
        (os.fstat(fd).st_dev, os.fstat(fd).st_ino)), real(fd))[1])
    publish.sync_folders(unsynced, root, folders)
    moved = (tmp_path / "moved").stat()
    assert synced == [(moved.st_dev, moved.st_ino)], "the folder the renames went to"
    assert sorted(os.listdir(tmp_path / "moved")) == ["2.ics", "3.ics"]
    folders.close()


def test_temp_names_take_fresh_urandom_bytes_a_few_kilobytes_at_a_time(monkeypatch):
    drawn: list[int] = []
    real = os.urandom
    monkeypatch.setattr(publish.os, "urandom", lambda n: (drawn.append(n), real(n))[1])
    monkeypatch.setattr(publish, "_randomness", publish._Randomness())
    tokens = [publish._random_hex8(100) for _ in range(2048)]
    assert all(re.fullmatch(r"[0-9a-f]{8}", t) for t in tokens)
    assert len(set(tokens)) > 2040, "no repeats but by chance"
    assert drawn == [4096, 4096], "1,024 names a draw"
    pool = publish._randomness.pool
    assert "".join(tokens[1024:]) == pool.hex(), "each byte used once, in order"
    publish._random_hex8(101)  # a forked child: never its parent's bytes
    assert drawn == [4096] * 3 and publish._randomness.pool != pool
    assert publish._TEMP_NAME.fullmatch(f".1.ics.100.{tokens[0]}.tmp")
