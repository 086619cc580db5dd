"""Parameter sweeps: expand a scenario's ``sweep:`` block and run every point.

A sweep directory is built from files only (see docs/ARCHITECTURE.md)::

    OUT/scenario.yaml           the base scenario (with its sweep block)
    OUT/sweep.json              the sweep definition, executor and point ids
    OUT/sweep.parquet|csv       one row per (point, strategy), rewritten as points finish
    OUT/cache/<key>.pkl         link schedules shared by points with equal orbit/link fields
    OUT/points/<id>/            a normal run directory per point, plus
        point.json              written last: status ok|error, summaries, wall time
        error.txt               the traceback of a failed point

Points run with a local process pool (default), on Ray, or serially. A point
whose ``point.json`` says ``ok`` for the same resolved scenario is skipped on a
rerun (resume); a failing point records its one-line error and the sweep goes
on.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import math
import os
import pickle
import re
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from emsfl_sim import __version__
from emsfl_sim.errors import InputError
from emsfl_sim.scenario import Scenario, SweepConfig, resolve_raw, scenario_to_yaml, validate_raw

#: Scenario sections that determine the link schedule (everything else is learning).
SCHEDULE_SECTIONS: tuple[str, ...] = ("time", "constellation", "server", "clusters", "link")

#: Summary metrics first in the combined table (the rest of summary.json follows).
METRIC_COLUMNS: tuple[str, ...] = (
    "time_to_target_s", "cycles_to_target", "final_accuracy", "best_accuracy", "uplink_mb",
    "uplink_mb_per_pass", "idle_fraction", "interrupted_uploads", "local_rounds", "peak_device_memory_mb",
    "wall_s",
)

EXECUTORS: tuple[str, ...] = ("process", "ray", "serial")

#: Modules the forkserver imports once so that pool workers start with them loaded
#: (torch + transformers take about 8 s to import; a missing one is skipped).
FORKSERVER_PRELOAD: tuple[str, ...] = (
    "emsfl_sim.sweep", "torch", "transformers", "peft", "transformers.models.mixtral.modeling_mixtral",
    "emsfl_sim.run.runner", "emsfl_sim.strategies", "emsfl_sim.run.world", "emsfl_sim.learning",
    "emsfl_sim.orbits", "pyarrow.parquet",
)
RAY_MISSING = "install the ray extra: pip install -e .[ray]"
_ID_SAFE = re.compile(r"[^A-Za-z0-9._+=-]+")
_MAX_ID_CHARS = 120


# ------------------------------------------------------------------- expansion
@dataclass
class SweepPoint:
    """One point of a sweep.

    Attributes
    ----------
    index:
        Position in the deterministic expansion order (0-based).
    id:
        Filesystem-safe stable name, e.g. ``p003-link.elevation_mask_deg=40-seed=1``.
    overrides:
        Dotted path -> value applied to the base scenario (``seed`` included when swept).
    raw:
        The point's raw scenario mapping (overrides applied, ``sweep`` removed).
    scenario:
        The validated scenario, or None when the point is invalid.
    error:
        The one-line InputError of an invalid point.
    """

    index: int
    id: str
    overrides: dict[str, Any]
    raw: dict[str, Any]
    scenario: Scenario | None = None
    error: str | None = None

    @property
    def seed(self) -> int | None:
        """The point's seed (None if the raw value is not an integer)."""
        value = self.raw.get("seed", 0)
        return value if isinstance(value, int) else None


def _value_text(value: Any) -> str:
    """Short text of a swept value for point ids."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value)) if "e" not in repr(value) else repr(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return str(value)


def point_id(index: int, overrides: dict[str, Any], width: int = 3) -> str:
    """Filesystem-safe id ``p<index>-<path>=<value>-...`` (hashed when too long)."""
    parts = [f"p{index:0{width}d}"]
    parts += [f"{key}={_value_text(value)}" for key, value in overrides.items()]
    text = _ID_SAFE.sub("_", "-".join(parts))
    if len(text) > _MAX_ID_CHARS:
        digest = hashlib.sha256(text.encode()).hexdigest()[:10]
        text = f"{text[: _MAX_ID_CHARS - 11]}~{digest}"
    return text


def _set_dotted(raw: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``a.b.c`` in ``raw`` (in place).

    A numeric part indexes a list (``clusters.0.devices``); a name part met at a
    list applies to every element (``clusters.devices`` sets all clusters).
    """

    def walk(node: Any, parts: list[str]) -> None:
        head, rest = parts[0], parts[1:]
        if isinstance(node, list):
            if head.lstrip("-").isdigit():
                index = int(head)
                if not -len(node) <= index < len(node):
                    raise InputError(f"index {index} out of range (the list has {len(node)} entries)",
                                     field=f"sweep.parameters.{dotted}")
                if rest:
                    walk(node[index], rest)
                else:
                    node[index] = copy.deepcopy(value)
                return
            if not node:
                raise InputError("the list is empty; give an index or define the entries first",
                                 field=f"sweep.parameters.{dotted}")
            for item in node:
                walk(item, parts)
            return
        if not isinstance(node, dict):
            raise InputError(f"cannot set {head!r} inside a {type(node).__name__}",
                             field=f"sweep.parameters.{dotted}")
        if rest:
            walk(node.setdefault(head, {}), rest)
        else:
            node[head] = copy.deepcopy(value)

    walk(raw, dotted.split("."))


def apply_point_overrides(raw: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``raw`` with dotted overrides set (list-aware, see :func:`_set_dotted`)."""
    out = copy.deepcopy(raw)
    walker = out.get("constellation", {}).get("walker") if isinstance(out.get("constellation"), dict) else None
    if isinstance(walker, dict):  # the schema accepts one shell as a mapping; index it as a list
        out["constellation"]["walker"] = [walker]
    for dotted, value in overrides.items():
        _set_dotted(out, dotted, value)
    return out


def _raw_of(source: str | Path | Scenario | dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    if isinstance(source, Scenario):
        return source.model_dump(mode="json"), source.source_file
    if isinstance(source, dict):
        return copy.deepcopy(source), None
    return resolve_raw(source), str(source)


def sweep_config(source: str | Path | Scenario | dict[str, Any], file: str | Path | None = None) -> SweepConfig:
    """The validated ``sweep:`` block of a scenario (InputError when absent or empty)."""
    raw, found_file = _raw_of(source)
    file = file or found_file
    scenario = validate_raw(raw, file=file)
    if scenario.sweep is None:
        raise InputError("no sweep: block; add sweep: {parameters: {field.path: [values]}, seeds: [0, 1]} "
                         "or use emsfl-sim run", file=file, field="sweep")
    if not scenario.sweep.parameters and not scenario.sweep.seeds:
        raise InputError("the sweep has no parameters and no seeds; give at least one", file=file, field="sweep")
    if "seed" in scenario.sweep.parameters and scenario.sweep.seeds:
        raise InputError("seed is swept twice; use either sweep.seeds or sweep.parameters.seed", file=file,
                         field="sweep.parameters.seed")
    return scenario.sweep


def expand_sweep(source: str | Path | Scenario | dict[str, Any], file: str | Path | None = None) -> list[SweepPoint]:
    """All points of a scenario's sweep, in a deterministic order.

    ``product`` crosses the parameter lists (first parameter slowest), ``zip``
    pairs them; ``seeds`` is a further (innermost) dimension that overrides
    ``seed``. Each point's scenario is the base with the overrides applied and
    the ``sweep`` block removed, validated on its own: an invalid value makes
    that point invalid (``error`` set) without stopping the expansion.

    Parameters
    ----------
    source:
        A scenario file path, a raw mapping, or a validated Scenario.
    file:
        File named in error messages (default: the path given).

    Raises
    ------
    InputError
        When the base scenario is invalid or has no (or an empty) sweep block.
    """
    raw, found_file = _raw_of(source)
    file = file or found_file
    sweep = sweep_config(raw, file)
    keys = list(sweep.parameters)
    lists = [sweep.parameters[k] for k in keys]
    if sweep.mode == "zip" and lists:
        combos: list[tuple[Any, ...]] = list(zip(*lists, strict=True))
    else:
        combos = list(itertools.product(*lists))  # no parameters: one empty combination
    if sweep.seeds:
        keys.append("seed")
        combos = [(*combo, seed) for combo in combos for seed in sweep.seeds]
    base = {k: v for k, v in raw.items() if k != "sweep"}
    width = max(3, len(str(len(combos) - 1)))
    points = []
    for index, combo in enumerate(combos):
        overrides = dict(zip(keys, combo, strict=True))
        point = SweepPoint(index, point_id(index, overrides, width), overrides, base)
        try:
            point.raw = apply_point_overrides(base, overrides)
            point.scenario = validate_raw(point.raw, file=file)
            if file is not None:
                point.scenario._source_file = str(file)
        except InputError as exc:
            point.error = str(exc) if exc.file or file is None else str(exc.with_file(file))
        points.append(point)
    return points


# ------------------------------------------------------- contact-plan cache
def _file_digest(path: str) -> str:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return "missing"


def schedule_uses_seed(scenario: Scenario) -> bool:
    """Whether the link schedule draws random numbers from the scenario seed.

    Idle slots (idealised mode) and shadowing (orbital mode) are the only random
    draws of sim/schedule.py; without them points of different seeds can share
    one schedule.
    """
    if scenario.time.mode == "idealised":
        return scenario.time.idle_slot_rate > 0
    return scenario.link.shadowing_sigma_db > 0


def schedule_key(scenario: Scenario) -> str:
    """Hash of everything the link schedule depends on.

    The orbit/link sections of the resolved scenario, the TLE files' contents,
    the seed only when the schedule draws from it, and the package version.
    """
    data = scenario.model_dump(mode="json", include=set(SCHEDULE_SECTIONS))
    extra = {
        "seed": scenario.seed if schedule_uses_seed(scenario) else None,
        "tle": [_file_digest(p) for p in scenario.constellation.tle_files],
        "version": __version__,
    }
    text = json.dumps({"scenario": data, **extra}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cached_schedule(scenario: Scenario, cache_dir: str | Path | None) -> tuple[Any, str]:
    """The scenario's LinkSchedule from ``cache_dir`` (or built and stored there).

    Returns the schedule and where it came from: ``"cache"`` or ``"built"``.
    The pickle is written to a temporary name and renamed, so a concurrent
    reader never sees half a file.
    """
    if cache_dir is None:
        return build_schedule(scenario), "built"
    key = schedule_key(scenario)
    path = Path(cache_dir) / f"{key}.pkl"
    if path.exists():
        try:
            with path.open("rb") as fh:
                stored = pickle.load(fh)
            if stored.get("key") == key:
                return stored["schedule"], "cache"
        except Exception:  # noqa: BLE001 - a damaged cache entry is rebuilt
            pass
    schedule = build_schedule(scenario)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("wb") as fh:
        pickle.dump({"key": key, "schedule": schedule}, fh, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(tmp, path)
    return schedule, "built"


def build_schedule(scenario: Scenario) -> Any:
    """Build the link schedule (a module-level name so tests can count calls)."""
    from emsfl_sim.sim.schedule import build_schedule as build

    return build(scenario)


def run_point_scenario(scenario: Scenario, directory: Path, schedule: Any, fresh: bool,
                       log: Callable[[str], None]) -> pd.DataFrame:
    """Run one point with a pre-built schedule (the sweep's single entry into sim/runner)."""
    from emsfl_sim.run.runner import run_scenario

    table = run_scenario(scenario, out=directory, fresh=fresh, progress=False, log=log, schedule=schedule)
    if scenario.output.plots:
        from emsfl_sim.report.run_plots import plot_run_directory

        plot_run_directory(directory, scenario.evaluation.target_accuracy)
    return table


# ---------------------------------------------------------------- one point
@dataclass
class PointTask:
    """What a worker needs to run one point (plain data: picklable for processes and Ray)."""

    id: str
    index: int
    raw: dict[str, Any]
    file: str | None
    directory: str
    cache_dir: str | None
    fresh: bool
    overrides: dict[str, Any] = field(default_factory=dict)


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    os.replace(tmp, path)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    return first if isinstance(exc, InputError) else f"{type(exc).__name__}: {first}".rstrip(": ")


def run_point(task: PointTask) -> dict[str, Any]:
    """Run one sweep point in ``task.directory``; never raises.

    Writes ``point.json`` last (status ok or error); a failure also writes
    ``error.txt`` with the traceback. Returns the point.json content.
    """
    directory = Path(task.directory)
    directory.mkdir(parents=True, exist_ok=True)
    t0, cpu0 = time.perf_counter(), time.process_time()
    record: dict[str, Any] = {"id": task.id, "index": task.index, "overrides": task.overrides,
                              "status": "error", "error": None, "summaries": [], "schedule_key": None,
                              "schedule_source": None}
    log_file = (directory / "log.txt").open("a", encoding="utf-8")

    def log(message: str) -> None:
        log_file.write(f"{message}\n")
        log_file.flush()

    try:
        with warnings.catch_warnings():
            # Library deprecation chatter would interleave across workers on the console.
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            scenario = validate_raw(task.raw, file=task.file)
            if task.file:
                scenario._source_file = task.file
            record["schedule_key"] = schedule_key(scenario)
            schedule, source = cached_schedule(scenario, task.cache_dir)
            record["schedule_source"] = source
            table = run_point_scenario(scenario, directory, schedule, task.fresh, log)
        names = [str(s) for s in table["strategy"]]
        record["summaries"] = [json.loads((directory / n / "summary.json").read_text()) for n in names]
        record["status"] = "ok"
    except BaseException as exc:  # noqa: BLE001 - one failing point must not stop the sweep
        if isinstance(exc, KeyboardInterrupt):
            raise
        record["error"] = _one_line(exc)
        (directory / "error.txt").write_text(traceback.format_exc())
        log(f"error: {record['error']}")
        record["summaries"] = [json.loads(p.read_text()) for p in sorted(directory.glob("*/summary.json"))]
    finally:
        log_file.close()
    record["wall_s"] = time.perf_counter() - t0
    record["cpu_s"] = time.process_time() - cpu0  # with wall_s: how much CPU the point got when shared
    record["finished_unix"] = time.time()
    _write_json_atomic(directory / "point.json", record)
    return record


def build_schedule_task(raw: dict[str, Any], file: str | None, cache_dir: str) -> str | None:
    """Fill the cache entry of one schedule key (errors surface later in the points)."""
    try:
        scenario = validate_raw(raw, file=file)
        if file:
            scenario._source_file = file
        cached_schedule(scenario, cache_dir)
        return None
    except Exception as exc:  # noqa: BLE001
        return _one_line(exc)


# ---------------------------------------------------------------- executors
def _worker_init() -> None:
    """Process-pool worker set-up: quiet library warnings, one torch thread until the scenario says."""
    warnings.simplefilter("ignore", FutureWarning)
    warnings.simplefilter("ignore", DeprecationWarning)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)


class _Executor:
    """Submit calls and iterate over (tag, result) as they finish."""

    def submit(self, fn: Callable[..., Any], tag: Any, *args: Any) -> None:
        raise NotImplementedError

    def results(self) -> Iterator[tuple[Any, Any, BaseException | None]]:
        raise NotImplementedError

    def close(self) -> None:
        pass


class _SerialExecutor(_Executor):
    def __init__(self) -> None:
        self._queue: list[tuple[Callable[..., Any], Any, tuple[Any, ...]]] = []

    def submit(self, fn: Callable[..., Any], tag: Any, *args: Any) -> None:
        self._queue.append((fn, tag, args))

    def results(self) -> Iterator[tuple[Any, Any, BaseException | None]]:
        while self._queue:
            fn, tag, args = self._queue.pop(0)
            try:
                yield tag, fn(*args), None
            except Exception as exc:  # noqa: BLE001
                yield tag, None, exc


class _ProcessExecutor(_Executor):
    def __init__(self, workers: int) -> None:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # fork after torch is imported can deadlock OpenMP; forkserver (or spawn) starts clean
        # workers. The forkserver imports torch once, so workers start without the ~8 s import.
        if "forkserver" in multiprocessing.get_all_start_methods():
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(list(FORKSERVER_PRELOAD))
        else:
            context = multiprocessing.get_context("spawn")
        self._pool = ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_worker_init)
        self._futures: dict[Any, Any] = {}

    def submit(self, fn: Callable[..., Any], tag: Any, *args: Any) -> None:
        self._futures[self._pool.submit(fn, *args)] = tag

    def results(self) -> Iterator[tuple[Any, Any, BaseException | None]]:
        from concurrent.futures import FIRST_COMPLETED, wait

        pending = set(self._futures)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                tag = self._futures.pop(future)
                exc = future.exception()
                yield tag, (None if exc else future.result()), exc

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class _RayExecutor(_Executor):
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
        if fn not in self._remote:
            self._remote[fn] = self._ray.remote(num_cpus=1)(fn)
        self._refs[self._remote[fn].remote(*args)] = tag

    def results(self) -> Iterator[tuple[Any, Any, BaseException | None]]:
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
        if self._started:
            self._ray.shutdown()


def make_executor(executor: str, workers: int | None, address: str | None) -> _Executor:
    """The executor named ``process``, ``ray`` or ``serial``."""
    if executor == "serial":
        return _SerialExecutor()
    if executor == "process":
        return _ProcessExecutor(workers or os.cpu_count() or 1)
    if executor == "ray":
        return _RayExecutor(workers, address)
    raise InputError(f"unknown executor {executor!r}; use one of {', '.join(EXECUTORS)}", field="--executor")


# --------------------------------------------------------------- the table
def point_rows(point: SweepPoint, record: dict[str, Any], swept: Sequence[str],
               strategies: Sequence[str]) -> list[dict[str, Any]]:
    """Rows of the combined table for one point: one per strategy."""
    base = {"point": point.id, "index": point.index}
    for key in swept:
        base[key] = point.overrides.get(key)
    base["seed"] = point.overrides.get("seed", point.raw.get("seed", 0))
    base["status"] = record.get("status", "error")
    base["error"] = record.get("error")
    base["schedule_key"] = record.get("schedule_key")
    base["point_wall_s"] = record.get("wall_s")
    base["point_cpu_s"] = record.get("cpu_s")
    summaries = {s["strategy"]: s for s in record.get("summaries", [])}
    names = list(dict.fromkeys([*strategies, *summaries]))
    rows = []
    for name in names:
        summary = summaries.get(name, {})
        metrics = {k: v for k, v in summary.items() if k not in {"strategy", "scenario", "seed"}}
        rows.append({**base, "strategy": name, **metrics})
    return rows


def _point_strategies(point: SweepPoint) -> list[str]:
    if point.scenario is not None:
        return list(point.scenario.strategy.names)
    names = point.raw.get("strategy", {}).get("names") if isinstance(point.raw.get("strategy"), dict) else None
    if isinstance(names, str):
        return [names]
    return [str(n) for n in names] if isinstance(names, list) else ["baseline", "emsfl"]


def sweep_table(points: Sequence[SweepPoint], records: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """The combined table of the finished points (point order, then strategy order)."""
    swept = [k for k in (points[0].overrides if points else {}) if k != "seed"]
    rows = []
    for point in points:
        if point.id in records:
            rows.extend(point_rows(point, records[point.id], swept, _point_strategies(point)))
    head = ["point", "index", *swept, "seed", "strategy", "status", "error", *METRIC_COLUMNS]
    table = pd.DataFrame(rows)
    return table.reindex(columns=[*head, *[c for c in table.columns if c not in head]])


def _storable(table: pd.DataFrame) -> pd.DataFrame:
    """Columns Parquet can hold: lists/dicts become JSON text, mixed types become text."""
    out = table.copy()
    for column in out.columns:
        values = out[column].dropna()
        if values.empty or out[column].dtype != object:
            continue
        if values.map(lambda v: isinstance(v, (list, dict))).any():
            out[column] = out[column].map(lambda v: json.dumps(v) if isinstance(v, (list, dict)) else v)
            values = out[column].dropna()
        kinds = {type(v) for v in values}
        if len(kinds) > 1 and not kinds <= {int, float, bool}:
            out[column] = out[column].map(lambda v: None if v is None or (isinstance(v, float) and math.isnan(v))
                                          else str(v))
    return out


def write_sweep_table(table: pd.DataFrame, out_dir: Path) -> None:
    """``sweep.parquet`` and ``sweep.csv`` (each written to a temporary name, then renamed)."""
    stored = _storable(table)
    for suffix in ("parquet", "csv"):
        path = out_dir / f"sweep.{suffix}"
        tmp = out_dir / f".sweep.{suffix}.tmp"
        if suffix == "parquet":
            stored.to_parquet(tmp, index=False)
        else:
            stored.to_csv(tmp, index=False)
        os.replace(tmp, path)


# ---------------------------------------------------------------- run_sweep
def _finished_record(point: SweepPoint, directory: Path) -> dict[str, Any] | None:
    """point.json of a completed point whose folder holds this exact scenario, else None."""
    marker = directory / "point.json"
    stored_yaml = directory / "scenario.yaml"
    if not marker.exists() or not stored_yaml.exists() or point.scenario is None:
        return None
    try:
        record = json.loads(marker.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if record.get("status") != "ok" or stored_yaml.read_text() != scenario_to_yaml(point.scenario):
        return None
    return record


def _needs_fresh(point: SweepPoint, directory: Path) -> bool:
    """A folder left by a different scenario or other code must not lend its strategy results (runner resume)."""
    from emsfl_sim.run.rundir import check_resume

    if point.scenario is None or not (directory / "scenario.yaml").exists():
        return False
    try:
        check_resume(point.scenario, directory, point.scenario.strategy.names, fresh=False)
    except InputError:
        return True  # the point reruns from scratch instead of failing
    return False


def run_sweep(scenario_path: str | Path, out_dir: str | Path, workers: int | None = None,
              executor: str = "process", address: str | None = None, progress: bool = True,
              log: Callable[[str], None] | None = None) -> pd.DataFrame:
    """Run every point of the scenario's sweep; returns the combined table.

    Parameters
    ----------
    scenario_path:
        Scenario file with a ``sweep:`` block.
    out_dir:
        Sweep directory (created); points go to ``out_dir/points/<id>/``.
    workers:
        Parallel points (default: CPU count; Ray: the local instance's CPUs).
    executor:
        ``process`` (local process pool), ``ray`` (Ray tasks on ``address`` or a
        local instance) or ``serial`` (in this process, for debugging).
    address:
        Ray cluster address (``ray``); the sweep directory must then be on a file
        system shared with the cluster's nodes.
    progress:
        Show one progress bar over points.
    log:
        Receives one-line messages (default: stderr).

    Raises
    ------
    InputError
        Invalid base scenario, no sweep block, unknown executor, Ray not installed.
    """
    if executor not in EXECUTORS:
        raise InputError(f"unknown executor {executor!r}; use one of {', '.join(EXECUTORS)}", field="--executor")
    if workers is not None and workers < 1:
        raise InputError(f"must be at least 1 (got {workers}); leave it out to use every CPU", field="--workers")
    log = log or (lambda message: print(message, file=sys.stderr))
    scenario_path = Path(scenario_path)
    points = expand_sweep(scenario_path)
    out = Path(out_dir)
    (out / "points").mkdir(parents=True, exist_ok=True)
    cache_dir = out / "cache"
    (out / "scenario.yaml").write_text(scenario_path.read_text(encoding="utf-8"))
    sweep = sweep_config(scenario_path)
    _write_json_atomic(out / "sweep.json", {
        "scenario": str(scenario_path.resolve()), "mode": sweep.mode, "parameters": sweep.parameters,
        "seeds": sweep.seeds, "executor": executor, "workers": workers, "points": [p.id for p in points],
        "created_unix": time.time(), "emsfl_sim": __version__,
    })

    records: dict[str, dict[str, Any]] = {}
    todo: list[SweepPoint] = []
    for point in points:
        directory = out / "points" / point.id
        if point.error is not None:
            directory.mkdir(parents=True, exist_ok=True)
            records[point.id] = {"id": point.id, "status": "error", "error": point.error, "summaries": [],
                                 "overrides": point.overrides}
            _write_json_atomic(directory / "point.json", records[point.id])
            continue
        finished = _finished_record(point, directory)
        if finished is not None:
            records[point.id] = finished
        else:
            todo.append(point)
    skipped = sum(1 for p in points if p.error is None) - len(todo)
    invalid = sum(1 for p in points if p.error is not None)
    log(f"sweep {len(points)} points: {len(todo)} to run, {skipped} finished earlier, {invalid} invalid "
        f"({executor}{'' if executor == 'serial' else f', {workers or os.cpu_count()} workers'})")
    write_sweep_table(sweep_table(points, records), out)
    if not todo:
        return sweep_table(points, records)

    runner = make_executor(executor, workers, address)
    bar = None
    try:
        # Phase 1: one schedule per distinct key, in parallel, so no two points build the same one.
        first_of_key: dict[str, SweepPoint] = {}
        for point in todo:
            assert point.scenario is not None
            first_of_key.setdefault(schedule_key(point.scenario), point)
        missing = {k: p for k, p in first_of_key.items() if not (cache_dir / f"{k}.pkl").exists()}
        log(f"link schedules: {len(first_of_key)} distinct, {len(missing)} to build, "
            f"{len(first_of_key) - len(missing)} cached")
        for key, point in missing.items():
            runner.submit(build_schedule_task, key, point.raw, str(scenario_path), str(cache_dir))
        for key, error, exc in runner.results():
            if error or exc:
                log(f"schedule {key}: {error or _one_line(exc)} (its points will report it)")

        # Phase 2: the points.
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(points), initial=len(points) - len(todo), desc="sweep", unit="point",
                       dynamic_ncols=True)
        for point in todo:
            directory = out / "points" / point.id
            task = PointTask(point.id, point.index, point.raw, str(scenario_path), str(directory),
                             str(cache_dir), _needs_fresh(point, directory), point.overrides)
            runner.submit(run_point, point.id, task)
        by_id = {p.id: p for p in points}
        failed = sum(1 for r in records.values() if r.get("status") != "ok")
        for pid, record, exc in runner.results():
            if exc is not None:  # the worker itself died (killed, out of memory)
                record = {"id": pid, "status": "error", "summaries": [], "overrides": by_id[pid].overrides,
                          "error": f"worker failed: {_one_line(exc)}; rerun the sweep to retry this point"}
                _write_json_atomic(out / "points" / pid / "point.json", record)
            records[pid] = record
            failed += record.get("status") != "ok"
            write_sweep_table(sweep_table(points, records), out)
            if bar is not None:
                bar.set_postfix(failed=failed)
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
        runner.close()
    return sweep_table(points, records)


def load_sweep_table(out_dir: str | Path) -> pd.DataFrame:
    """The combined table of a sweep directory (Parquet if present, else CSV)."""
    out = Path(out_dir)
    if (out / "sweep.parquet").exists():
        return pd.read_parquet(out / "sweep.parquet")
    if (out / "sweep.csv").exists():
        return pd.read_csv(out / "sweep.csv")
    raise InputError("no sweep.parquet or sweep.csv here; run emsfl-sim sweep first", file=out)
