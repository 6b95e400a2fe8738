"""Feeds on S3-compatible storage (``output: {backend: s3}``) under the real CLI, against
moto's S3 server on loopback: every unit's object holds its true nights; a steady tick
uploads nothing (ETag and Last-Modified stay); a booking rewrites one object; a failing
bucket is a clear error and is not recorded as published."""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import logging
import re
import sys
from pathlib import Path

from conftest import account_yaml, write_config
from feeds import nights_icalendar

from escapia_ical.feeds.names import feed_filename

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "unit"))
from s3_server import CREDENTIALS, client  # noqa: E402

TODAY = dt.date.today()
_buckets = itertools.count()


@contextlib.contextmanager
def s3_requests():
    """The request lines moto's server (in this process) answers inside the block."""
    seen: list[str] = []

    class Seen(logging.Handler):
        def emit(self, record):
            line = re.search(r'"([A-Z]+ \S+) HTTP', record.getMessage())
            if line:
                seen.append(line[1])
    handler, log = Seen(), logging.getLogger("werkzeug")
    level, log.level = log.level, logging.INFO
    log.addHandler(handler)
    try:
        yield seen
    finally:
        log.removeHandler(handler)
        log.setLevel(level)


def use_s3(deployment, endpoint: str, bucket: str | None = None) -> str:
    bucket = bucket or f"e2e-feeds-{next(_buckets)}"
    write_config(deployment.config)
    text = deployment.config.read_text()
    deployment.config.write_text(text.replace("accounts:\n", f"output:\n  backend: s3\n  bucket: {bucket}\n"
                                              f"  prefix: pm/\n  endpoint_url: {endpoint}\n  region: us-east-1\n"
                                              "accounts:\n", 1))
    return bucket


def objects(endpoint: str, bucket: str) -> dict[str, tuple]:
    listed = client(endpoint).list_objects_v2(Bucket=bucket).get("Contents", [])
    return {item["Key"]: (item["ETag"], item["LastModified"]) for item in listed}


def nights(endpoint: str, bucket: str, unit: str) -> set[dt.date]:
    body = client(endpoint).get_object(Bucket=bucket, Key=f"pm/sandbox/{feed_filename(unit)}")["Body"].read()
    return nights_icalendar(body)


def test_feeds_are_objects_written_only_when_they_change(deployment, s3_endpoint):
    bucket = use_s3(deployment, s3_endpoint)
    client(s3_endpoint).create_bucket(Bucket=bucket)
    sandbox = deployment.sandbox
    first = deployment.run("sync", **CREDENTIALS)
    assert first.returncode == 0, first.stderr
    units = sandbox.unit_ids()
    assert set(objects(s3_endpoint, bucket)) == {f"pm/sandbox/{feed_filename(u)}" for u in units}
    for unit in units:
        assert nights(s3_endpoint, bucket, unit) == deployment.truth(unit)
    assert not deployment.output.exists()  # nothing on the local disk
    before = objects(s3_endpoint, bucket)

    with s3_requests() as seen:
        steady = deployment.run("sync", **CREDENTIALS)
    assert steady.returncode == 0, steady.stderr
    # One LIST of the account's folder: no HEAD per unit, no upload.
    assert [line.split()[0] for line in seen] == ["GET"] and "list-type=2" in seen[0], seen
    assert objects(s3_endpoint, bucket) == before  # validators stay

    unit = units[3]
    sandbox.add_reservation(unit, TODAY + dt.timedelta(days=50), TODAY + dt.timedelta(days=53))
    changed = deployment.run("sync", **CREDENTIALS)
    assert changed.returncode == 0, changed.stderr
    after = objects(s3_endpoint, bucket)
    assert {k for k in after if after[k] != before[k]} == {f"pm/sandbox/{feed_filename(unit)}"}
    assert nights(s3_endpoint, bucket, unit) == deployment.truth(unit)


def test_a_missing_bucket_fails_clearly_and_is_tried_again(deployment, s3_endpoint):
    bucket = use_s3(deployment, s3_endpoint)
    failed = deployment.run("sync", **CREDENTIALS)
    assert failed.returncode == 1
    assert f"cannot list s3://{bucket}/pm/sandbox/: NoSuchBucket: " in failed.stderr
    assert "Traceback" not in failed.stderr and CREDENTIALS["AWS_SECRET_ACCESS_KEY"] not in failed.stderr
    client(s3_endpoint).create_bucket(Bucket=bucket)
    healed = deployment.run("sync", **CREDENTIALS)
    assert healed.returncode == 0, healed.stderr
    for unit in deployment.sandbox.unit_ids():  # nothing was recorded as published before
        assert nights(s3_endpoint, bucket, unit) == deployment.truth(unit)


def test_config_problems_are_named(deployment):
    write_config(deployment.config)
    text = deployment.config.read_text()
    deployment.config.write_text(text.replace("accounts:\n", "output:\n  backend: s3\naccounts:\n", 1))
    result = deployment.run("sync")
    assert result.returncode == 2 and "output: backend s3 needs bucket" in result.stderr
    deployment.config.write_text(text.replace("accounts:\n", "output:\n  backend: disk\n  bucket: x1y\n"
                                              "accounts:\n", 1))
    result = deployment.run("sync")
    assert result.returncode == 2 and "output.bucket: is only read with backend: s3" in result.stderr


def test_rotation_and_prune_delete_and_write_objects(deployment, s3_endpoint):
    secret = "feed-token-secret-s3-0123456789ab"
    bucket = f"e2e-feeds-{next(_buckets)}"
    write_config(deployment.config, account_yaml(extra=f"    feed_tokens: true\n    feed_token_secret: {secret}\n"))
    text = deployment.config.read_text()
    deployment.config.write_text(text.replace("accounts:\n", f"output:\n  backend: s3\n  bucket: {bucket}\n"
                                              f"  endpoint_url: {s3_endpoint}\n  region: us-east-1\n"
                                              "accounts:\n", 1))
    client(s3_endpoint).create_bucket(Bucket=bucket)
    sandbox = deployment.sandbox
    assert deployment.run("sync", **CREDENTIALS).returncode == 0
    before = objects(s3_endpoint, bucket)
    unit, gone = "1020-105", sandbox.unit_ids()[0]
    leaked = next(k for k in before if k.startswith(f"sandbox/{unit}-"))
    rotated = deployment.run("rotate", "--account", "sandbox", "--unit", unit, "--revoke-now", **CREDENTIALS)
    assert rotated.returncode == 0, rotated.stderr
    new = "sandbox/" + rotated.stdout.strip().split("\t")[2].rsplit("/", 1)[1]
    after = objects(s3_endpoint, bucket)
    assert leaked not in after and new in after
    assert set(after) == set(before) - {leaked} | {new}  # only that unit's name changed
    body = client(s3_endpoint).get_object(Bucket=bucket, Key=new)["Body"].read()
    assert nights_icalendar(body) == deployment.truth(unit)
    assert secret not in rotated.stdout + rotated.stderr

    real = sandbox.data.search_units  # Escapia stops distributing a unit; prune --now removes it
    sandbox.data.search_units = lambda *a, **k: [u for u in real(*a, **k) if u.id != gone]
    assert deployment.run("sync", "--full", **CREDENTIALS).returncode == 0
    pruned = deployment.run("prune", "--now", **CREDENTIALS)
    assert pruned.returncode == 0, pruned.stderr
    assert not any(k.startswith(f"sandbox/{gone}-") for k in objects(s3_endpoint, bucket))
    assert len(objects(s3_endpoint, bucket)) == len(before) - 1
