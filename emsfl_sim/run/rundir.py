"""A run directory belongs to one resolved scenario and to one run at a time.

* :func:`check_resume`: finished strategy results (or a strategy's checkpoint) in a directory are reused only if the
  directory's resolved scenario (``scenario.yaml``) equals the current one and the code
  is the same (version and :func:`code_fingerprint`, stored in ``run.json``); otherwise the run is refused in one line (``--fresh`` replaces
  the results). Fields that do not change what a run computes (``seeds``, ``output``,
  ``sweep``, ``description``) are left out of the comparison.
* :func:`run_lock`: an exclusive ``fcntl.flock`` on ``<dir>/.lock`` for the whole run; a
  second run into the same directory is refused and told who holds it. The kernel
  releases the lock when its process dies, so a killed run leaves no stale lock.
* :func:`write_run_metadata`: the resolved scenario and ``run.json`` (versions, inputs, seed) next
  to the results; :func:`write_links` the link windows (``links.*``), which the runner writes
  before the event loop, or after it for a schedule streamed alongside the loop.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import platform
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml

from emsfl_sim import __version__
from emsfl_sim.errors import InputError
from emsfl_sim.results import write_table
from emsfl_sim.run.checkpoint import CHECKPOINT_NAME
from emsfl_sim.scenario import Scenario, scenario_to_yaml
from emsfl_sim.sim.schedule import LinkSchedule

#: Top-level scenario fields that do not change what a run computes.
NOT_COMPARED = ("seeds", "output", "sweep", "description")


@functools.cache
def code_fingerprint() -> str:
    """SHA-256 (16 hex digits) of every source file of the emsfl_sim package.

    Any change of the code changes it, so results of other code are never resumed as
    this code's (the package version string alone does not change between commits).
    """
    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def input_digests(scenario: Scenario) -> dict[str, str]:
    """SHA-256 of every input file the scenario reads (TLEs, data files; model directories by listing).

    The resolved scenario names files, not their contents: an edited TLE or JSONL file
    behind the same path must not let a run resume results computed from the old one.
    Model directories are fingerprinted by their files' names, sizes and modification
    times (hashing gigabytes of weights would cost more than the check is worth).
    """
    files = list(scenario.constellation.tle_files)
    files += [f.path for f in scenario.data.data_files()]
    out: dict[str, str] = {}
    for name in files:
        path = Path(name)
        out[str(name)] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "missing"
    for model in [scenario.model.checkpoint_path, *scenario.model.dense_checkpoints]:
        if model:
            path = Path(model)
            listing = sorted((str(p.relative_to(path)), p.stat().st_size, p.stat().st_mtime_ns)
                             for p in path.rglob("*") if p.is_file()) if path.is_dir() else "missing"
            out[str(model)] = hashlib.sha256(json.dumps(listing).encode()).hexdigest()
    return out


def _comparable(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k not in NOT_COMPARED}


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: value}


def scenario_differences(stored_yaml: str, scenario: Scenario) -> list[str]:
    """Dotted fields in which a stored resolved scenario and ``scenario`` differ (compared fields only)."""
    old = _flat(_comparable(yaml.safe_load(stored_yaml) or {}))
    new = _flat(_comparable(yaml.safe_load(scenario_to_yaml(scenario))))
    return sorted(k for k in old.keys() | new.keys() if old.get(k, "<absent>") != new.get(k, "<absent>"))


def check_resume(scenario: Scenario, directory: Path, strategies: Sequence[str], fresh: bool) -> None:
    """Refuse to reuse finished results of another scenario or code version in ``directory``."""
    if fresh:
        return
    finished = [s for s in strategies
                if (directory / s / "summary.json").exists() or (directory / s / CHECKPOINT_NAME).exists()]
    if not finished:
        return
    hint = "rerun with --fresh to replace them, or use another --out"
    stored = directory / "scenario.yaml"
    if not stored.is_file():
        raise InputError(f"holds finished results ({', '.join(finished)}) but no scenario.yaml to check them "
                         f"against; {hint}", file=directory)
    diff = scenario_differences(stored.read_text(), scenario)
    if diff:
        shown = ", ".join(diff[:6]) + (f" and {len(diff) - 6} more" if len(diff) > 6 else "")
        raise InputError(f"holds finished results of another scenario (differs in {shown}); {hint}",
                         file=directory)
    meta = directory / "run.json"
    stored_meta = json.loads(meta.read_text()) if meta.is_file() else {}
    version, code = stored_meta.get("emsfl_sim"), stored_meta.get("code")
    if version != __version__ or code != code_fingerprint():
        raise InputError(f"holds finished results of other code (emsfl-sim {version or 'unknown'}, code "
                         f"{code or 'unknown'}; this is {__version__}, code {code_fingerprint()}); {hint}",
                         file=directory)
    changed = sorted(k for k, v in input_digests(scenario).items() if stored_meta.get("inputs", {}).get(k) != v)
    if changed:
        raise InputError(f"holds finished results computed from other contents of {', '.join(changed)}; {hint}",
                         file=directory)


@contextlib.contextmanager
def run_lock(directory: Path) -> Iterator[None]:
    """Hold ``<directory>/.lock`` for the duration of a run (refuse if another run holds it)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no locking
        yield
        return
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / ".lock"
    handle = open(path, "a+")  # noqa: SIM115 - held open for the whole run
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise InputError(f"another run is writing here ({holder}); wait for it to finish or use another --out",
                             file=directory) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}, since {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}")
        handle.flush()
        yield
    finally:
        handle.close()


def write_run_metadata(scenario: Scenario, directory: Path, schedule: LinkSchedule) -> None:
    """Resolved scenario, versions and the schedule's clock facts next to the results (``links.*``: :func:`write_links`)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "scenario.yaml").write_text(scenario_to_yaml(scenario))
    torch_version = None
    if scenario.simulate == "learning":  # a timeline run never imports torch
        import torch

        torch_version = torch.__version__
    meta = {
        "emsfl_sim": __version__,
        "code": code_fingerprint(),
        "inputs": input_digests(scenario),
        "python": platform.python_version(),
        "torch": torch_version,
        "simulate": scenario.simulate,
        "platform": platform.platform(),
        "seed": scenario.seed,
        "created_unix": time.time(),
        "schedule_mode": schedule.mode,
        "cycle_s": schedule.cycle_s,
        "duration_s": schedule.duration_s,
    }
    (directory / "run.json").write_text(json.dumps(meta, indent=2))


def write_links(scenario: Scenario, directory: Path, schedule: LinkSchedule) -> None:
    """The link windows table (``links.*``) of the run."""
    write_table(schedule.table(), directory / "links", scenario.output.formats)
