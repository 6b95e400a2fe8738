"""Logging for a cron job: silent on success, one line per problem on stderr.

Warnings and errors go to stderr (cron mails them); ``-v`` adds progress details, ``-q``
keeps only errors. ``--log-file`` records the details with timestamps whatever the
verbosity, so a quiet cron job still leaves a trail.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

PROGRAM = "escapia-ical"


def setup_logging(verbosity: int, log_file: Path | None = None) -> None:
    """Configure the root logger. ``verbosity``: -1 quiet, 0 normal, 1 -v, 2 -vv.

    A log file that cannot be opened is a warning, not a reason to leave feeds stale.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.setLevel(logging.DEBUG)
    console = logging.StreamHandler(sys.stderr)
    console.setLevel({-1: logging.ERROR, 0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG))
    console.setFormatter(_ConsoleFormatter())
    root.addHandler(console)
    # Library chatter (connection pools, retries) only when asked for everything.
    for noisy in ("urllib3", "requests"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbosity >= 2 else logging.WARNING)
    if log_file is not None:
        try:
            file_handler = logging.FileHandler(log_file, encoding="utf-8")
        except OSError as exc:
            logging.getLogger(__name__).warning(
                "cannot open log file %s (%s); logging to stderr only", log_file, exc.strerror or exc)
            return
        file_handler.setLevel(logging.DEBUG if verbosity >= 2 else logging.INFO)
        file_handler.setFormatter(logging.Formatter("%(asctime)s %(process)d %(levelname)s %(message)s"))
        root.addHandler(file_handler)


class _ConsoleFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        level = "" if record.levelno == logging.INFO else f"{record.levelname.lower()}: "
        return f"{PROGRAM}: {level}{record.getMessage()}"
