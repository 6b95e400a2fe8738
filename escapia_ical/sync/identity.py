"""State belongs to the Escapia account it came from, not only to a name in the config.

An account's state (published-feed records, change-feed cursor, held losses, token) is
kept under its config name. If the name is given to another Escapia account — ``pmcid``,
``base_url`` or the EscapiaNET username changed, or two configs share a state_dir — that
state would be taken for the new account's: another PMC's calendars compared with, rolled
into or published under these feeds. So the state folder records a digest of the source's
identity (no secret in it), and a mismatch starts the account afresh, with a warning.
"""

from __future__ import annotations

import hashlib
import logging

from escapia_ical.config import Account
from escapia_ical.state import AccountState, delete_state, read_state, write_state

log = logging.getLogger(__name__)

STATE_FILES = ("feeds.json", "changes.json", "policy.json", "token.json", "escapianet.json", "imports.json")


def source_identity(account: Account) -> str:
    """Return a digest of what identifies the account's data at Escapia."""
    if account.api == "hsapi":
        parts = ("hsapi", account.base_url, str(account.pmcid))
    else:
        parts = ("escapianet", account.base_url, account.username, account.property_manager_code or "")
    return hashlib.sha256("\0".join(parts).encode("utf-8", "surrogatepass")).hexdigest()


def claim_state(state: AccountState, account: Account) -> bool:
    """Make ``state`` the account's: return True if it belonged to another source and was
    cleared (reported as a warning), False if it is the account's or new. State written
    before identities were recorded is taken as the account's. Raise PublishError if the
    identity cannot be written."""
    path = state.folder / "identity.json"
    mine = source_identity(account)
    recorded = read_state(path)
    if isinstance(recorded, dict) and recorded.get("identity") == mine:
        return False
    other = isinstance(recorded, dict) and isinstance(recorded.get("identity"), str)
    if other:
        log.warning("%s: the state in %s belongs to another Escapia account (base_url, pmcid or "
                    "username changed, or another config shares this state_dir); starting afresh",
                    account.name, state.folder)
        writes = (read_state(state.folder / "imports.json") or {}).get("writes")
        orders = sorted({str(w.get("order")) for w in writes.values() if isinstance(w, dict)}) \
            if isinstance(writes, dict) else []
        if orders:  # (they are the other account's: this one cannot close them)
            log.warning("%s: the work orders escapia-ical created there to block channel bookings are "
                        "forgotten, not closed: %s; close them in that account if they are no longer needed",
                        account.name, ", ".join(orders[:20]) + (" ..." if len(orders) > 20 else ""))
        for name in STATE_FILES:
            delete_state(state.folder / name)
    write_state(path, {"identity": mine})
    return other
