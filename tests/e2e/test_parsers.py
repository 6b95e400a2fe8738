"""Every published feed read by two parsers other than the library that wrote it.

The renderer writes with icalendar; reading names back with icalendar hid that 7.2+
stopped escaping NAME and X-WR-CALNAME. Here a real sync (HSAPI, then EscapiaNET) runs
against the sandbox, whose units are named with ``,`` ``;`` ``\\`` ``"``, an emoji and a
literal backslash-n, and every ``.ics`` under the output folder (sub-folders too) is read
with vobject and with ical (allenporter). Per feed, both must give exactly the unit's name
as ``display_name`` renders it, the SUMMARY, the blocked nights of the sandbox's truth and
the same UIDs as the raw content lines. A feed profile whose SUMMARY needs escaping is
configured too, so its feeds (in the account's sub-folder) are read the same way.

Where a parser does not expose a property its value is taken from the raw content line,
unfolded and unescaped here per RFC 5545 (:func:`raw_values`): ical keeps X-WR-CALNAME
as an unparsed extra (still escaped). vobject exposes both names, unescaped.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
import vobject
from conftest import Deployment, account_yaml, write_config
from ical.calendar_stream import IcsCalendarStream

from escapia_ical.config import FeedSettings
from escapia_ical.feeds.render import display_name
from escapia_ical.model import Unit

MODES = ("hsapi", "escapianet-batch")
# Every kind, no buffers, the default window: a profile that shows the truth's nights, under
# a SUMMARY with every character TEXT escaping is about (YAML single quotes keep "\" as is).
PROFILE = "escaped"
PROFILE_SUMMARY = 'Booked, "owner"; \\ stay\\n \\N 🌊'  # icalendar 7 alone makes \N a line break
PROFILE_YAML = f"""\
  profiles:
    {PROFILE}:
      summary: '{PROFILE_SUMMARY}'
"""
UID = re.compile(r"[0-9a-f]{32}@calendars\.example\.com")  # the host of feeds.base_url (conftest)
# What TEXT escaping must survive: the seeded names together hold every one of these.
SPECIAL = (",", ";", "\\", '"', "\\n", "🌊")


@pytest.fixture(params=MODES)
def synced(request, tmp_path, sandbox) -> Deployment:
    config = tmp_path / "accounts.yaml"
    write_config(config, account_yaml(request.param))
    config.write_text(config.read_text(encoding="utf-8").replace("feeds:\n", "feeds:\n" + PROFILE_YAML),
                      encoding="utf-8")
    deployment = Deployment(tmp_path, sandbox, config, tmp_path / "output", tmp_path / "state", request.param)
    result = deployment.run("sync")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    return deployment


def rfc_unescape(value: str) -> str:
    """RFC 5545 §3.3.11 TEXT unescaping, in one pass (``\\\\n`` is a backslash and an n)."""
    return re.sub(r"\\([\\;,nN])", lambda m: "\n" if m.group(1) in "nN" else m.group(1), value)


def raw_values(data: bytes, name: str) -> list[str]:
    """Return the unescaped values of every ``name`` content line (unfolded first)."""
    lines = re.sub(rb"\r\n[ \t]", b"", data).decode("utf-8").split("\r\n")
    return [rfc_unescape(line.split(":", 1)[1]) for line in lines
            if re.match(rf"{re.escape(name)}[;:]", line, re.IGNORECASE)]


def nights(events: list[tuple[dt.date, dt.date]]) -> set[dt.date]:
    found: set[dt.date] = set()
    for start, end in events:
        assert type(start) is dt.date and type(end) is dt.date and end > start
        found |= {start + dt.timedelta(days=i) for i in range((end - start).days)}
    assert len(found) == sum((end - start).days for start, end in events), "events overlap"
    return found


def read_vobject(data: bytes) -> dict:
    calendar = vobject.readOne(data.decode("utf-8"))
    events = calendar.contents.get("vevent", [])
    return {
        "NAME": [p.value for p in calendar.contents.get("name", [])],  # .name is "VCALENDAR"
        "X-WR-CALNAME": [p.value for p in calendar.contents.get("x-wr-calname", [])],
        "events": [(e.dtstart.value, e.dtend.value) for e in events],
        "UID": [e.uid.value for e in events],
        "SUMMARY": [e.summary.value for e in events],
    }


def read_ical(data: bytes) -> dict:
    calendar = IcsCalendarStream.calendar_from_ics(data.decode("utf-8"))
    return {
        "NAME": list(calendar.name),
        # Not a field of ical's Calendar: an extra whose value is the raw, escaped text.
        "X-WR-CALNAME": [rfc_unescape(p.value) for p in calendar.extras if p.name.upper() == "X-WR-CALNAME"],
        "events": [(e.dtstart, e.dtend) for e in calendar.events],
        "UID": [e.uid for e in calendar.events],
        "SUMMARY": [e.summary for e in calendar.events],
    }


def feeds(deployment: Deployment) -> dict[Path, tuple[str, str]]:
    """Every feed under the output folder (recursively): its unit, by file name, and the
    SUMMARY it must show, by folder (the account's: the default feed; below: a profile's).
    A feed this cannot place fails here, so a new kind of feed is read too once this
    learns what it must show."""
    by_name = {deployment.feed(u).name: u for u in deployment.sandbox.unit_ids()}
    summary_by_folder = {deployment.output / "sandbox": FeedSettings().summary,
                         deployment.output / "sandbox" / PROFILE: PROFILE_SUMMARY}
    found = {path: (by_name.get(path.name), summary_by_folder.get(path.parent))
             for path in sorted(deployment.output.glob("**/*.ics"))}
    strays = [str(p.relative_to(deployment.output)) for p, placed in found.items() if None in placed]
    assert not strays, f"feeds this test cannot place: {strays}"
    return found


def test_every_feed_reads_the_same_with_vobject_and_ical(synced):
    sandbox = synced.sandbox
    published = feeds(synced)
    assert sorted(published.values()) == sorted((u, s) for u in sandbox.unit_ids()
                                                for s in (FeedSettings().summary, PROFILE_SUMMARY))
    for path, (unit_id, summary) in published.items():
        data = path.read_bytes()
        seeded = sandbox.unit(unit_id)
        title = display_name(Unit(unit_id, seeded["name"], seeded["code"]))
        truth = synced.truth(unit_id)
        raw_uids = raw_values(data, "UID")
        assert len(raw_uids) == len(set(raw_uids)) and all(UID.fullmatch(u) for u in raw_uids), path
        for parser, parsed in (("vobject", read_vobject(data)), ("ical", read_ical(data))):
            where = f"{parser} reading {path.relative_to(synced.output)}"
            assert parsed["NAME"] == [title], where
            assert parsed["X-WR-CALNAME"] == [title], where
            assert nights(parsed["events"]) == truth, where
            assert parsed["UID"] == raw_uids, where
            assert parsed["SUMMARY"] == [summary] * len(raw_uids), where
        assert raw_values(data, "NAME") == raw_values(data, "X-WR-CALNAME") == [title], path


def test_the_seeded_names_need_escaping(synced):
    """The sandbox holds what the test above must survive, and the bytes show it escaped."""
    names = [synced.sandbox.unit(u)["name"] for u in synced.sandbox.unit_ids()]
    assert all(any(special in name for name in names) for special in SPECIAL)
    cliff = synced.feed("1020-104").read_bytes()
    assert b"\r\nX-WR-CALNAME:Cliff\\, Sea\\; View \\\\ Loft\r\n" in cliff
    assert b"\r\nNAME:Cliff\\, Sea\\; View \\\\ Loft\r\n" in cliff
    harbor = synced.feed("1020-103").read_bytes()
    assert "\r\nNAME:Harbor Loft 🌊\\\\nPier 9\r\n".encode() in harbor
    profiled = (synced.output / "sandbox" / PROFILE / synced.feed("1020-103").name).read_bytes()
    assert "\r\nSUMMARY:Booked\\, \"owner\"\\; \\\\ stay\\\\n \\\\N 🌊\r\n".encode() in profiled
