"""Work done by a pool of threads and handed back to the calling thread as each piece
finishes, with no more threads at work than keep the calling thread busy.

The units of an account are fetched this way (sync/units.py): the workers send requests
and read the answers, the calling thread decides, renders and publishes. ``limit``
(``http.max_concurrency``) bounds the threads, hence the requests in flight; the pool
starts at the limit and adapts below it, judged every few results by moving averages of
how long the calling thread waited for a result and how long it then worked on it:

* the calling thread **waits** more than half as long as it works: the fetches are the
  bottleneck, one more thread (up to the limit);
* it waits less than an eighth as long: the fetches keep ahead of it, one fewer (the
  thread parks; it comes back when one more is wanted).

At 100 ms a request, with a feed written in a millisecond or two, the calling thread waits
most of the time and every thread stays. When Escapia answers in a millisecond or two the
calling thread is the bottleneck, and a thread more only waits for its turn: each runnable
thread contends for the GIL at every socket call, a futex call and a context switch each
time. On a cold 10,000-unit sync at 0 latency against the sandbox (``perf stat``, two runs
each, taken in turns) this pool made 103,000-113,000 context switches and 169,000-201,000
futex calls, against 202,000-205,000 and 352,000-361,000 with eight threads at work
throughout (``ThreadPoolExecutor``, before); futex calls were ~11 % of that sync's CPU
samples. Its task clock: 28.2 and 36.6 s, against 36.1 and 38.0 s (a shared VM: ±15 % run
to run). Fewer requests in flight are kinder to Escapia's rate limits too.

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

_END = object()  # marks the end of the items; wakes a worker waiting for one at the end
_WEIGHT = 0.25  # of the newest result in the moving averages
_GROW = 0.5  # one more thread when the calling thread waits more than half as long as it works
_SHRINK = 0.125  # one fewer when it waits less than an eighth as long
_AHEAD = 4  # pieces handed out per thread at work: the next ones are at hand when one is done


class Pipeline(Generic[Item, Result]):
    """``with Pipeline(work, limit, name) as pipe: for item, result, error in pipe.run(items)``:
    ``work(item)`` runs in up to ``limit`` threads (named ``<name>_<n>``, each starting with
    ``initializer()``); each item comes back once, with its result, or with the exception
    it (or the thread's initializer) raised, then ``result`` is None. Leaving the block
    (also by an exception, e.g. Ctrl-C in the calling thread) starts no more items and
    waits for those being worked on, as ``ThreadPoolExecutor.shutdown(cancel_futures=True)``
    would: their requests are bounded in time (sources/watchdog.py).

    Thread ``n`` waits for a piece only while ``n < workers`` (checked before each wait: a
    thread already waiting takes one more piece); the others are parked until ``workers``
    grows again or the block is left. Threads are started as pieces need them
    and never ended early: at most ``limit`` exist, so at most ``limit`` pieces are worked
    on at once, and a thread keeps its connection (sources/http.py: a session per thread).
    """

    def __init__(self, work: Callable[[Item], Result], limit: int, name: str,
                 initializer: Callable[[], None] | None = None) -> None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        self._work, self._limit, self._name, self._initializer = work, limit, name, initializer
        self._todo: queue.SimpleQueue = queue.SimpleQueue()
        self._done: queue.SimpleQueue = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._gate = threading.Condition()  # guards workers and closed; parked threads wait on it
        self._closed = False
        self.workers = limit  # threads allowed to take pieces now
        self.fewest_workers = limit  # (for tests and the debug log)

    def __enter__(self) -> Pipeline[Item, Result]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        with self._gate:
            self._closed = True  # no thread takes another piece
            self._gate.notify_all()
        # One end marker per thread waiting for a piece, and per thread that could exist:
        # a signal inside _start can leave one running that is not listed yet.
        for _ in range(self._limit):
            self._todo.put(_END)
        for thread in self._threads:
            thread.join()

    def run(self, items: Iterable[Item]) -> Iterator[tuple[Item, Result | None, BaseException | None]]:
        """Yield ``(item, result, error)`` for every item of ``items``, in the order they finish
        (once per Pipeline, inside its ``with`` block)."""
        if self._closed or self._threads:
            raise RuntimeError("a Pipeline runs once, inside its with block")
        pending = iter(items)
        outstanding = 0  # handed out and not yet taken back
        settle = 2 * self.workers  # results until the next judgement (time for the averages to move)
        idle = busy = 0.0  # moving averages of this thread's wait for a result and its work on one
        exhausted = False
        while True:
            while outstanding < _AHEAD * self.workers and not exhausted:
                item = next(pending, _END)
                if item is _END:
                    exhausted = True
                    break
                if len(self._threads) < self.workers:  # (started with a piece: none without one)
                    self._start()
                self._todo.put(item)
                outstanding += 1
            if not outstanding:
                return
            asked = time.perf_counter()
            done = self._done.get()
            outstanding -= 1
            got = time.perf_counter()
            yield done
            back = time.perf_counter()  # the caller's work on the result lies between got and back
            idle += (got - asked - idle) * _WEIGHT
            busy += (back - got - busy) * _WEIGHT
            settle -= 1
            if settle <= 0:
                self._judge(idle, busy)
                settle = 2 * self.workers

    def _judge(self, idle: float, busy: float) -> None:
        workers = self.workers
        if idle > busy * _GROW and workers < self._limit:
            workers += 1  # (a parked thread resumes; else one starts with the next piece)
        elif idle < busy * _SHRINK and workers > 1:
            workers -= 1  # (the last thread parks before it waits for another piece)
        if workers != self.workers:
            with self._gate:
                self.workers = workers
                self._gate.notify_all()
            self.fewest_workers = min(self.fewest_workers, workers)

    def _start(self) -> None:
        thread = threading.Thread(target=self._serve, args=(len(self._threads),),
                                  name=f"{self._name}_{len(self._threads)}")
        thread.start()  # (if it cannot start, the error is the caller's: nothing to undo)
        self._threads.append(thread)

    def _serve(self, index: int) -> None:
        failed: BaseException | None = None
        if self._initializer is not None:
            try:
                self._initializer()
            except BaseException as exc:  # noqa: BLE001 - every piece it takes fails with it
                failed = exc
        while True:
            with self._gate:
                while index >= self.workers and not self._closed:
                    self._gate.wait()
                if self._closed:
                    return
            item = self._todo.get()
            if item is _END or self._closed:
                return
            try:
                if failed is not None:  # (a new error each time: one raised again grows its traceback)
                    raise RuntimeError(f"{self._name}_{index} did not start: {failed}") from failed
                self._done.put((item, self._work(item), None))
            except BaseException as exc:  # noqa: BLE001 - handed to the calling thread, as a Future would
                self._done.put((item, None, exc))
            del item
