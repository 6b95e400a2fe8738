"""sync/pipeline.py: every piece back once, never more threads at work than the limit, as
many as keep the calling thread busy, and nothing started once the block is left."""

from __future__ import annotations

import re
import threading
import time

import pytest

from escapia_ical.sync.pipeline import Pipeline


class Tracker:
    """Work that records which thread did each piece and how many ran at once."""

    def __init__(self, seconds: float = 0.0, slow_from: int | None = None) -> None:
        self.seconds, self.slow_from, self.lock = seconds, slow_from, threading.Lock()
        self.running = self.most = self.calls = self.initialised = 0
        self.by: dict[int, str] = {}
        self.at_once: dict[int, int] = {}  # item -> pieces at work when it started

    def init(self) -> None:
        with self.lock:
            self.initialised += 1

    def __call__(self, item: int) -> int:
        with self.lock:
            self.calls += 1
            self.running += 1
            self.most = max(self.most, self.running)
            self.at_once[item] = self.running
        try:
            if self.seconds and (self.slow_from is None or item >= self.slow_from):
                time.sleep(self.seconds)
            if item % 7 == 3:
                raise ValueError(f"piece {item} failed")
            self.by[item] = threading.current_thread().name
            return item * item
        finally:
            with self.lock:
                self.running -= 1


def test_every_item_comes_back_once_with_its_result_or_its_error():
    work = Tracker()
    with Pipeline(work, 4, "acct:units") as pipe:
        back = list(pipe.run(range(300)))
    assert sorted(item for item, _, _ in back) == list(range(300))
    for item, result, error in back:
        if item % 7 == 3:
            assert result is None and isinstance(error, ValueError) and str(error) == f"piece {item} failed"
        else:
            assert (result, error) == (item * item, None)


def test_threads_are_named_after_the_pool_and_initialised_before_their_first_piece():
    work = Tracker(0.002)
    with Pipeline(work, 3, "account:a:units", work.init) as pipe:
        list(pipe.run(range(30)))
    names = set(work.by.values())
    assert names and all(re.fullmatch(r"account:a:units_\d+", name) for name in names)
    assert 1 <= len(names) <= work.initialised <= 3


def test_slow_work_keeps_every_thread_at_work_up_to_the_limit():
    work = Tracker(0.02)  # 20 ms a piece, nothing to do between them: the calling thread waits
    with Pipeline(work, 4, "p") as pipe:
        back = list(pipe.run(range(48)))
    assert len(back) == 48
    assert work.most == 4  # never more than the limit, and the limit reached
    assert pipe.fewest_workers == 4 and pipe.workers == 4


def test_a_busy_calling_thread_leaves_one_thread_at_work():
    work = Tracker()  # instant pieces; the calling thread spends 3 ms on each result
    order = []
    with Pipeline(work, 8, "p") as pipe:
        for item, _, _ in pipe.run(range(240)):
            order.append(item)
            time.sleep(0.003)
    assert sorted(order) == list(range(240))
    assert pipe.workers == 1 and pipe.fewest_workers == 1
    # The threads let go are parked: the last pieces were all done by one thread.
    last = [work.by[i] for i in order[-60:] if i in work.by]
    assert len(set(last)) == 1, set(last)


def test_threads_come_back_when_the_calling_thread_waits_and_never_more_than_the_limit():
    work = Tracker(0.02, slow_from=150)  # instant pieces first, then 20 ms each
    with Pipeline(work, 4, "p", work.init) as pipe:
        for item, _, _ in pipe.run(range(300)):
            if item < 150:
                time.sleep(0.003)  # a busy calling thread first: down to one thread
    assert pipe.fewest_workers == 1 and pipe.workers == 4
    assert work.most <= 4 and max(work.at_once[i] for i in range(230, 300)) == 4
    assert work.initialised == 4  # the same four threads: parked, then at work again


def test_a_thread_whose_initializer_fails_fails_its_pieces():
    calls = []

    def init() -> None:
        raise OSError("no signals here")

    with Pipeline(calls.append, 2, "p", init) as pipe:
        back = list(pipe.run(range(10)))
    assert sorted(item for item, _, _ in back) == list(range(10)) and not calls
    for _, result, error in back:
        assert result is None and isinstance(error.__cause__, OSError)
        assert re.fullmatch(r"p_\d did not start: no signals here", str(error))
    assert len({id(error) for _, _, error in back}) == 10  # one error each, not one raised again


def test_no_more_threads_than_pieces_and_none_for_no_piece():
    work = Tracker(0.01)
    with Pipeline(work, 8, "p", work.init) as pipe:
        assert list(pipe.run([])) == []
    assert work.initialised == 0
    with Pipeline(work, 8, "p", work.init) as pipe:
        assert len(list(pipe.run(range(3)))) == 3
    assert work.initialised <= 3


def test_leaving_the_block_starts_no_more_pieces_and_ends_every_thread():
    work = Tracker(0.01)
    with pytest.raises(RuntimeError, match="stop here"), Pipeline(work, 2, "leaving") as pipe:
        for n, _ in enumerate(pipe.run(range(1000))):
            if n == 5:
                raise RuntimeError("stop here")
    # 8 were handed out (4 a thread), 6 of them taken back: the other 2 may have been at
    # work and 2 more done, the rest (13 pieces in all) never started
    assert 6 <= work.calls <= 6 + 2 + 2
    assert not [t for t in threading.enumerate() if t.name.startswith("leaving_")]


def test_a_pipeline_runs_once():
    with Pipeline(Tracker(), 2, "p") as pipe:
        assert len(list(pipe.run(range(5)))) == 5
        with pytest.raises(RuntimeError, match="runs once"):
            next(pipe.run(range(5)))
    with pytest.raises(RuntimeError, match="runs once"):
        next(pipe.run(range(5)))


def test_a_limit_below_one_is_refused():
    with pytest.raises(ValueError, match="limit must be at least 1, not 0"):
        Pipeline(Tracker(), 0, "p")
