"""Reading the access log incrementally: offsets, partial lines, the cap per run, and
rotation (rename, rename + gzip, copytruncate, a file shrunk in place, a missing file)."""

import gzip
import os
import shutil

import pytest

from escapia_ical.channels.logreader import LogMissing, LogPosition, read_log


def line(n: int) -> bytes:
    return f"2026-05-01T12:00:{n % 60:02d}+00:00\tGET\t/acme/{n}.ics\t200\t10\tAirbnb\n".encode()


def lines(first: int, last: int) -> bytes:
    return b"".join(line(n) for n in range(first, last))


class Collector:
    def __init__(self):
        self.data = b""

    def __call__(self, block: bytes) -> None:
        assert block.endswith(b"\n")
        self.data += block


def read(path, position, max_bytes=1 << 20):
    seen = Collector()
    result = read_log(path, position, max_bytes, seen)
    return result, seen.data


def append(path, data: bytes) -> None:
    with open(path, "ab") as stream:
        stream.write(data)


def test_each_run_reads_only_what_was_added_and_never_half_a_line(tmp_path):
    log = tmp_path / "access.log"
    log.write_bytes(lines(0, 3))
    first, data = read(log, None)
    assert data == lines(0, 3) and first.position.offset == len(data)
    append(log, lines(3, 5) + b"2026-05-01T12:01:00+00:00\tGET\t/ac")  # nginx mid-write
    second, data = read(log, first.position)
    assert data == lines(3, 5) and not second.behind
    append(log, b"me/9.ics\t200\t10\tAirbnb\n")
    third, data = read(log, second.position)
    assert data == b"2026-05-01T12:01:00+00:00\tGET\t/acme/9.ics\t200\t10\tAirbnb\n"
    fourth, data = read(log, third.position)
    assert data == b"" and fourth.position == third.position


def test_the_position_survives_a_round_trip_through_json(tmp_path):
    log = tmp_path / "access.log"
    log.write_bytes(lines(0, 3))
    result, _ = read(log, None)
    again = LogPosition.from_json(result.position.to_json())
    assert again == result.position
    for broken in (None, [], {"offset": 3}, {**result.position.to_json(), "offset": -1},
                   {**result.position.to_json(), "inode": "7"}, {**result.position.to_json(), "head": 5}):
        assert LogPosition.from_json(broken) is None


def test_the_cap_per_run_leaves_the_rest_for_the_next_runs(tmp_path):
    log = tmp_path / "access.log"
    log.write_bytes(lines(0, 1))
    position, seen, runs = read(log, None)[0].position, b"", 0
    append(log, lines(1, 101))
    cap = len(lines(0, 10)) + 5  # ten lines and a bit: only whole lines are taken
    while True:
        result, data = read(log, position, max_bytes=cap)
        runs += 1
        seen += data
        position = result.position
        assert len(data) <= cap
        if not result.behind:
            break
    assert seen == lines(1, 101) and runs >= 10


def test_on_first_sight_only_the_last_max_bytes_are_read(tmp_path):
    log = tmp_path / "access.log"
    log.write_bytes(lines(0, 100))
    result, data = read(log, None, max_bytes=len(lines(90, 100)) + 3)
    assert data == lines(90, 100) and result.skipped_bytes == len(lines(0, 90))


def test_rename_rotation_finishes_the_old_file_then_reads_the_new_one_from_zero(tmp_path):
    log, rotated = tmp_path / "access.log", tmp_path / "access.log.1"
    log.write_bytes(lines(0, 3))
    first, _ = read(log, None)
    append(log, lines(3, 5))  # written before the rotation, not yet read
    log.rename(rotated)
    append(rotated, lines(5, 6))  # nginx writes to the old file until it reopens its logs
    second, data = read(log, first.position)  # the new file does not exist yet
    assert data == lines(3, 6)
    log.write_bytes(lines(6, 8))  # nginx reopened
    third, data = read(log, second.position)
    assert data == lines(6, 8) and third.notes == []


def test_a_rotated_file_already_compressed_is_finished_from_the_gzip(tmp_path):
    log = tmp_path / "access.log"
    log.write_bytes(lines(0, 3))
    first, _ = read(log, None)
    append(log, lines(3, 5))
    with open(log, "rb") as source, gzip.open(tmp_path / "access.log.1.gz", "wb") as target:
        shutil.copyfileobj(source, target)
    log.unlink()
    log.write_bytes(lines(5, 7))
    second, data = read(log, first.position)
    assert data == lines(3, 7) and second.notes == []


def test_copytruncate_finishes_the_copy_then_reads_the_truncated_file_from_zero(tmp_path):
    log = tmp_path / "access.log"
    log.write_bytes(lines(0, 3))
    first, _ = read(log, None)
    append(log, lines(3, 5))
    shutil.copyfile(log, tmp_path / "access.log.1")  # logrotate's copytruncate: copy ...
    with open(log, "r+b") as stream:  # ... then truncate in place (same inode)
        stream.truncate(0)
    append(log, lines(5, 6) * 4)  # and it grows past the old offset before the next run
    assert os.stat(log).st_ino == first.position.inode and log.stat().st_size > first.position.offset
    second, data = read(log, first.position)
    assert data == lines(3, 5) + lines(5, 6) * 4


def test_a_file_shrunk_in_place_without_a_copy_is_read_from_zero_and_said(tmp_path):
    log = tmp_path / "access.log"
    log.write_bytes(lines(0, 5))
    first, _ = read(log, None)
    log.write_bytes(lines(7, 8))  # truncated and rewritten: same inode, smaller
    second, data = read(log, first.position)
    assert data == lines(7, 8)
    assert len(second.notes) == 1 and "not counted" in second.notes[0]


def test_a_missing_log_raises_and_leaves_the_position_to_the_caller(tmp_path):
    with pytest.raises(LogMissing, match="does not exist"):
        read(tmp_path / "access.log", None)
    log = tmp_path / "access.log"
    log.write_bytes(lines(0, 2))
    first, _ = read(log, None)
    log.unlink()
    with pytest.raises(LogMissing):
        read(log, first.position)


def test_a_line_longer_than_a_chunk_is_skipped_not_fatal(tmp_path, monkeypatch):
    from escapia_ical.channels import logreader

    monkeypatch.setattr(logreader, "CHUNK", 64)
    log = tmp_path / "access.log"
    log.write_bytes(b"x" * 200 + b"\n" + lines(0, 1))
    result, data = read(log, None, max_bytes=10_000)
    assert result.oversized >= 1 and data.endswith(lines(0, 1))


def test_a_renamed_file_nginx_still_writes_to_is_not_read_past_a_half_line(tmp_path):
    log, rotated = tmp_path / "access.log", tmp_path / "access.log.1"
    log.write_bytes(lines(0, 2))
    first, _ = read(log, None)
    log.rename(rotated)
    append(rotated, lines(2, 3) + b"2026-05-01T12:09:00+00:00\tGET")  # before nginx reopens
    second, data = read(log, first.position)
    assert data == lines(2, 3)
    append(rotated, b"\t/acme/7.ics\t200\t10\tAirbnb\n")
    log.write_bytes(lines(8, 9))
    third, data = read(log, second.position)
    assert data == b"2026-05-01T12:09:00+00:00\tGET\t/acme/7.ics\t200\t10\tAirbnb\n" + lines(8, 9)
