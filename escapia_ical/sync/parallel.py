"""Accounts synced side by side: a bound on requests in flight across all of them, and
their log lines told in account order, as if the accounts had run one after another.

Each account already has its own lock, deadline share (the run's), failures and per-account
bound (``http.max_concurrency``); running them in threads only adds two shared things:

* **request slots** — at most ``http.max_concurrency_total`` requests in flight for the
  whole run (sources/slots.py: HttpClient takes a slot around each attempt, waiting no
  longer than the run's deadline);
* **the log** — cron mails stderr, and interleaved lines of 200 accounts are unreadable: while
  accounts run in parallel, records are kept per account (known by the name of the thread
  that logs: ``account:<name>`` and its workers, ``account:<name>:units_N`` and
  ``account:<name>:imports_N``) and written when all are done, account by account in the
  configured order.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence

THREAD_PREFIX = "account:"


def account_thread_name(account: str) -> str:
    return f"{THREAD_PREFIX}{account}"


def _account_of(thread_name: str) -> str:
    if not thread_name.startswith(THREAD_PREFIX):
        return ""
    return thread_name[len(THREAD_PREFIX):].split(":", 1)[0]


class _Buffer(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        record.message = record.getMessage()  # as logging.handlers.QueueHandler.prepare does
        record.msg, record.args = record.message, None
        self.records.append(record)  # (list.append is atomic)


@contextlib.contextmanager
def account_logs(order: Sequence[str]) -> Iterator[None]:
    """Keep what the root logger's handlers would write until the block ends, then write
    it account by account in ``order`` (lines no account thread logged come first)."""
    root = logging.getLogger()
    handlers = list(root.handlers)
    buffer = _Buffer()
    # Only what some handler would write is kept (not every debug record of the run), and
    # each message is made when logged, as its arguments are then.
    buffer.setLevel(min((h.level for h in handlers), default=logging.WARNING))
    for handler in handlers:
        root.removeHandler(handler)
    root.addHandler(buffer)
    try:
        yield
    finally:
        root.removeHandler(buffer)
        for handler in handlers:
            root.addHandler(handler)
        rank = {name: i + 1 for i, name in enumerate(order)}
        for record in sorted(buffer.records, key=lambda r: rank.get(_account_of(r.threadName), 0)):
            for handler in handlers:
                if record.levelno >= handler.level:
                    handler.handle(record)
