"""The items of a generator computed in a second process, ahead of the one that uses them.

The event loop is one Python thread; building a large schedule is numpy work of about the
same length. :func:`iterate_in_child` runs the builder in a spawned process (no torch, no
threads inherited) so the two overlap on two cores: the child computes part ``d + 1``
while the parent simulates part ``d``. Items travel pickled through a bounded queue, so
the child is at most ``ahead`` items in front. An exception in the child is raised in the
parent where the item was due (its traceback text attached as a note); a child that dies
without one is reported with its exit code.
"""

from __future__ import annotations

import multiprocessing
import pickle
import queue as queue_module
import traceback
from collections.abc import Callable, Iterable, Iterator
from typing import Any

#: Seconds between checks that the child is still alive while waiting for an item.
POLL_S = 2.0


def can_start_child() -> bool:
    """Whether this process may start a child (pool workers are daemonic and may not)."""
    return not multiprocessing.current_process().daemon


def _produce(queue: Any, fn: Callable[..., Iterable[Any]], args: tuple[Any, ...]) -> None:
    """The child's body: every item of ``fn(*args)``, then ``done`` (or the exception)."""
    try:
        for item in fn(*args):
            queue.put(("item", item))
        queue.put(("done", None))
    except BaseException as exc:  # noqa: BLE001 - everything goes back to the parent
        note = traceback.format_exc()
        try:
            pickle.dumps(exc)
        except Exception:  # noqa: BLE001 - an exception that does not pickle goes back as text
            exc = RuntimeError(f"{type(exc).__name__}: {exc}")
        queue.put(("error", (exc, note)))


def iterate_in_child(fn: Callable[..., Iterable[Any]], *args: Any, ahead: int = 2) -> Iterator[Any]:
    """Yield the items of ``fn(*args)``, computed in a spawned child process.

    Parameters
    ----------
    fn
        A module-level generator function (the child imports it by name).
    *args
        Its arguments (pickled to the child).
    ahead
        Items the child may compute before the parent takes them.

    Raises
    ------
    Exception
        The child's exception, re-raised here; ``RuntimeError`` when the child died without one.
    """
    context = multiprocessing.get_context("spawn")
    queue = context.Queue(maxsize=max(1, ahead))
    child = context.Process(target=_produce, args=(queue, fn, args), daemon=True, name="emsfl-schedule")
    child.start()
    finished = False
    try:
        while True:
            try:
                kind, value = queue.get(timeout=POLL_S)
            except queue_module.Empty:
                if not child.is_alive():
                    raise RuntimeError(f"the background schedule process exited (code {child.exitcode}) "
                                       "before it finished; rerun, or check memory") from None
                continue
            if kind == "item":
                yield value
            elif kind == "error":
                exc, note = value
                exc.add_note(f"in the background process:\n{note}")
                raise exc
            else:
                finished = True
                return
    finally:
        if finished:
            child.join(timeout=60)  # it has sent everything; let it exit on its own
        if child.is_alive():
            child.terminate()
        child.join()
        queue.close()
