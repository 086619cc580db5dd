"""The SimPy event loop: link processes, interruptible uploads, the satellite, evaluation.

Strategies (``emsfl_sim.strategies``) write the per-cluster behaviour as SimPy
process bodies using the primitives here:

* ``ctx.link_up[cluster]`` is True while the cluster sees the server;
  ``ctx.wait_link_up(cluster)`` is an event that fires at the next link-up and
  ``ctx.wait_window(cluster, after=w)`` one that fires with the current window if it is
  open now (and is not ``w``), else at the next link-up. Link changes at an instant are
  applied before any other process acts at that instant (they are scheduled URGENT), so
  a window open at t = 0, or one opening when a round ends, is seen by every strategy.
* ``ctx.upload(...)`` is a process that moves bytes through the current pass's
  capacity and returns an :class:`UploadResult`; a link-down interrupts it
  (SimPy ``Interrupt``). What arrives is exactly what was sent: the content is
  snapshotted at the first byte; with ``resume`` the unsent remainder continues at the
  next pass if the content is unchanged, and a changed content restarts the upload
  (the bytes already sent are counted as wasted); ``finish_snapshot`` always continues
  the snapshot being sent, however long it takes (newer training waits for the next
  upload: a payload that needs many passes completes); ``restart`` always starts over.

The satellite's model is the strategy's ``state`` (versions per expert, for staleness).
"""

from __future__ import annotations

import gc
import time
import weakref
from collections.abc import Callable, Generator, Hashable
from dataclasses import dataclass, field
from typing import Any

import simpy

from emsfl_sim.sim.recorder import Recorder
from emsfl_sim.sim.schedule import LinkSchedule, LinkWindow

#: Allocations between two young-generation garbage collections while the event loop runs
#: (Python's default is 700). Every event allocates a few objects that die at once; at the
#: default, collections cost ~15 % of a 1000-cluster loop (12.8 s vs 10.9 s for 1.07 M events).
#: Collection only frees reference cycles, so when it runs does not change any result.
LOOP_GC_THRESHOLD = 50_000


@dataclass
class UploadRequest:
    """What a device wants to upload.

    ``content_key`` identifies the content (for example the device's update counter): an
    interrupted upload resumes only while the key is unchanged. ``snapshot`` is called
    when the first byte of a fresh upload leaves and returns what the satellite receives.
    """

    device: str
    payload_bytes: int
    content_key: Hashable = None
    snapshot: Callable[[], Any] | None = None


@dataclass
class UploadJob:
    """The content of one upload and its unsent bytes; ``serial`` numbers the jobs of a run in order.

    A completed :class:`UploadResult` reads its content from here, so a resumed run can
    put the saved contents back into the jobs its replay rebuilt (``run/checkpoint.py``).
    """

    remaining_bytes: int
    content_key: Hashable
    content: Any
    serial: int = 0


@dataclass
class UploadResult:
    """What an upload achieved: completed or interrupted, how many bytes moved, and the content."""

    cluster: str
    device: str
    what: str
    payload_bytes: int
    bytes_sent: int
    completed: bool
    start_s: float
    end_s: float
    job: UploadJob | None = field(default=None, repr=False)  # set on completion

    @property
    def content(self) -> Any:
        """The snapshot taken at the first byte (None if interrupted or no snapshot was asked)."""
        return self.job.content if self.job is not None else None


class LinkTimeout(simpy.Timeout):
    """A timeout processed before the ordinary events of the same instant.

    The link processes use it, so a process acting at time t sees the link state of t.
    Same construction as ``simpy.Timeout``, at ``URGENT`` priority.
    """

    def __init__(self, env: simpy.Environment, delay: float) -> None:
        if delay < 0:
            raise ValueError(f"negative delay {delay}")
        self.env = env
        self.callbacks = []
        self._value = None
        self._delay = delay
        self._ok = True
        env.schedule(self, simpy.core.URGENT, delay)


@dataclass
class Clock:
    """Wall-time split into learning work (torch) and everything else."""

    learning_s: float = 0.0
    started: float = field(default_factory=time.perf_counter)

    def timed(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``fn`` and add its wall time to the learning share."""
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            self.learning_s += time.perf_counter() - t0

    @property
    def total_s(self) -> float:
        """Wall time since the clock started."""
        return time.perf_counter() - self.started


class SimContext:
    """Shared state of one strategy run: environment, links, uploads, recorder."""

    def __init__(self, schedule: LinkSchedule, recorder: Recorder, interrupt_policy: str = "resume",
                 downlink_rate_bps: float | None = None) -> None:
        self.env = simpy.Environment()
        self.schedule = schedule
        self.recorder = recorder
        self.interrupt_policy = interrupt_policy
        self.downlink_rate_bps = downlink_rate_bps
        self.clock = Clock()
        self.clusters = list(schedule.clusters)
        self.link_up: dict[str, bool] = {c: False for c in self.clusters}
        self.window: dict[str, LinkWindow | None] = {c: None for c in self.clusters}
        self._link_up_events: dict[str, simpy.Event] = {c: self.env.event() for c in self.clusters}
        self._active_uploads: dict[str, set[simpy.Process]] = {c: set() for c in self.clusters}
        self._pending: dict[tuple[str, str, str], UploadJob] = {}
        # every job still referenced (pending, in flight, or a completed result not yet consumed)
        self._jobs: weakref.WeakValueDictionary[int, UploadJob] = weakref.WeakValueDictionary()
        self._job_serial = 0
        self.uplink_bytes = 0
        self.wasted_uplink_bytes = 0  # sent, but their content never arrived (restarted uploads)
        self.interrupted_uploads = 0
        self.completed_uploads = 0
        self.window_count: dict[str, int] = {c: 0 for c in self.clusters}
        self.last_satellite: str | None = None
        self.last_aggregation_s = -float("inf")
        for cluster in self.clusters:
            self.env.process(self._link_process(cluster))

    # ------------------------------------------------------------------ time
    @property
    def now(self) -> float:
        """Simulated seconds since the scenario start."""
        return float(self.env.now)

    def cycle(self, time_s: float | None = None) -> float:
        """Orbital cycles elapsed at ``time_s`` (default now)."""
        return (self.now if time_s is None else time_s) / self.schedule.cycle_s

    # ----------------------------------------------------------------- links
    def _link_process(self, cluster: str) -> Generator[simpy.Event, Any, None]:
        env, record = self.env, self.recorder.link_event  # ~15 M windows at scale: attribute lookups once
        for window in self.schedule.for_cluster(cluster):
            if window.start_s > env.now:
                yield LinkTimeout(env, window.start_s - env.now)
            self.link_up[cluster] = True
            self.window[cluster] = window
            self.window_count[cluster] += 1
            record(env.now, "link_up", cluster, window.satellite, int(window.total_bytes))
            event, self._link_up_events[cluster] = self._link_up_events[cluster], env.event()
            event.succeed(window)
            yield LinkTimeout(env, max(0.0, window.end_s - env.now))
            self.link_up[cluster] = False
            self.window[cluster] = None
            if active := self._active_uploads[cluster]:
                for proc in list(active):
                    if proc.is_alive:
                        proc.interrupt("link_down")
            record(env.now, "link_down", cluster, window.satellite)

    def wait_link_up(self, cluster: str) -> simpy.Event:
        """An event that fires at the cluster's next link-up (with its window)."""
        return self._link_up_events[cluster]

    def wait_window(self, cluster: str, after: LinkWindow | None = None) -> simpy.Event:
        """The current window (at once) if the link is up and it is not ``after``, else the next link-up."""
        window = self.window[cluster]
        if self.link_up[cluster] and window is not None and window is not after:
            event = self.env.event()
            event.succeed(window)
            return event
        return self._link_up_events[cluster]

    # --------------------------------------------------------------- uploads
    def upload(self, cluster: str, request: UploadRequest, what: str,
               experts: list[int] | None = None) -> simpy.Process:
        """Start an upload process; its value is an :class:`UploadResult`."""
        proc = self.env.process(self._upload(cluster, request, what, experts or []))
        self._active_uploads[cluster].add(proc)
        return proc

    def _resume_or_start(self, cluster: str, request: UploadRequest,
                         what: str, experts: list[int]) -> UploadJob:
        """The unsent part of an interrupted upload of the same content, or a fresh upload."""
        payload = int(request.payload_bytes)
        pending = self._pending.pop((cluster, request.device, what), None)
        if pending is not None and self.interrupt_policy != "restart":
            if pending.content_key == request.content_key or self.interrupt_policy == "finish_snapshot":
                return pending
            # The device trained since: the bytes sent so far carried content that is gone.
            wasted = payload - pending.remaining_bytes
            self.wasted_uplink_bytes += wasted
            self.recorder.event(self.now, "upload_restarted", cluster, device=request.device, bytes=wasted,
                                bytes_total=payload, experts=experts, detail=f"{what}: content changed")
        content = request.snapshot() if request.snapshot is not None else None
        self._job_serial += 1
        job = UploadJob(payload, request.content_key, content, self._job_serial)
        self._jobs[job.serial] = job
        return job

    def _upload(self, cluster: str, request: UploadRequest, what: str,
                experts: list[int]) -> Generator[simpy.Event, Any, UploadResult]:
        start = self.now
        device, payload = request.device, int(request.payload_bytes)
        window = self.window[cluster]
        if not self.link_up[cluster] or window is None:
            raise RuntimeError(f"upload started for {cluster} without a link")  # strategies must check
        job = self._resume_or_start(cluster, request, what, experts)
        remaining = min(job.remaining_bytes, payload)
        self.recorder.event(start, "upload_start", cluster, device=device, bytes=remaining, bytes_total=payload,
                            experts=experts, detail=what, satellite=window.satellite)
        done_s, carried = window.capacity.completion_time(start, remaining)
        proc = self.env.active_process
        try:
            if done_s is None:
                # It cannot finish in this pass: wait for the link-down interrupt.
                yield self.env.timeout(max(0.0, window.end_s - start) + 1e-9)
                raise RuntimeError("link-down interrupt did not arrive")  # pragma: no cover
            yield self.env.timeout(max(0.0, done_s - start))
        except simpy.Interrupt:
            sent = int(min(remaining, window.capacity.bytes_between(start, self.now)))
            self.uplink_bytes += sent
            self.interrupted_uploads += 1
            if self.interrupt_policy != "restart":
                job.remaining_bytes = remaining - sent
                self._pending[(cluster, device, what)] = job
            else:
                self.wasted_uplink_bytes += payload - (remaining - sent)
            self.recorder.event(self.now, "upload_interrupted", cluster, device=device, bytes=sent,
                                bytes_total=payload, experts=experts, detail=what, satellite=window.satellite)
            return UploadResult(cluster, device, what, payload, sent, False, start, self.now)
        finally:
            self._active_uploads[cluster].discard(proc)
        self.uplink_bytes += remaining
        self.completed_uploads += 1
        self.recorder.event(self.now, "upload_complete", cluster, device=device, bytes=remaining,
                            bytes_total=payload, experts=experts, detail=what, satellite=window.satellite)
        return UploadResult(cluster, device, what, payload, remaining, True, start, self.now, job)

    def upload_all(self, cluster: str, requests: list[UploadRequest], what: str,
                   experts: list[int] | None = None) -> Generator[simpy.Event, Any, list[UploadResult]]:
        """Upload from several devices in parallel (own sub-channels); wait for all."""
        procs = [self.upload(cluster, req, what, experts) for req in requests]
        results = yield self.env.all_of(procs)
        return [results[p] for p in procs]

    def upload_contents(self) -> dict[int, Any]:
        """The contents of every upload job still referenced, by serial (for a checkpoint)."""
        gc.collect()  # cycles the event loop left behind must not count as referenced
        return {serial: job.content for serial, job in sorted(self._jobs.items()) if job.content is not None}

    def restore_upload_contents(self, contents: dict[int, Any], placeholder: type) -> None:
        """Put saved contents back into the jobs a replay rebuilt (the same serials).

        Raises ``LookupError`` when a referenced job holds a ``placeholder`` content that
        ``contents`` does not have (the replay diverged from the saved run).
        """
        gc.collect()
        for serial, job in sorted(self._jobs.items()):
            if serial in contents:
                job.content = contents[serial]
            elif isinstance(job.content, placeholder):
                raise LookupError(f"upload job {serial} has no saved content")

    def downlink(self, cluster: str, payload_bytes: int) -> simpy.Event:
        """Broadcast of the global model: neglected (0 s) unless a downlink rate is set."""
        delay = 0.0 if not self.downlink_rate_bps else payload_bytes * 8.0 / self.downlink_rate_bps
        if delay > 0:
            self.recorder.event(self.now, "downlink", cluster, bytes=int(payload_bytes))
        return self.env.timeout(delay)

    def run(self, until: float) -> None:
        """Advance the simulation to ``until`` seconds (with fewer garbage collections, see :data:`LOOP_GC_THRESHOLD`)."""
        previous = gc.get_threshold()
        gc.set_threshold(LOOP_GC_THRESHOLD, *previous[1:])
        try:
            self.env.run(until=until)
        finally:
            gc.set_threshold(*previous)
