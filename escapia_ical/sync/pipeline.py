"""Work done by a pool of threads and handed back to the calling thread as each piece
finishes, with no more threads at work than keep the calling thread busy.

The units of an account are fetched this way (sync/units.py): the workers send requests
and read the answers, the calling thread decides, renders and publishes. ``limit``
(``http.max_concurrency``) bounds the threads, hence the requests in flight; the pool
starts at the limit and adapts below it, judged every few results:

* the calling thread **waits** for results more than half as long as it works on them:
  the fetches are the bottleneck, one more thread (up to the limit);
* it waits less than an eighth as long: the fetches keep ahead of it, one fewer.

At 100 ms a request the calling thread waits most of the time, and every thread stays.
When Escapia answers in a millisecond or two the calling thread is the bottleneck, and a
thread more only waits for its turn: each runnable thread contends for the GIL at every
socket call, a futex call and a context switch each time. On a cold 10,000-unit sync at
0 latency against the sandbox (``perf stat``, four runs each, taken in turns) this pool
made 106,000-120,000 context switches and 152,000-196,000 futex calls, against
178,000-210,000 and 291,000-372,000 with eight threads at work throughout
(``ThreadPoolExecutor``, before); futex calls were ~11 % of that sync's CPU samples, and
its task clock fell from 35.8-46.1 s (median 41.4) to 34.6-42.6 s (median 37.3) on this
shared VM. Fewer requests in flight are kinder to Escapia's rate limits too.

Compared with ``concurrent.futures`` there is no Future per piece and no ``wait()`` over the
futures in flight (which locks each of them at every call): pieces go out and come back
through two ``queue.SimpleQueue``.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

_END = object()  # tells a worker to end; marks the end of the items
_WEIGHT = 0.25  # of the newest result in the moving averages
_GROW = 0.5  # one more thread when the calling thread waits more than half as long as it works
_SHRINK = 0.125  # one fewer when it waits less than an eighth as long
_AHEAD = 4  # pieces handed out per thread at work: the next ones are at hand when one is done


class Pipeline(Generic[Item, Result]):
    """``with Pipeline(work, limit, name) as pipe: for item, result, error in pipe.run(items)``:
    ``work(item)`` runs in up to ``limit`` threads (named ``<name>_<n>``, each starting with
    ``initializer()``); each item comes back once, with its result, or with the exception
    it raised (then ``result`` is None). Leaving the block (also by an exception, e.g.
    Ctrl-C in the calling thread) starts no more items and waits for those being worked
    on, as ``ThreadPoolExecutor.shutdown(cancel_futures=True)`` would: their requests are
    bounded in time (sources/watchdog.py)."""

    def __init__(self, work: Callable[[Item], Result], limit: int, name: str,
                 initializer: Callable[[], None] | None = None) -> None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        self._work, self._limit, self._name, self._initializer = work, limit, name, initializer
        self._todo: queue.SimpleQueue = queue.SimpleQueue()
        self._done: queue.SimpleQueue = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []  # every thread started (some may have ended)
        self._live = 0  # threads started and not told to end
        self.workers = limit  # threads wanted now (for tests and the debug log)
        self.fewest_workers = limit

    def __enter__(self) -> Pipeline[Item, Result]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        ended = 0  # pieces not started are dropped; the ends already sent, sent again
        while True:
            try:
                ended += self._todo.get_nowait() is _END
            except queue.Empty:
                break
        for _ in range(ended + self._live):
            self._todo.put(_END)
        self._live = 0
        for thread in self._threads:
            thread.join()

    def run(self, items: Iterable[Item]) -> Iterator[tuple[Item, Result | None, BaseException | None]]:
        """Yield ``(item, result, error)`` for every item of ``items``, in the order they finish."""
        pending = iter(items)
        outstanding, settle = 0, 0  # handed out and not yet taken back; results until the next judgement
        idle = busy = 0.0  # moving averages of this thread's wait for a result and its work on one
        exhausted = False
        back = time.perf_counter()
        while True:
            while outstanding < _AHEAD * self.workers and not exhausted:
                item = next(pending, _END)
                if item is _END:
                    exhausted = True
                    break
                if self._live < min(self.workers, outstanding + 1):  # no thread without a piece
                    self._start()
                self._todo.put(item)
                outstanding += 1
            if not outstanding:
                return
            asked = time.perf_counter()
            try:
                done = self._done.get_nowait()
            except queue.Empty:
                done = self._done.get()
            outstanding -= 1
            got = time.perf_counter()
            idle += (got - asked - idle) * _WEIGHT
            busy += (asked - back - busy) * _WEIGHT
            settle -= 1
            if settle <= 0:
                if idle > busy * _GROW and self.workers < self._limit:
                    self.workers += 1  # (its thread starts with the next piece handed out)
                elif idle < busy * _SHRINK and self.workers > 1:
                    self.workers -= 1
                    self.fewest_workers = min(self.fewest_workers, self.workers)
                    if self._live > self.workers:
                        self._todo.put(_END)  # the first thread to take it ends
                        self._live -= 1
                settle = 2 * self.workers  # (time for the averages to see the change)
            yield done
            back = time.perf_counter()

    def _start(self) -> None:
        thread = threading.Thread(target=self._serve, name=f"{self._name}_{len(self._threads)}")
        self._threads.append(thread)
        self._live += 1
        thread.start()

    def _serve(self) -> None:
        if self._initializer is not None:
            self._initializer()
        while (item := self._todo.get()) is not _END:
            try:
                self._done.put((item, self._work(item), None))
            except BaseException as exc:  # noqa: BLE001 - handed to the calling thread, as a Future would
                self._done.put((item, None, exc))
            del item
