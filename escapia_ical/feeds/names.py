"""Unit ids become file names that cannot escape ``output/`` and never collide.

Ids come from Escapia and are not ours to trust: ``../x``, ``a/b``, ``.hidden``, empty,
300 characters, unicode and NUL have all to map to a plain name inside the account folder.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata

MAX_ID_LENGTH = 100
# A "plain" id is used as it is. It never contains "~", which every rewritten name does,
# so a plain id can never equal a rewritten one.
_PLAIN_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")
_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9_-]+")
# Every name feed_filename() can return (plain stem, or prefix~hash, optionally -token).
_FEED_FILENAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._~-]{0,250}\.ics")


def feed_stem(unit_id: str) -> str:
    """Given a unit id, return the file name (without ``.ics``) of its feed.

    Plain ids (ASCII letters, digits, ``._-``, not starting with a dot, no ``..``, at
    most 100 characters) are kept as they are. Any other id becomes a readable prefix
    plus ``~`` and 16 hex digits of its SHA-256, so two different ids never share a name
    and the result holds no separator, dot-prefix, control character or unicode.
    """
    if _PLAIN_ID.fullmatch(unit_id) and ".." not in unit_id and len(unit_id) <= MAX_ID_LENGTH:
        return unit_id
    digest = hashlib.sha256(unit_id.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    # A readable hint only (the hash makes the name unique): "ünit 9" -> "unit_9".
    ascii_hint = unicodedata.normalize("NFKD", unit_id).encode("ascii", "ignore").decode()
    prefix = _UNSAFE_CHARS.sub("_", ascii_hint).strip("_")[:48]
    return f"{prefix}~{digest}" if prefix else f"unit~{digest}"


def feed_filename(unit_id: str, token_secret: str | None = None, account: str = "",
                  generation: int = 0, profile: str = "") -> str:
    """Return the feed's file name: :func:`feed_stem` plus ``.ics``.

    With ``token_secret`` the name also carries a 128-bit token, ``<stem>-<token>.ics``,
    derived from the secret, the account, the unit and the unit's name ``generation``
    (raised by ``escapia-ical rotate``; 0 gives the names of before rotation existed):
    stable across runs, unguessable without the secret (an occupancy calendar tells a
    burglar when a house is empty). A named feed ``profile``'s token is derived with the
    profile's name too: a cleaner given the cleaner's URL cannot guess the channel feed's.
    """
    if token_secret is None:
        return feed_stem(unit_id) + ".ics"
    suffix = (f"\0{generation}" if generation else "") + (f"\0profile:{profile}" if profile else "")
    message = f"{account}\0{unit_id}{suffix}".encode("utf-8", "surrogatepass")
    token = hmac.new(token_secret.encode("utf-8", "surrogatepass"), message, hashlib.sha256).hexdigest()[:32]
    return f"{feed_stem(unit_id)}-{token}.ics"


def account_feed_filename(account, unit_id: str, generation: int = 0, profile: str = "") -> str:
    """Return the current file name of ``unit_id``'s feed (of the named ``profile``: inside
    its folder) under ``account``'s settings and the unit's name ``generation`` (see
    feeds/rotation.py ``UnitNames``)."""
    tokens = account.feed_tokens
    return feed_filename(unit_id, tokens.secret if tokens else None, account.name, generation, profile)


def is_feed_filename(name: object) -> bool:
    """Return True if ``name`` could be a feed file name of ours: one plain name inside the
    account folder (no "/", no NUL, no leading dot, so never "." or "..", ASCII, ending in
    ``.ics``). Names read back from state are checked with this before any file is written
    or deleted under them."""
    return isinstance(name, str) and _FEED_FILENAME.fullmatch(name) is not None
