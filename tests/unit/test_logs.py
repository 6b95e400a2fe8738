"""Log lines cannot be forged by what Escapia sends, and never hold a registered secret."""

from __future__ import annotations

import logging

import pytest

from escapia_ical import cli, logs
from escapia_ical.errors import ConfigError, SourceError

# A unit id as Escapia might send it: each of these would start a new line or repaint a
# terminal if it were written as it is.
EVIL_ID = "1020\nescapia-ical: error: forged\rline\x1b[31mred\u2028sep"
ESCAPED_ID = r"1020\nescapia-ical: error: forged\rline\x1b[31mred\u2028sep"


@pytest.fixture(autouse=True)
def fresh_logging():
    """Each test starts without registered secrets and leaves no handler behind."""
    saved, level = logs._secrets, logging.getLogger().level
    logs._secrets = ()
    yield
    logs._secrets = saved
    root = logging.getLogger()
    root.setLevel(level)
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()


def test_console_and_log_file_escape_every_line_breaking_character(tmp_path, capsys):
    log_file = tmp_path / "sync.log"
    logs.setup_logging(1, log_file)
    logging.getLogger("escapia_ical.sync").warning("%s/%s: HTTP 500", "acct", EVIL_ID)
    logging.getLogger("escapia_ical.sync").info("acct/%s: written (3 events)", EVIL_ID)
    stderr = capsys.readouterr().err
    assert stderr.splitlines() == [f"escapia-ical: warning: acct/{ESCAPED_ID}: HTTP 500",
                                   f"escapia-ical: acct/{ESCAPED_ID}: written (3 events)"]
    assert "\x1b" not in stderr and "\r" not in stderr and "\u2028" not in stderr
    lines = log_file.read_text(encoding="utf-8").split("\n")
    assert len(lines) == 3 and lines[2] == ""  # two records, each on exactly one line
    assert lines[0].endswith(f" WARNING acct/{ESCAPED_ID}: HTTP 500")
    assert "\x1b" not in lines[1] and "\r" not in lines[1] and "\u2028" not in lines[1]


def test_a_traceback_in_the_log_file_cannot_pass_for_a_record(tmp_path):
    log_file = tmp_path / "sync.log"
    logs.setup_logging(2, log_file)
    try:
        raise SourceError(f"unit {EVIL_ID}: 2026-01-01 00:00:00,000 1 ERROR forged")
    except SourceError:
        logging.getLogger("escapia_ical.sync").debug("acct: details", exc_info=True)
    first, *details = log_file.read_text(encoding="utf-8").rstrip("\n").split("\n")
    assert first.endswith(" DEBUG acct: details")
    assert details and all(line.startswith("    | ") for line in details)
    # A line break inside the exception's text breaks the traceback's line, but the rest
    # is indented and escaped like every traceback line: no forged record.
    assert details[-1] == r"    | escapia-ical: error: forged\rline\x1b[31mred\u2028sep: 2026-01-01 00:00:00,000 1 ERROR forged"


def test_registered_secrets_are_masked_whatever_logs_them(tmp_path, capsys):
    log_file = tmp_path / "sync.log"
    logs.setup_logging(2, log_file)
    logs.register_secret("https://hc.example.org/ping/c0ffee-uuid")
    logs.register_secret("/ping/c0ffee-uuid")
    logs.register_secret("s3cr3t")
    logs.register_secret("")  # nothing to hide: must not mask everything
    logging.getLogger("urllib3.connectionpool").debug(
        '%s://%s:%s "%s %s %s" %s %s', "https", "hc.example.org", 443, "POST", "/ping/c0ffee-uuid/start",
        "HTTP/1.1", 200, 2)
    logging.getLogger("escapia_ical.healthcheck").warning("ping https://hc.example.org/ping/c0ffee-uuid/0")
    try:
        raise ValueError("server echoed s3cr3t")
    except ValueError:
        logging.getLogger("escapia_ical.sync").error("acct: failed with s3cr3t", exc_info=True)
    outputs = {"stderr": capsys.readouterr().err, "log file": log_file.read_text(encoding="utf-8")}
    for where, text in outputs.items():
        for secret in ("c0ffee", "s3cr3t"):
            assert secret not in text, f"{secret} in {where}"
    assert 'https://hc.example.org:443 "POST ***/start HTTP/1.1" 200 2' in outputs["stderr"]
    assert "escapia-ical: warning: ping ***/0" in outputs["stderr"]
    assert "ValueError: server echoed ***" in outputs["log file"]


@pytest.mark.parametrize("error", [SourceError(f"unit {EVIL_ID} failed"), ConfigError([f"x.yaml:3: {EVIL_ID}"]),
                                   RuntimeError(f"bug near {EVIL_ID}")])
def test_cli_error_lines_are_escaped_and_masked(capsys, error):
    logs.register_secret("forged")

    def fail():
        raise error

    with pytest.raises(SystemExit):
        cli._run(fail, 0)
    stderr = capsys.readouterr().err
    assert len(stderr.splitlines()) == 1 and stderr.startswith("escapia-ical: ")
    assert ESCAPED_ID.replace("forged", "***") in stderr


def test_a_log_line_never_shares_the_terminal_line_of_a_progress_bar(capsys):
    import logging
    import sys

    from escapia_ical.logs import setup_logging, status_line

    setup_logging(0)
    status_line(lambda: sys.stderr.write("[bar 3/8]"))
    try:
        sys.stderr.write("[bar 2/8]")
        logging.getLogger("escapia_ical.test").warning("unit 7 failed")
    finally:
        status_line(None)
    logging.getLogger("escapia_ical.test").warning("after")
    assert capsys.readouterr().err == ("[bar 2/8]\r\x1b[Kescapia-ical: warning: unit 7 failed\n[bar 3/8]"
                                       "escapia-ical: warning: after\n")


@pytest.mark.parametrize(("verbosity", "log_file", "level"), [
    (-1, False, logging.ERROR), (0, False, logging.WARNING), (0, True, logging.INFO),
    (1, False, logging.INFO), (2, False, logging.DEBUG), (0, "unwritable", logging.WARNING)])
def test_the_root_logger_lets_through_only_what_a_handler_writes(tmp_path, verbosity, log_file, level):
    """No LogRecord is made for a line no handler would write (at 10,000 units the records
    of per-unit info lines cost 3 % of a daily roll that shows warnings only)."""
    path = {False: None, True: tmp_path / "sync.log", "unwritable": tmp_path / "missing" / "sync.log"}[log_file]
    logs.setup_logging(verbosity, path)
    root = logging.getLogger()
    assert root.level == level
    made: list[logging.LogRecord] = []
    spy = logging.Handler(logging.NOTSET)
    spy.emit = made.append  # every record made reaches it, whatever its level
    root.addHandler(spy)
    for line_level in (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR):
        logging.getLogger("escapia_ical.sync").log(line_level, "acct/1: a line")
    root.removeHandler(spy)
    assert [r.levelno for r in made] == [n for n in (10, 20, 30, 40) if n >= level]
