"""The SimPy event loop: link processes, interruptible uploads, the satellite, evaluation.

Strategies (``emsfl_sim.strategies``) write the per-cluster behaviour as SimPy
process bodies using the primitives here:

* ``ctx.link_up[cluster]`` is True while the cluster sees the server;
  ``ctx.wait_link_up(cluster)`` is an event that fires at the next link-up.
* ``ctx.upload(...)`` is a process that moves bytes through the current pass's
  capacity and returns an :class:`UploadResult`; a link-down interrupts it
  (SimPy ``Interrupt``), and the unsent remainder is kept for the next pass
  (``resume``) or dropped (``restart``), per the scenario.
* ``ctx.compute[cluster]`` is a SimPy resource with one slot per device.

The satellite's model lives in :class:`SatelliteServer`, which counts versions
per expert so staleness can be reported.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

import simpy

from emsfl_sim.sim.recorder import Recorder
from emsfl_sim.sim.schedule import LinkSchedule, LinkWindow


@dataclass
class UploadResult:
    """What an upload achieved: completed or interrupted, and how many bytes moved."""

    cluster: str
    device: str
    what: str
    payload_bytes: int
    bytes_sent: int
    completed: bool
    start_s: float
    end_s: float


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
                 downlink_rate_bps: float | None = None, sync_delay_s: float = 0.0) -> None:
        self.env = simpy.Environment()
        self.schedule = schedule
        self.recorder = recorder
        self.interrupt_policy = interrupt_policy
        self.downlink_rate_bps = downlink_rate_bps
        self.sync_delay_s = sync_delay_s
        self.clock = Clock()
        self.clusters = list(schedule.clusters)
        self.link_up: dict[str, bool] = {c: False for c in self.clusters}
        self.window: dict[str, LinkWindow | None] = {c: None for c in self.clusters}
        self._link_up_events: dict[str, simpy.Event] = {c: self.env.event() for c in self.clusters}
        self._active_uploads: dict[str, set[simpy.Process]] = {c: set() for c in self.clusters}
        self._pending_bytes: dict[tuple[str, str, str], int] = {}
        self.uplink_bytes = 0
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
        for window in self.schedule.for_cluster(cluster):
            if window.start_s > self.now:
                yield self.env.timeout(window.start_s - self.now)
            self.link_up[cluster] = True
            self.window[cluster] = window
            self.window_count[cluster] += 1
            self.recorder.event(self.now, "link_up", cluster, satellite=window.satellite,
                                bytes_total=int(window.capacity.total_bytes))
            event, self._link_up_events[cluster] = self._link_up_events[cluster], self.env.event()
            event.succeed(window)
            yield self.env.timeout(max(0.0, window.end_s - self.now))
            self.link_up[cluster] = False
            self.window[cluster] = None
            for proc in list(self._active_uploads[cluster]):
                if proc.is_alive:
                    proc.interrupt("link_down")
            self.recorder.event(self.now, "link_down", cluster, satellite=window.satellite)

    def wait_link_up(self, cluster: str) -> simpy.Event:
        """An event that fires at the cluster's next link-up (with its window)."""
        return self._link_up_events[cluster]

    # --------------------------------------------------------------- uploads
    def upload(self, cluster: str, device: str, what: str, payload_bytes: int,
               experts: list[int] | None = None) -> simpy.Process:
        """Start an upload process; its value is an :class:`UploadResult`."""
        proc = self.env.process(self._upload(cluster, device, what, int(payload_bytes), experts or []))
        self._active_uploads[cluster].add(proc)
        return proc

    def _upload(self, cluster: str, device: str, what: str, payload: int,
                experts: list[int]) -> Generator[simpy.Event, Any, UploadResult]:
        start = self.now
        key = (cluster, device, what)
        remaining = self._pending_bytes.pop(key, payload) if self.interrupt_policy == "resume" else payload
        remaining = min(remaining, payload)
        window = self.window[cluster]
        if not self.link_up[cluster] or window is None:
            raise RuntimeError(f"upload started for {cluster} without a link")  # strategies must check
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
            if self.interrupt_policy == "resume":
                self._pending_bytes[key] = remaining - sent
            self.recorder.event(self.now, "upload_interrupted", cluster, device=device, bytes=sent,
                                bytes_total=payload, experts=experts, detail=what, satellite=window.satellite)
            return UploadResult(cluster, device, what, payload, sent, False, start, self.now)
        finally:
            self._active_uploads[cluster].discard(proc)
        self.uplink_bytes += remaining
        self.completed_uploads += 1
        self.recorder.event(self.now, "upload_complete", cluster, device=device, bytes=remaining,
                            bytes_total=payload, experts=experts, detail=what, satellite=window.satellite)
        return UploadResult(cluster, device, what, payload, remaining, True, start, self.now)

    def upload_all(self, cluster: str, payloads: dict[str, int], what: str,
                   experts: list[int] | None = None) -> Generator[simpy.Event, Any, list[UploadResult]]:
        """Upload from several devices in parallel (own sub-channels); wait for all."""
        procs = [self.upload(cluster, dev, what, nbytes, experts) for dev, nbytes in payloads.items()]
        results = yield self.env.all_of(procs)
        return [results[p] for p in procs]

    def downlink(self, cluster: str, payload_bytes: int) -> simpy.Event:
        """Broadcast of the global model: neglected (0 s) unless a downlink rate is set."""
        delay = 0.0 if not self.downlink_rate_bps else payload_bytes * 8.0 / self.downlink_rate_bps
        if delay > 0:
            self.recorder.event(self.now, "downlink", cluster, bytes=int(payload_bytes))
        return self.env.timeout(delay)

    def run(self, until: float) -> None:
        """Advance the simulation to ``until`` seconds."""
        self.env.run(until=until)
