"""Hostile unit ids never escape the account folder and never collide."""

import os
import re

import pytest

from escapia_ical.feeds.names import feed_filename

HOSTILE = ["../x", "a/b", ".hidden", "", "x" * 300, "ünit 9", "a\x00b", "..", "a..b", "/etc/passwd",
           "a\\b", "con", "line\nbreak", "tab\there", "~user", "1020/7B", "Ōhiʻa", "a b", " ", "-"]


@pytest.mark.parametrize("unit_id", HOSTILE)
def test_name_is_a_plain_file_inside_the_folder(unit_id, tmp_path):
    name = feed_filename(unit_id)
    assert name.endswith(".ics") and not name.startswith(".")
    assert "/" not in name and "\\" not in name and ".." not in name
    assert re.fullmatch(r"[A-Za-z0-9._~-]+", name), name
    assert len(name.encode()) <= 120
    target = (tmp_path / name).resolve()
    assert target.parent == tmp_path.resolve()
    target.write_text("ok")  # the filesystem accepts it
    assert os.listdir(tmp_path) == [name]


def test_plain_ids_are_kept_as_they_are():
    assert feed_filename("1020-101") == "1020-101.ics"
    assert feed_filename("1911-89479") == "1911-89479.ics"
    assert feed_filename("A_b.c") == "A_b.c.ics"


def test_different_ids_never_share_a_name():
    ids = HOSTILE + ["1020-101", "1020_7B", "1020 7B", "1020:7B", "a_b", "a/b/", "a/b ", "x" * 301,
                     "unit", "unit~0", "ÿ", "y"] + [f"id/{i}" for i in range(2000)]
    names = [feed_filename(i) for i in ids]
    assert len(set(names)) == len(set(ids))


def test_names_are_stable():
    assert feed_filename("1020/7B") == feed_filename("1020/7B")
