"""The ``feeds`` settings: what every feed shows (summary, window, UID domain, base_url),
the publish policy's thresholds, and the named feed profiles (config/profiles.py)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from .accounts import typed
from .positions import KeyPath, Problem
from .profiles import Profile, build_profiles, profile_problems

# Keys still accepted so that an upgrade does not stop cron, but no longer used.
DEPRECATED: dict[KeyPath, str] = {
    ("feeds", "shrink_guard"): "no longer used: losses are now judged night by night (see "
                               "\"The publish policy\" in the README); remove it",
}


@dataclass(frozen=True)
class FeedSettings:
    summary: str = "Reserved"  # not "Not available": importers drop that, Airbnb's wording (README)
    past_days: int = 7
    future_days: int = 730
    uid_domain: str = "escapia-ical"
    # The public URL output_dir is served at (``feeds`` prints full URLs); its host is the
    # default uid_domain. ``uid_domain_fallback``: neither was set, so UIDs end in
    # "@escapia-ical" (said once per state_dir, see sync/runner.py).
    base_url: str | None = None
    uid_domain_fallback: bool = True
    profiles: tuple[Profile, ...] = ()  # the global named profiles (accounts hold the resolved ones)
    # The publish policy (feeds/policy.py): an unexplained loss of nights is published once
    # answers this far apart agree; the breaker holds every unexplained loss of an account
    # when at least breaker_units units and breaker_share of those fetched lose nights at once.
    confirm_minutes: float = 10.0
    breaker_units: int = 3
    breaker_share: float = 0.2
    # A unit no longer listed or selected keeps its feed this long before `prune` removes it.
    retire_grace_days: int = 7



def feeds_problems(data: dict) -> list[Problem]:
    """Given the document, return what the schema cannot say of ``feeds`` and the accounts'
    ``profiles``: profile names and windows (config/profiles.py), base_url's port."""
    feeds = data.get("feeds") if isinstance(data.get("feeds"), dict) else {}
    defaults = {"past_days": FeedSettings.past_days, "future_days": FeedSettings.future_days}
    problems = profile_problems(feeds.get("profiles"), feeds, defaults, ("feeds", "profiles"))
    base_url = feeds.get("base_url")
    if isinstance(base_url, str) and base_url.startswith(("http://", "https://")):
        try:
            urlsplit(base_url).port  # noqa: B018 -- raises ValueError on a malformed port
        except ValueError:
            problems.append(Problem(("feeds", "base_url"), "has no usable port"))
    accounts = data.get("accounts")
    for i, account in enumerate(accounts if isinstance(accounts, list) else []):
        if isinstance(account, dict):
            where = ("accounts", i, "profiles")
            problems += profile_problems(account.get("profiles"), feeds, defaults, where)
    return problems


def feed_settings(feeds: dict, lines: dict[KeyPath, int]) -> FeedSettings:
    """Given the validated ``feeds`` mapping, return its settings, with uid_domain defaulting
    to base_url's host (and today's "escapia-ical" when neither is set)."""
    plain = {k: v for k, v in feeds.items() if ("feeds", k) not in DEPRECATED and k != "profiles"}
    settings = FeedSettings(**typed(FeedSettings(), {k: v for k, v in plain.items() if k != "base_url"}))
    base_url = plain.get("base_url", "").rstrip("/") or None
    host = urlsplit(base_url).hostname if base_url else None
    return replace(settings, base_url=base_url,
                   uid_domain=plain.get("uid_domain") or host or settings.uid_domain,
                   uid_domain_fallback="uid_domain" not in plain and not host,
                   profiles=build_profiles(feeds.get("profiles"), lines, ("feeds", "profiles")))
