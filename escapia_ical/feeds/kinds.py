"""Kinds of blocks: why a night is blocked, as far as Escapia lets us see.

Escapia's non-availability stays the authority on *which* nights are blocked; a kind only
labels them, so that feed profiles (feeds/profiles.py) can show a cleaner the guest stays
and a channel everything. Kinds:

``reservation``  a guest stay (holdType None)
``owner``        an owner's or an owner's guest's stay (Owner, GuestOfOwner)
``maintenance``  a maintenance hold, or a work order that removes the unit from availability
``hold``         a soft, group or other hold (SoftBlock, GroupSoftBlock, Unavailable)
``other``        blocked for a reason we cannot see: contract dates, non-availability no
                 stay or work order explains, every EscapiaNET night (its letters carry no kind)

A *claim* is what a source knows books a unit's nights, whether or not the calendar blocks
them (``kind -> spans``). :func:`label` joins claims with the blocked nights: a night may
carry several kinds (a stay and a work order on the same night); a blocked night no claim
covers is ``other``; a claimed night that is not blocked is not labelled (it is free).
Only kinds, dates and ids are ever kept: never a guest, an amount or a reservation number.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from escapia_ical.feeds import spans
from escapia_ical.feeds.spans import Span

KINDS = ("reservation", "owner", "maintenance", "hold", "other")
# HSAPI Reservation.holdType -> kind (an unknown holdType is a hold: blocked, never a guest).
HOLD_TYPE_KINDS = {
    "None": "reservation",
    "Owner": "owner",
    "GuestOfOwner": "owner",
    "Maintenance": "maintenance",
    "SoftBlock": "hold",
    "GroupSoftBlock": "hold",
    "Unavailable": "hold",
}
# One letter per kind, for compact state ("r:2026-12-01/2026-12-05 ...").
_LETTERS = {kind: kind[0] for kind in KINDS}
_KINDS_BY_LETTER = {letter: kind for kind, letter in _LETTERS.items()}

Claims = Mapping[str, Iterable[Span]]  # kind -> nights something of that kind books
Labels = dict[str, list[Span]]  # kind -> blocked nights of that kind (normalised spans)


def kind_of_hold_type(hold_type: object) -> str:
    """Return the kind of an HSAPI ``holdType`` (absent or null: a guest stay)."""
    if hold_type in (None, ""):
        return "reservation"
    return HOLD_TYPE_KINDS.get(str(hold_type), "hold")


def label(blocked: Iterable[Span], claims: Claims) -> Labels:
    """Return the blocked nights by kind: each claim's nights that are blocked, and
    ``other`` for blocked nights no claim covers. Kinds with no night are left out."""
    blocked = spans.normalize(blocked)
    labels: Labels = {}
    claimed: list[Span] = []
    for kind in KINDS[:-1]:
        nights = spans.intersect(blocked, claims.get(kind, ()))
        if nights:
            labels[kind] = nights
            claimed += nights
    rest = spans.subtract(blocked, claimed)
    if rest:
        labels["other"] = rest
    return labels


def nights_of(labels: Labels, include: Iterable[str]) -> list[Span]:
    """Return the nights carrying at least one of the ``include``d kinds."""
    return spans.union(*(labels.get(kind, ()) for kind in include))


def encode(labels: Labels) -> str:
    """Return labels compactly for state: ``"r:2026-12-01/2026-12-05 o:2027-01-02/2027-01-09"``."""
    return " ".join(f"{_LETTERS[kind]}:{s.isoformat()}/{e.isoformat()}"
                    for kind in KINDS for s, e in spans.normalize(labels.get(kind, ())))


def decode(text: object) -> Labels | None:
    """Return the labels :func:`encode` wrote, or None if ``text`` is not such a string."""
    if not isinstance(text, str):
        return None
    found: dict[str, list[Span]] = {}
    for part in text.split():
        letter, _, pair = part.partition(":")
        kind = _KINDS_BY_LETTER.get(letter)
        nights = spans.decode(pair) if kind else None
        if not nights:
            return None
        found.setdefault(kind, []).extend(nights)
    return {kind: spans.normalize(nights) for kind, nights in found.items()}
