"""HSAPI bearer tokens: fetched from auth/token, cached in state_dir (0600) and reused
across runs until they expire; after a 401, one new token for every thread that got it.
Tokens are secrets: registered with the log redaction as soon as they are known."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from escapia_ical.config import HsapiAccount
from escapia_ical.errors import AuthError, PublishError, SourceError
from escapia_ical.logs import register_secret
from escapia_ical.sources.dates import parse_api_date
from escapia_ical.sources.hsapi_decode import parse_json
from escapia_ical.sources.http import HttpClient, HttpStatusError
from escapia_ical.state import read_json, write_json

log = logging.getLogger(__name__)

TOKEN_MARGIN = dt.timedelta(seconds=60)  # never send a token this close to its expiry
# A token goes into a header: printable ASCII only (no CR/LF that would split it).
_BEARER = re.compile(r"Bearer [\x21-\x7e]{1,4096}")


class BearerTokens:
    """The bearer tokens of one HSAPI account (thread-safe)."""

    def __init__(self, account: HsapiAccount, http: HttpClient, path: Path,
                 now: Callable[[], dt.datetime]):
        self.account, self.http, self.path, self._now = account, http, path, now
        self._authorization: str | None = None
        self._lock = threading.Lock()

    def header(self, *, refresh: bool, failed: str | None = None) -> str:
        """Return the Authorization header to send. With ``refresh``, ``failed`` is the one
        that got a 401: a new token is fetched unless another thread already did."""
        with self._lock:  # one token fetch, however many threads need one
            if self._authorization and (not refresh or self._authorization != failed):
                return self._authorization
            return self._locked(refresh)

    def _locked(self, refresh: bool) -> str:
        cached = None if refresh else read_json(self.path)
        if isinstance(cached, dict) and cached.get("fingerprint") == self._fingerprint():
            try:
                expires = dt.datetime.fromisoformat(cached["expiration"])
                if self._now() + TOKEN_MARGIN < expires and _BEARER.fullmatch(cached["authorization"]):
                    self._authorization = cached["authorization"]
                    register_secret(self._authorization.removeprefix("Bearer "))
                    return self._authorization
            except (KeyError, TypeError, ValueError, AttributeError):
                pass
        self._authorization = self._new_token()
        return self._authorization

    def _new_token(self) -> str:
        url = f"{self.account.base_url}/hsapi/auth/token"
        try:
            # UTF-8 bytes: requests would encode str credentials as latin-1 and fail on "€".
            credentials = (self.account.client_id.encode(), self.account.client_secret.encode())
            result = self.http.request("GET", url, operation="auth/token", auth=credentials)
        except HttpStatusError as exc:
            if exc.status in (401, 403):
                raise AuthError(f"auth/token: credentials refused (HTTP {exc.status})") from None
            raise
        body = parse_json(result.body, "auth/token")
        if not isinstance(body, dict):
            raise SourceError("auth/token: expected a TokenCreationResult object")
        header = body.get("authorizationHeaderValue")
        if not (isinstance(header, str) and _BEARER.fullmatch(header)):
            encoded = body.get("encodedId")
            if not isinstance(encoded, str) or not _BEARER.fullmatch(f"Bearer {encoded}"):
                raise SourceError("auth/token: answer holds no usable token "
                                  "(authorizationHeaderValue or encodedId)")
            header = f"Bearer {encoded}"
        register_secret(header.removeprefix("Bearer "))  # never in a log line, whatever logs it
        expires = _parse_expiration(body.get("expiration"))
        if expires is None:
            log.warning("%s: token answer has no usable expiration; not caching it", self.account.name)
        else:
            try:
                write_json(self.path, {"fingerprint": self._fingerprint(),
                                              "expiration": expires.isoformat(), "authorization": header})
            except PublishError as exc:  # the token works; only its reuse is lost
                log.warning("%s: %s; the token is not cached", self.account.name, exc)
        return header

    def _fingerprint(self) -> str:
        """Identify the credentials a cached token belongs to, without storing them."""
        material = "\0".join((self.account.base_url, self.account.client_id, self.account.client_secret))
        return hashlib.sha256(material.encode()).hexdigest()


def _parse_expiration(value: Any) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        expires = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        try:
            day = parse_api_date(value, "expiration")
        except SourceError:
            return None
        expires = dt.datetime.combine(day, dt.time())
    return expires if expires.tzinfo else expires.replace(tzinfo=dt.UTC)
