"""The items of a generator computed in second processes, ahead of the one that uses them.

The event loop is one Python thread; building a large schedule is numpy work of about the
same length. :func:`iterate_in_children` runs the builder in spawned processes (no torch, no
threads inherited) so the work overlaps: the children compute parts ``d + 1, d + 2`` while the
parent simulates part ``d``. Child ``i`` of ``n`` computes items ``i, i + n, ...``; a
:class:`Relay` carries what one item leaves for the next (the windows still open at a part's
end) from the child of item ``j`` to the child of item ``j + 1``. Items travel pickled through
bounded queues, so a child is at most ``ahead`` items in front. An exception in a child is
raised in the parent where its item was due (its traceback text attached as a note); a child
that dies without one is reported with its exit code.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import queue as queue_module
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

#: Seconds between checks that the children are still alive while waiting for an item.
POLL_S = 2.0


def can_start_child() -> bool:
    """Whether this process may start a child (pool workers are daemonic and may not)."""
    return not multiprocessing.current_process().daemon


@dataclass
class Relay:
    """Which items one worker computes, and the carry between consecutive items.

    Worker ``index`` of ``count`` computes items ``index, index + count, ...``. With one worker
    the carry stays in the worker (:meth:`receive` returns what :meth:`send` kept); with several
    it goes through ``outbox`` to the next worker's ``inbox``.
    """

    index: int = 0
    count: int = 1
    inbox: Any = None
    outbox: Any = None
    parent_pid: int = 0

    def __post_init__(self) -> None:
        self._kept: Any = None

    def items(self, total: int) -> range:
        """The item numbers of this worker among ``total``."""
        return range(self.index, total, self.count)

    def receive(self, item: int) -> Any:
        """The carry left by item ``item - 1`` (None for the first item); waits for it."""
        if item == 0:
            return None
        if self.inbox is None:
            return self._kept
        while True:
            try:
                return self.inbox.get(timeout=POLL_S)
            except queue_module.Empty:
                _exit_if_orphaned(self.parent_pid)

    def send(self, item: int, total: int, carry: Any) -> None:
        """Leave ``carry`` for item ``item + 1`` (dropped after the last item)."""
        if item + 1 >= total:
            return
        if self.outbox is None:
            self._kept = carry
        else:
            self.outbox.put(carry)


def _exit_if_orphaned(parent_pid: int) -> None:
    """End this child when its parent is gone (killed without terminating it), instead of waiting forever."""
    if parent_pid and os.getppid() != parent_pid:
        raise SystemExit(1)


def _put(queue: Any, message: tuple[str, Any], parent_pid: int) -> None:
    """``queue.put(message)``, checking every :data:`POLL_S` that the parent still takes items."""
    while True:
        try:
            queue.put(message, timeout=POLL_S)
            return
        except queue_module.Full:
            _exit_if_orphaned(parent_pid)


def _produce(queue: Any, fn: Callable[..., Iterable[Any]], args: tuple[Any, ...], relay: Relay,
             parent_pid: int) -> None:
    """A child's body: every item of ``fn(*args, relay=relay)``, then ``done`` (or the exception)."""
    try:
        for item in fn(*args, relay=relay):
            _put(queue, ("item", item), parent_pid)
        _put(queue, ("done", None), parent_pid)
    except SystemExit:
        raise
    except BaseException as exc:  # noqa: BLE001 - everything goes back to the parent
        note = traceback.format_exc()
        try:
            pickle.dumps(exc)
        except Exception:  # noqa: BLE001 - an exception that does not pickle goes back as text
            exc = RuntimeError(f"{type(exc).__name__}: {exc}")
        _put(queue, ("error", (exc, note)), parent_pid)


def iterate_in_children(fn: Callable[..., Iterable[Any]], *args: Any, workers: int = 2,
                        ahead: int = 2) -> Iterator[Any]:
    """Yield the items of ``fn(*args, relay=...)``, computed round-robin by ``workers`` child processes.

    Child ``i`` is called with ``relay=Relay(i, workers, inbox, outbox)`` and yields items
    ``i, i + workers, ...`` (see :meth:`Relay.items`); the parent yields them in item order.

    Parameters
    ----------
    fn
        A module-level generator function taking ``relay=`` (the children import it by name).
    *args
        Its other arguments (pickled to each child).
    workers
        Child processes.
    ahead
        Items each child may compute before the parent takes them.

    Raises
    ------
    Exception
        A child's exception, re-raised here when its item is due; ``RuntimeError`` when a child
        died without one.
    """
    workers = max(1, workers)
    context = multiprocessing.get_context("spawn")
    queues = [context.Queue(maxsize=max(1, ahead)) for _ in range(workers)]
    ring = [context.Queue() for _ in range(workers)] if workers > 1 else [None]
    children = []
    parent_pid = os.getpid()
    for i in range(workers):
        link = Relay(i, workers, ring[i - 1], ring[i], parent_pid) if workers > 1 else Relay()  # one: kept in it
        children.append(context.Process(target=_produce, args=(queues[i], fn, args, link, parent_pid), daemon=True,
                                        name=f"emsfl-schedule-{i}"))
    for child in children:
        child.start()
    finished = False
    try:
        item = 0
        while True:
            kind, value = _next_message(queues[item % workers], children)
            if kind == "item":
                yield value
                item += 1
            elif kind == "error":
                exc, note = value
                exc.add_note(f"in the background process:\n{note}")
                raise exc
            else:
                finished = True
                return
    finally:
        for child in children:
            if finished:
                child.join(timeout=60)  # it has sent everything; let it exit on its own
            if child.is_alive():
                child.terminate()
            child.join()
        for q in queues + [q for q in ring if q is not None]:
            q.close()


def _next_message(queue: Any, children: list[Any]) -> tuple[str, Any]:
    """The next message on ``queue``, checking every :data:`POLL_S` that no child died."""
    while True:
        try:
            message: tuple[str, Any] = queue.get(timeout=POLL_S)
            return message
        except queue_module.Empty:
            for child in children:
                if not child.is_alive() and child.exitcode != 0:
                    raise RuntimeError(f"the background schedule process exited (code {child.exitcode}) "
                                       "before it finished; rerun, or check memory") from None
            if all(not child.is_alive() for child in children):
                raise RuntimeError("the background schedule processes exited before they finished") from None
