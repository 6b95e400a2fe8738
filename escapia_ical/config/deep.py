"""``check-config --deep``: what a run will need from this machine, tried without network.

The schema says a config is well-formed; a run can still fail on the machine it runs on:
a folder it cannot write, a metrics file that is a directory, an account folder that is a
symbolic link. Each check here is one a sync or ``status`` would otherwise fail at.
"""

from __future__ import annotations

import os
from pathlib import Path

from escapia_ical.config.load import Config


def deep_problems(config: Config) -> list[str]:
    """Return one line per thing a run would fail at on this machine (none: all fine)."""
    problems = [p for p in (_folder_problem("output_dir", config.output_dir),
                            _folder_problem("state_dir", config.state_dir)) if p]
    if config.metrics_file is not None:
        problems += _file_problems("metrics_file", config.metrics_file)
    if config.report_html is not None:
        problems += _file_problems("report_html", config.report_html)
    if config.channels is not None:
        log = config.channels.access_log
        if not log.exists():
            problems.append(f"channels.access_log: {log} does not exist (yet?): no channel fetch is seen "
                            "until nginx writes it")
        elif not log.is_file() or not os.access(log, os.R_OK):
            problems.append(f"channels.access_log: {log} is not a file this user can read")
    for account in config.accounts:
        for key, folder in (("output", config.output_dir / account.name),
                            ("state", config.state_dir / "accounts" / account.name)):
            if folder.is_symlink():
                problems.append(f"accounts {account.name!r}: its {key} folder {folder} is a symbolic "
                                "link; a run refuses to write through it")
            elif folder.exists():
                problems += [p for p in (_folder_problem(f"accounts {account.name!r} {key} folder", folder),)
                             if p]
    return problems


def _folder_problem(what: str, folder: Path) -> str | None:
    """Return why a run could not create or write ``folder``, or None."""
    if folder.exists():
        if not folder.is_dir():
            return f"{what}: {folder} is not a folder"
        if not os.access(folder, os.W_OK | os.X_OK):
            return f"{what}: {folder} is not writable by this user (uid {os.getuid()})"
        return None
    parent = _existing_parent(folder)
    if not parent.is_dir():
        return f"{what}: {folder} cannot be created: {parent} is a file, not a folder"
    if not os.access(parent, os.W_OK | os.X_OK):
        return (f"{what}: {folder} does not exist and cannot be created ({parent} is not writable by "
                "this user)")
    return None


def _file_problems(what: str, path: Path) -> list[str]:
    if path.is_dir():
        return [f"{what}: {path} is a folder; name a file in it, e.g. {path / 'escapia-ical.prom'}"]
    if path.exists() and not os.access(path, os.W_OK):
        return [f"{what}: {path} is not writable by this user"]
    problem = _folder_problem(f"{what}'s folder", path.parent)
    return [problem] if problem else []


def _existing_parent(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path
