"""Feeds on S3-compatible object storage (config ``output: {backend: s3, ...}``), via boto3.

The promises of the disk (feeds/publish.py) hold here too:

- A feed object is only ever replaced whole: one PUT of the complete bytes (never a
  multipart upload, whose parts could be seen apart), with ``Content-MD5`` so that the
  store refuses bytes damaged on the way. Readers see the old object or the new one.
- Unchanged content is not uploaded again: each object carries the SHA-256 of its bytes
  in its metadata (``x-amz-meta-sha256``), compared by a HEAD before a PUT, so that its
  ETag and Last-Modified (what consumers and CDN caches revalidate with) stay the same.
- ``Content-Type: text/calendar; charset=utf-8`` and ``Cache-Control: no-cache``.
- Names map one to one: the file ``output_dir/<account>/<name>.ics`` is the object
  ``<prefix><account>/<name>.ics``; "folders" are key prefixes. Prune and rotation
  delete and write objects as they would files.

Credentials come from boto3's standard chain (environment, shared files, instance or pod
roles); none is read from our config. Every request is bounded (``CONNECT_SECONDS``,
``READ_SECONDS``) and retried by botocore's standard mode at most ``ATTEMPTS`` times.
"""

from __future__ import annotations

import base64
import hashlib
import threading
from pathlib import Path
from typing import Any

from escapia_ical.errors import PublishError

CONTENT_TYPE = "text/calendar; charset=utf-8"
CACHE_CONTROL = "no-cache"
CONNECT_SECONDS, READ_SECONDS, ATTEMPTS = 5, 30, 3


class S3Output:
    """The feeds below ``root`` (output_dir), kept as objects of ``bucket`` under ``prefix``."""

    def __init__(self, root: Path, bucket: str, prefix: str = "", endpoint_url: str | None = None,
                 region: str | None = None):
        self.root, self.bucket = root, bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self._endpoint_url, self._region = endpoint_url, region
        self._client: Any = None
        self._lock = threading.Lock()
        # The names in each folder, listed once per run (a LIST per 1,000 objects): a steady
        # tick asks whether every unit's feed exists, and a HEAD each would be 10,000
        # requests. Kept current by our own PUTs and DELETEs; under its lease, no other
        # host writes an account's folder meanwhile.
        self._names: dict[Path, set[str]] = {}
        self._folders: dict[Path, set[str]] = {}

    # -- what feeds/publish.py asks of a backend ---------------------------------------

    def publish(self, path: Path, content: bytes, force: bool = False) -> bool:
        """Upload ``content`` as ``path``'s object unless it already holds these bytes;
        return whether it was uploaded."""
        key, digest = self.key(path), hashlib.sha256(content).hexdigest()
        if not force and self.exists(path) and self._digest(key) == digest:
            return False
        md5 = base64.b64encode(hashlib.md5(content, usedforsecurity=False).digest()).decode()
        self._call("write", key, "put_object", Bucket=self.bucket, Key=key, Body=content, ContentMD5=md5,
                   ContentType=CONTENT_TYPE, CacheControl=CACHE_CONTROL, Metadata={"sha256": digest})
        self._listed(path.parent).add(path.name)
        for folder in path.parents:  # its folders exist now, as on disk
            if folder == self.root or not folder.is_relative_to(self.root):
                break
            with self._lock:
                if folder.parent in self._names:  # (else it is listed when first asked for)
                    self._folders.setdefault(folder.parent, set()).add(folder.name)
        return True

    def remove(self, path: Path) -> bool:
        """Delete ``path``'s object; return False if there was none."""
        key = self.key(path)
        if not self.exists(path):
            return False
        self._call("delete", key, "delete_object", Bucket=self.bucket, Key=key)
        self._listed(path.parent).discard(path.name)
        return True

    def read(self, path: Path) -> bytes | None:
        """The object's bytes, or None if there is none (or it cannot be read)."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=self.key(path))
            return answer["Body"].read()
        except (ClientError, BotoCoreError):
            return None

    def exists(self, path: Path) -> bool:
        self.key(path)  # (refused if it is not below output_dir)
        return path.name in self._listed(path.parent)

    def files(self, folder: Path) -> list[Path]:
        """The objects directly "in" ``folder`` (not below a further "/")."""
        return [folder / name for name in sorted(self._listed(folder))]

    def _listed(self, folder: Path) -> set[str]:
        """The names of the objects in ``folder`` (listed once, with its subfolders)."""
        with self._lock:
            names = self._names.get(folder)
        if names is None:
            found, folders = self._list(folder)
            with self._lock:
                names = self._names.setdefault(folder, set(found))
                self._folders.setdefault(folder, set(folders))
        return names

    def folders(self, folder: Path) -> list[Path]:
        """The "folders" (key prefixes) directly in ``folder``."""
        self._listed(folder)
        return [folder / name for name in sorted(self._folders.get(folder, ()))]

    def key(self, path: Path) -> str:
        """The object key of the file ``path`` below output_dir."""
        try:
            relative = path.relative_to(self.root)
        except ValueError:
            raise PublishError(f"{path} is not below output_dir {self.root}") from None
        if not relative.parts or any(part in ("", ".", "..") for part in relative.parts):
            raise PublishError(f"{path} does not name a feed below output_dir")
        return self.prefix + relative.as_posix()

    def where(self, path: Path) -> str:
        return f"s3://{self.bucket}/{self.key(path)}"

    # -- boto3 ------------------------------------------------------------------------

    @property
    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                import boto3  # here: only an installation with feeds on S3 needs it
                from botocore.config import Config

                self._client = boto3.session.Session().client(
                    "s3", endpoint_url=self._endpoint_url, region_name=self._region,
                    config=Config(connect_timeout=CONNECT_SECONDS, read_timeout=READ_SECONDS,
                                  retries={"max_attempts": ATTEMPTS, "mode": "standard"},
                                  # Content-MD5 is ours; newer botocore would add CRC32
                                  # checksums that some S3-compatible stores refuse.
                                  request_checksum_calculation="when_required",
                                  response_checksum_validation="when_required"))
            return self._client

    def _call(self, doing: str, key: str, method: str, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self.client, method)(**kwargs)
        except ClientError as exc:
            raise PublishError(f"cannot {doing} s3://{self.bucket}/{key}: {_reason(exc)}") from None
        except BotoCoreError as exc:
            raise PublishError(f"cannot {doing} s3://{self.bucket}/{key}: {exc}") from None

    def _head(self, key: str) -> dict | None:
        """The object's HEAD, or None if there is no such object."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            if str(error.get("Code")) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise PublishError(f"cannot read s3://{self.bucket}/{key}: {error.get('Code', '?')}") from None
        except BotoCoreError as exc:
            raise PublishError(f"cannot read s3://{self.bucket}/{key}: {exc}") from None

    def _digest(self, key: str) -> str | None:
        head = self._head(key)
        return (head or {}).get("Metadata", {}).get("sha256")

    def _list(self, folder: Path) -> tuple[list[str], list[str]]:
        from botocore.exceptions import BotoCoreError, ClientError

        base = self.prefix if folder == self.root else self.key(folder) + "/"
        names, folders = [], []
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=base,
                                                                                Delimiter="/"):
                names += [item["Key"][len(base):] for item in page.get("Contents", [])]
                folders += [item["Prefix"][len(base):].rstrip("/") for item in page.get("CommonPrefixes", [])]
        except ClientError as exc:
            raise PublishError(f"cannot list s3://{self.bucket}/{base}: {_reason(exc)}") from None
        except BotoCoreError as exc:
            raise PublishError(f"cannot list s3://{self.bucket}/{base}: {exc}") from None
        return sorted(n for n in names if n), sorted(f for f in folders if f)


def _reason(exc: Any) -> str:
    """A ClientError as "Code: Message" (S3's own words, no request details)."""
    error = exc.response.get("Error", {})
    return f"{error.get('Code', '?')}: {error.get('Message', '')}".rstrip(": ")
