"""Logging for a cron job: silent on success, one line per problem on stderr.

Warnings and errors go to stderr (cron mails them); ``-v`` adds progress details, ``-q``
keeps only errors. ``--log-file`` records the details with timestamps whatever the
verbosity, so a quiet cron job still leaves a trail.

Two rules hold for every line, whatever logged it (our code, requests, urllib3):

- it is one line: unit ids and names come from Escapia, and a name holding a line break
  or a terminal escape must not be able to forge a log line or repaint a terminal;
- it holds no secret: every value passed to :func:`register_secret` (credentials, the
  healthcheck URL, bearer tokens) is replaced by ``***`` before anything is written, and so
  is the token of every secret feed name (``<unit>-<32 hex>.ics`` -> ``<unit>-***.ics``):
  a path in an error must not give away the URL it protects.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from pathlib import Path

from escapia_ical.config.positions import one_line

PROGRAM = "escapia-ical"
MASK = "***"

_secrets: tuple[str, ...] = ()  # longest first, so a secret inside another is masked whole
_secrets_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Mask ``value`` wherever it would appear in a log line from now on. Empty values and
    None are ignored (nothing to hide, and masking "" would garble every line)."""
    global _secrets
    if not value:
        return
    with _secrets_lock:
        if value not in _secrets:
            _secrets = tuple(sorted((*_secrets, value), key=len, reverse=True))


_FEED_TOKEN = re.compile(r"-[0-9a-f]{32}(?=\.ics)")  # see feeds/names.py feed_filename


def redact(text: str) -> str:
    """Return ``text`` with every registered secret, and every secret feed name's token,
    replaced by ``***``."""
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return mask_feed_tokens(text)


def mask_feed_tokens(text: str) -> str:
    """Return ``text`` with the token of each secret feed file name masked."""
    return _FEED_TOKEN.sub("-" + MASK, text)


class RedactSecrets(logging.Filter):
    """Replaces registered secrets in a record's message and exception text, whatever
    logger produced it. Attached to every handler, so no output path is left out."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string; logging reports it at emit
            return True
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def setup_logging(verbosity: int, log_file: Path | None = None) -> None:
    """Configure the root logger. ``verbosity``: -1 quiet, 0 normal, 1 -v, 2 -vv.

    A log file that cannot be opened is a warning, not a reason to leave feeds stale.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.setLevel(logging.DEBUG)
    console = _ConsoleHandler(sys.stderr)
    console.setLevel({-1: logging.ERROR, 0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG))
    console.setFormatter(_ConsoleFormatter())
    console.addFilter(RedactSecrets())
    root.addHandler(console)
    # Library chatter (connection pools, retries) only when asked for everything.
    for noisy in ("urllib3", "requests", "escapia_ical.sources.transport"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbosity >= 2 else logging.WARNING)
    # Never botocore's debug lines, at any verbosity: they print signed requests, with the
    # access key and a role's session token (feeds on S3, feeds/s3.py).
    for secretive in ("botocore", "boto3", "s3transfer"):
        logging.getLogger(secretive).setLevel(logging.WARNING)
    if log_file is not None:
        try:
            file_handler = logging.FileHandler(log_file, encoding="utf-8")
        except OSError as exc:
            logging.getLogger(__name__).warning(
                "cannot open log file %s (%s); logging to stderr only", log_file, exc.strerror or exc)
        else:
            file_handler.setLevel(logging.DEBUG if verbosity >= 2 else logging.INFO)
            file_handler.setFormatter(_FileFormatter("%(asctime)s %(process)d %(levelname)s %(message)s"))
            file_handler.addFilter(RedactSecrets())
            root.addHandler(file_handler)
    # The root logger lets through only what a handler writes: a debug or info line that
    # none would write then costs one comparison, not a LogRecord (at 10,000 units, 3 % of
    # the daily roll's CPU went to records no handler wanted).
    root.setLevel(min(handler.level for handler in root.handlers))


class _ConsoleHandler(logging.StreamHandler):
    """stderr, sharing the terminal with a progress bar (``status_line``): the bar's line is
    cleared before a record is written and drawn again after it, so that the two never share
    a line."""

    def emit(self, record: logging.LogRecord) -> None:
        redraw = _status_line
        if redraw is not None:
            self.stream.write("\r\x1b[K")
        super().emit(record)
        if redraw is not None:
            redraw()


_status_line = None  # draws the progress bar again, while one is on the terminal


def status_line(redraw) -> None:
    """Say that a progress bar now holds stderr's last line (``redraw`` draws it again), or
    that none does (None)."""
    global _status_line
    _status_line = redraw


class _ConsoleFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        level = "" if record.levelno == logging.INFO else f"{record.levelname.lower()}: "
        return f"{PROGRAM}: {level}{one_line(record.getMessage())}"


class _FileFormatter(logging.Formatter):
    """One line per record; a traceback (-v details) follows on lines of its own, each
    indented and escaped, so that none can pass for a record of its own."""

    def format(self, record: logging.LogRecord) -> str:
        record.message = one_line(record.getMessage())
        record.asctime = self.formatTime(record, self.datefmt)
        text = self.formatMessage(record)
        details = record.exc_text or (self.formatException(record.exc_info) if record.exc_info else "")
        if record.stack_info:
            details = f"{details}\n{record.stack_info}".lstrip("\n")
        return f"{text}\n{_indented(details)}" if details else text


def _indented(text: str) -> str:
    return "\n".join(f"    | {one_line(line)}" for line in text.split("\n"))
