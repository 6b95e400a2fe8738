"""A throwaway PostgreSQL server for the tests: Debian's binaries (scripts/_postgresql.sh
installs them as root), initdb in a temp folder, listening on a free loopback port with a
password (SCRAM), stopped and removed at the end. As root it runs as the ``postgres`` user
(the server refuses root). :func:`start` skips the test, saying why, where it cannot run."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from loopback import free_port

USER, PASSWORD = "escapia", "pg-test-secret-7Qx"


def _binaries() -> Path | None:
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda f: int(f.split("/")[4]), reverse=True):
        if os.access(f"{folder}/initdb", os.X_OK):
            return Path(folder)
    found = shutil.which("pg_ctl")
    return Path(found).parent if found else None


@contextlib.contextmanager
def start() -> Iterator[str]:
    """Start a server; yield the DSN of its database ``escapia`` (user and password in it)."""
    binaries = _binaries()
    if binaries is None:
        pytest.skip("no PostgreSQL server binaries (Debian: apt-get install postgresql; scripts/test "
                    "installs them when run as root)")
    account = None
    if os.geteuid() == 0:
        try:
            account = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root without a postgres user to run the server as")
    root = Path(tempfile.mkdtemp(prefix="escapia-pg-"))
    run_as = {"user": account.pw_uid, "group": account.pw_gid} if account else {}
    if account:
        os.chown(root, account.pw_uid, account.pw_gid)
    data, port = root / "data", free_port()
    (root / "pw").write_text(PASSWORD)
    if account:
        os.chown(root / "pw", account.pw_uid, account.pw_gid)
    env = {**os.environ, "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}
    try:
        subprocess.run([binaries / "initdb", "-D", data, "-U", USER, f"--pwfile={root / 'pw'}", "-E", "UTF8",
                        "--auth=scram-sha-256", "--no-sync"], check=True, capture_output=True, env=env,
                       timeout=120, **run_as)
        options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=60"
        subprocess.run([binaries / "pg_ctl", "-D", data, "-o", options, "-l", root / "log", "-w", "-t", "60",
                        "start"], check=True, capture_output=True, env=env, timeout=90, **run_as)
        dsn = f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{port}/postgres"
        import psycopg

        with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as db:
            db.execute("CREATE DATABASE escapia")
        yield dsn.rsplit("/", 1)[0] + "/escapia"
    except subprocess.CalledProcessError as exc:
        log = (root / "log").read_text(errors="replace") if (root / "log").exists() else ""
        raise RuntimeError(f"PostgreSQL did not start: {exc.stderr!r} {log[-2000:]}") from exc
    finally:
        subprocess.run([binaries / "pg_ctl", "-D", data, "-m", "immediate", "-w", "stop"], capture_output=True,
                       env=env, timeout=60, **run_as)
        shutil.rmtree(root, ignore_errors=True)
