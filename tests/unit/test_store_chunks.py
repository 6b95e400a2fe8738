"""Split mappings are stored in chunks of entries (escapia_ical.store): read back as
written whatever the names, sized as documented, stable when an entry comes or goes, and
a database of schema 1 (a row per entry) is read as it is and rewritten in chunks."""

from __future__ import annotations

import json
import sqlite3

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from escapia_ical.store import (
    CHUNK_MOST,
    chunks,
    encode_body,
    encode_chunk_part,
    encode_part,
    flatten,
    read_rows,
    row_place,
)
from escapia_ical.store.sqlite import SqliteStore

# Names with every character JSON escapes or the quick paths look at.
NAMES = st.one_of(st.text(max_size=12), st.sampled_from(['", "', '","', '",["', '"]]', "\\", "\x7f", "\u2028",
                                                          "\ud800", "", "[", "]", "x.ics", "1020-7B.ics"]))


def _rows(value, split):
    return [(part.encode("utf-8"), body.encode("utf-8")) for part, body in flatten(value, split, encode_body)]


@settings(max_examples=300, deadline=None)
@given(entries=st.dictionaries(NAMES, st.integers() | st.text(max_size=5) | st.none(), max_size=300),
       nested=st.booleans())
def test_a_mapping_of_any_names_reads_back_as_written(entries, nested):
    value = {"top": 1, "units": {"acct": entries}} if nested else entries
    split = ((), ("units",), ("units", "*")) if nested else ((),)
    rows = _rows(value, split)
    assert read_rows(rows, "test", "doc") == value
    # every entry is in exactly one chunk, in the order of the names
    chunked = [name for _, chunk in chunks(entries) for name in chunk]
    assert chunked == sorted(entries)


@given(path=st.lists(NAMES, max_size=3), first=NAMES)
def test_a_chunks_part_is_json_and_reads_back_as_its_place(path, first):
    part = encode_chunk_part(tuple(path), first)
    assert part == json.dumps([*path, [first]], separators=(",", ":"))  # the quick path writes what json would
    assert row_place(part.encode("utf-8", "surrogatepass")) == (path, True)
    assert row_place(encode_part(tuple(path)).encode("utf-8", "surrogatepass")) == (path, False)


@pytest.mark.parametrize("part", [b'[["a"],"b"]', b'["a",["b","c"]]', b'["a",[1]]', b'["a",[]]', b'[[]]',
                                  b'["a",["b"]', b'["a",["\xff"]]', b'[["a"]]x',
                                  # damaged parts the quick paths once took for valid (review)
                                  b'[,["a"]]', b'[ ,["a"]]', b'[["]]', b'[",["a"]]', b'["]', b'["\x01"]',
                                  b'["a",["\x01"]]'])
def test_a_part_that_is_neither_a_path_nor_a_chunk_is_refused(part):
    assert row_place(part) is None
    assert read_rows([(b"[]", b"{}"), (part, b'{"x.ics":1}')], "test", "doc") == {}  # one bad row


def test_chunks_are_about_16_entries_and_never_more_than_the_cap():
    for names in (
        [f"1020-{n}.ics" for n in range(10_000)],  # names a few bits apart: CRC-32 made chunks of 1 and 64
        [f"{n:032x}.ics" for n in range(0, 10_000 * 7919, 7919)],
        [f"u{n}" for n in range(10_000)],
    ):
        sizes = [len(chunk) for _, chunk in chunks(dict.fromkeys(names, 0))]
        assert sum(sizes) == 10_000
        assert 12 <= 10_000 / len(sizes) <= 20, names[:2]
        assert max(sizes) <= CHUNK_MOST
        assert sorted(sizes)[len(sizes) // 2] <= 16  # most are small (sizes are geometric)


@pytest.mark.parametrize("change", ["add", "remove", "edit"])
def test_an_entry_coming_or_going_rewrites_its_chunk_not_those_after_it(change):
    before = {f"1020-{n}.ics": {"digest": "d" * 64} for n in range(10_000)}
    after = dict(before)
    if change == "add":
        after["1020-5000a.ics"] = {"digest": "e" * 64}
    elif change == "remove":
        del after["1020-5000.ics"]
    else:
        after["1020-5000.ics"] = {"digest": "e" * 64}
    old, new = dict(flatten(before, ((),), encode_body)), dict(flatten(after, ((),), encode_body))
    changed = [part for part, body in new.items() if old.get(part) != body]
    removed = [part for part in old if part not in new]
    # one chunk changes; an entry that starts a chunk (or leaves one) also adds (or removes) a row
    assert 0 < len(changed) + len(removed) <= 2, (changed, removed)
    assert sum(len(new[part]) for part in changed) < CHUNK_MOST * 100


def test_a_database_of_schema_1_is_read_and_rewritten_in_chunks(tmp_path):
    """Schema 1 kept a row per entry: read as it is; the next write replaces those rows by
    chunks, in one transaction, and the document reads back the same."""
    path = tmp_path / "state.db"
    SqliteStore(path).close()
    feeds = {f"u{n}.ics": {"n": n} for n in range(200)}
    status = {"units": {f"u{n}": {"ok": n % 2 == 0} for n in range(100)}, "run": 1}
    with sqlite3.connect(path) as con:  # the rows an earlier version wrote
        con.executemany("INSERT INTO documents VALUES (?, ?, ?)",
                        [("feeds", "[]", "{}"), *(("feeds", encode_part((name,)), encode_body(entry))
                                                  for name, entry in feeds.items())])
        con.executemany("INSERT INTO documents VALUES (?, ?, ?)",
                        [("status", "[]", '{"run":1}'), ("status", '["units"]', "{}"),
                         *(("status", encode_part(("units", name)), encode_body(unit))
                           for name, unit in status["units"].items())])
    store = SqliteStore(path)
    assert store.read("feeds") == feeds and store.read("status") == status
    assert store.write("feeds", feeds, ((),)) > 0 and store.write("status", status, ((), ("units",))) > 0
    store.close()
    with sqlite3.connect(path) as con:
        parts = [json.loads(part) for (part,) in con.execute("SELECT part FROM documents WHERE key = 'feeds'")]
        assert [] in parts and all(p == [] or (len(p) == 1 and isinstance(p[0], list)) for p in parts)
        assert len(parts) < 200 / 5
        units = [json.loads(part) for (part,) in con.execute("SELECT part FROM documents WHERE key = 'status'")]
        assert not [p for p in units if len(p) == 2 and isinstance(p[1], str)]  # no row per unit left
    store = SqliteStore(path)
    assert store.read("feeds") == feeds and store.read("status") == status
    assert store.write("feeds", feeds, ((),)) == 0  # and then steady
    store.close()


def test_a_chunk_row_left_over_next_to_entry_rows_reads_as_one_mapping():
    """(Never written so, since a write replaces all rows of a document at once; read all
    the same.)"""
    rows = [(b"[]", b"{}"), (b'["a.ics"]', b"1"), (b'[["b.ics"]]', b'{"b.ics":2,"c.ics":3}')]
    assert read_rows(rows, "test", "doc") == {"a.ics": 1, "b.ics": 2, "c.ics": 3}


def test_a_chunk_without_its_mappings_row_is_left_out():
    assert read_rows([(b'[["b.ics"]]', b'{"b.ics":2}')], "test", "doc") is None
    rows = [(b"[]", b"{}"), (b'["x",["b"]]', b'{"b":2}')]
    assert read_rows(rows, "test", "doc") == {}


def _place_by_json(part: bytes):
    """What row_place must answer, by JSON alone: a list of names is a row's path; a list
    of names then a list of one name is a chunk's."""
    try:
        found = json.loads(part.decode("utf-8"))
    except (ValueError, RecursionError):
        return None
    names = lambda items: all(isinstance(item, str) for item in items)  # noqa: E731
    match found:
        case list() if names(found):
            return found, False
        case [*path, [str()]] if names(path):
            return path, True
    return None


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.sampled_from(['[', ']', '"', ',', '["', '"]', '","', ',["', '"]]', 'a', '\\', ' ', '\x7f',
                                 '\x01', 'é', '1']), max_size=12).map(lambda bits: "".join(bits).encode("utf-8")))
def test_the_quick_reading_of_a_part_agrees_with_json(part):
    assert row_place(part) == _place_by_json(part)
