"""Things worth saying once per installation, not every five minutes from cron: each is
remembered in ``state_dir/notices.json`` (key -> when it was said) once said."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

from escapia_ical.errors import PublishError
from escapia_ical.state import read_state, write_state

log = logging.getLogger("escapia_ical.sync")


def say_once(state_dir: Path, key: str, message: str, now: dt.datetime) -> bool:
    """Log ``message`` as a warning unless ``key`` was said before in this state_dir; return
    whether it was said now. A notice that cannot be recorded is said again next time."""
    path = state_dir / "notices.json"
    said = read_state(path)
    said = said if isinstance(said, dict) else {}
    if key in said:
        return False
    log.warning("%s (said once)", message)
    try:
        write_state(path, {**said, key: now.isoformat()})
    except PublishError as exc:
        log.debug("notice not recorded: %s", exc)
    return True
