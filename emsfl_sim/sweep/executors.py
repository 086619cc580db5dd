"""Executors of a sweep: run calls serially, in a local process pool or as Ray tasks.

All three share one small interface: :meth:`Executor.submit` a function with a tag and
its arguments, then iterate :meth:`Executor.results` for ``(tag, result, exception)``
as the calls finish.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

from emsfl_sim.errors import InputError

EXECUTORS: tuple[str, ...] = ("process", "ray", "serial")

#: Modules the forkserver imports once so that pool workers start with them loaded
#: (torch + transformers take about 8 s to import; a missing one is skipped).
FORKSERVER_PRELOAD: tuple[str, ...] = (
    "emsfl_sim.sweep.point", "torch", "transformers", "peft", "transformers.models.mixtral.modeling_mixtral",
    "emsfl_sim.run.runner", "emsfl_sim.strategies", "emsfl_sim.run.world", "emsfl_sim.learning",
    "emsfl_sim.orbits", "pyarrow.parquet",
)
RAY_MISSING = "install the ray extra: pip install -e .[ray]"

#: One finished call: its tag, its result (None on failure) and the exception it raised.
Outcome = tuple[Any, Any, BaseException | None]


def check_executor(executor: str) -> None:
    """Refuse an executor name that is not one of :data:`EXECUTORS`."""
    if executor not in EXECUTORS:
        raise InputError(f"unknown executor {executor!r}; use one of {', '.join(EXECUTORS)}", field="--executor")


#: How often a pool worker checks that the sweep that started it is still alive (seconds).
PARENT_POLL_S = 1.0


def exit_with_parent(parent_pid: int, poll_s: float = PARENT_POLL_S) -> threading.Thread:
    """Start a daemon thread that ends this process (exit code 1) once ``parent_pid`` is gone.

    Pool workers are children of the forkserver, not of the sweep, so a SIGKILLed sweep
    would leave them running their points to completion and racing a rerun into the same
    directories. Polling the sweep's pid works for forkserver and spawn workers alike.
    """

    def watch() -> None:
        while True:
            time.sleep(poll_s)
            try:
                os.kill(parent_pid, 0)
            except ProcessLookupError:
                os._exit(1)
            except PermissionError:  # the pid exists (reused by another user's process): keep waiting
                pass

    thread = threading.Thread(target=watch, name="exit-with-parent", daemon=True)
    thread.start()
    return thread


def _worker_init(parent_pid: int) -> None:
    """Process-pool worker set-up: die with the sweep, quiet library warnings, one torch thread."""
    exit_with_parent(parent_pid)
    warnings.simplefilter("ignore", FutureWarning)
    warnings.simplefilter("ignore", DeprecationWarning)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)


class Executor:
    """Submit calls and iterate over (tag, result, exception) as they finish."""

    def submit(self, fn: Callable[..., Any], tag: Any, *args: Any) -> None:
        """Queue ``fn(*args)`` under ``tag``."""
        raise NotImplementedError

    def results(self) -> Iterator[Outcome]:
        """The outcomes of the submitted calls, in the order they finish."""
        raise NotImplementedError

    def close(self) -> None:
        """Release workers (the default has none)."""


class SerialExecutor(Executor):
    """Runs each call in this process when its result is asked for (for debugging)."""

    def __init__(self) -> None:
        self._queue: list[tuple[Callable[..., Any], Any, tuple[Any, ...]]] = []

    def submit(self, fn: Callable[..., Any], tag: Any, *args: Any) -> None:
        """Queue ``fn(*args)`` under ``tag``."""
        self._queue.append((fn, tag, args))

    def results(self) -> Iterator[Outcome]:
        """Run the queued calls one by one."""
        while self._queue:
            fn, tag, args = self._queue.pop(0)
            try:
                yield tag, fn(*args), None
            except Exception as exc:  # noqa: BLE001
                yield tag, None, exc


class ProcessExecutor(Executor):
    """A local process pool started with forkserver (or spawn), workers preloaded with torch."""

    def __init__(self, workers: int) -> None:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor
        from multiprocessing.context import BaseContext

        # fork after torch is imported can deadlock OpenMP; forkserver (or spawn) starts clean
        # workers. The forkserver imports torch once, so workers start without the ~8 s import.
        context: BaseContext
        if "forkserver" in multiprocessing.get_all_start_methods():
            forkserver = multiprocessing.get_context("forkserver")
            forkserver.set_forkserver_preload(list(FORKSERVER_PRELOAD))
            context = forkserver
        else:
            context = multiprocessing.get_context("spawn")
        self._pool = ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_worker_init,
                                         initargs=(os.getpid(),))
        self._futures: dict[Any, Any] = {}

    def submit(self, fn: Callable[..., Any], tag: Any, *args: Any) -> None:
        """Send ``fn(*args)`` to the pool under ``tag``."""
        self._futures[self._pool.submit(fn, *args)] = tag

    def results(self) -> Iterator[Outcome]:
        """The outcomes as the workers finish them."""
        from concurrent.futures import FIRST_COMPLETED, wait

        pending = set(self._futures)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                tag = self._futures.pop(future)
                exc = future.exception()
                yield tag, (None if exc else future.result()), exc

    def close(self) -> None:
        """Shut the pool down (queued calls are cancelled)."""
        self._pool.shutdown(wait=True, cancel_futures=True)


class RayExecutor(Executor):
    """Ray tasks on a cluster (``address``) or a local instance started here."""

    def __init__(self, workers: int | None, address: str | None) -> None:
        try:
            import ray
        except ImportError as exc:
            raise InputError(RAY_MISSING, field="--executor ray") from exc
        self._ray = ray
        self._started = False
        if not ray.is_initialized():
            if address:
                ray.init(address=address)
            else:
                ray.init(num_cpus=workers, include_dashboard=False)
            self._started = True
        self._remote: dict[Callable[..., Any], Any] = {}
        self._refs: dict[Any, Any] = {}

    def submit(self, fn: Callable[..., Any], tag: Any, *args: Any) -> None:
        """Start ``fn(*args)`` as a one-CPU Ray task under ``tag``."""
        if fn not in self._remote:
            self._remote[fn] = self._ray.remote(num_cpus=1)(fn)
        self._refs[self._remote[fn].remote(*args)] = tag

    def results(self) -> Iterator[Outcome]:
        """The outcomes as the tasks finish."""
        pending = list(self._refs)
        while pending:
            done, pending = self._ray.wait(pending, num_returns=1)
            for ref in done:
                tag = self._refs.pop(ref)
                try:
                    yield tag, self._ray.get(ref), None
                except Exception as exc:  # noqa: BLE001 - a lost worker is that point's error
                    yield tag, None, exc

    def close(self) -> None:
        """Shut Ray down if this executor started it."""
        if self._started:
            self._ray.shutdown()


def make_executor(executor: str, workers: int | None, address: str | None) -> Executor:
    """The executor named ``process``, ``ray`` or ``serial``."""
    check_executor(executor)
    if executor == "serial":
        return SerialExecutor()
    if executor == "process":
        return ProcessExecutor(workers or os.cpu_count() or 1)
    return RayExecutor(workers, address)
