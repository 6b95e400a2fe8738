"""The pacer: a client-side rate limit, and slowing down on Escapia's X-RateLimit hints."""

import pytest

from escapia_ical.errors import DeadlineReached
from escapia_ical.sources.pacing import Pacer


class Clock:
    def __init__(self):
        self.now, self.slept = 100.0, []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 6))
        self.now += seconds


def pacer(per_minute=0, concurrency=8, max_wait=60.0):
    clock = Clock()
    return Pacer(per_minute, concurrency, max_wait=max_wait, sleep=clock.sleep, clock=clock), clock


def test_no_limit_never_waits():
    p, clock = pacer()
    for _ in range(100):
        p.wait()
    assert clock.slept == []


def test_requests_per_minute_are_spaced():
    p, clock = pacer(per_minute=120)
    for _ in range(4):
        p.wait()
    assert clock.slept == [0.5, 0.5, 0.5]


@pytest.mark.parametrize(("remaining", "window_ms", "wait"), [
    ("100", "60000", None),  # plenty left: no pause
    ("8", "60000", 7.5),  # few left: spread them over the window
    ("0", "60000", 60.0),  # none left: wait the window
    ("0", "600000", 60.0),  # ...but never longer than max_wait
    ("x", "60000", None),  # unreadable hints are ignored
])
def test_rate_limit_hints(remaining, window_ms, wait):
    p, clock = pacer()
    p.observe({"X-RateLimit-Remaining": remaining, "X-RateLimit-Window": window_ms})
    p.wait()
    assert clock.slept == ([] if wait is None else [wait])


def test_retry_after_wins_over_the_window():
    p, clock = pacer()
    p.observe({"X-RateLimit-Remaining": "0", "X-RateLimit-Window": "60000", "Retry-After": "1"})
    p.wait()
    assert clock.slept == []  # the retry waits its Retry-After; the pacer adds nothing


def test_a_wait_past_the_deadline_raises_and_takes_no_turn():
    p, clock = pacer(per_minute=6)  # one request every 10 s
    p.wait(deadline=105)
    with pytest.raises(DeadlineReached, match="^pacing would hold it 10.0 s, past the run deadline"):
        p.wait(deadline=105)
    assert clock.slept == []
    p.wait(deadline=111)  # the refused request did not push the next turn back
    assert clock.slept == [10.0]


def test_a_slow_down_hint_past_the_deadline_raises():
    p, clock = pacer()
    p.observe({"X-RateLimit-Remaining": "0", "X-RateLimit-Window": "60000"})
    with pytest.raises(DeadlineReached):
        p.wait(deadline=130)
    p.wait(deadline=161)
    assert clock.slept == [60.0]
