"""The run: plan what to fetch, fetch it, and hand each unit's calendar to the feed steps.

``runner`` drives one sync over every selected account; ``units`` fetches and publishes one
unit; ``incremental`` follows HSAPI's change feed; ``context`` holds what a run shares and
reports; ``lock`` keeps runs from overlapping.
"""

from escapia_ical.sync.context import AccountResult, Progress, SyncOptions, SyncReport, UnitOutcome
from escapia_ical.sync.runner import feed_window, preview_feed, run_sync

__all__ = ["AccountResult", "Progress", "SyncOptions", "SyncReport", "UnitOutcome", "feed_window",
           "preview_feed", "run_sync"]
