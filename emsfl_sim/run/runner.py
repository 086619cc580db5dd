"""Run a scenario end to end: schedule -> learning world -> one SimPy run per strategy -> results.

All strategies of one call share the contact plan, the seed, the data and the
one frozen base model (after gate pre-training), so their differences come
from the strategies alone. Each strategy writes its own sub-directory; a
strategy whose ``summary.json`` exists is skipped on a rerun (resume) if the
directory holds the same resolved scenario (``run/rundir.py``), unless
``fresh`` is set; one run at a time holds a directory.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Generator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pandas as pd
import simpy

from emsfl_sim.errors import InputError
from emsfl_sim.results import write_table
from emsfl_sim.run.checkpoint import Checkpointer, JournaledEngine, ReplayMismatch
from emsfl_sim.run.rundir import check_resume, run_lock, write_links, write_run_metadata
from emsfl_sim.scenario import Scenario
from emsfl_sim.sim.background import can_start_child
from emsfl_sim.sim.constellation import check_tle_epochs
from emsfl_sim.sim.engine import SimContext
from emsfl_sim.sim.recorder import Recorder
from emsfl_sim.sim.schedule import LinkSchedule, build_schedule

if TYPE_CHECKING:  # strategies (and the learning side below them) are imported when a run starts
    from emsfl_sim.learning.engine import LearningEngine
    from emsfl_sim.strategies.base import LearningWorld, Strategy

COMPARISON_COLUMNS = [
    "strategy", "time_to_target_s", "cycles_to_target", "final_accuracy", "best_accuracy",
    "uplink_mb", "uplink_mb_per_pass", "wasted_uplink_mb", "idle_fraction", "interrupted_uploads",
    "local_rounds", "optimizer_steps", "tokens_processed", "samples_seen", "unique_samples_fraction",
    "peak_device_memory_mb", "wall_s",
]


def check_training_device(scenario: Scenario) -> None:
    """Refuse ``training.device: cuda`` when torch cannot use CUDA, before any work (one-line InputError)."""
    if scenario.training.device != "cuda":
        return
    import torch

    if not torch.cuda.is_available():
        reason = ("this torch has no CUDA (a CPU-only build)" if torch.version.cuda is None
                  else "torch finds no CUDA GPU (driver or CUDA_VISIBLE_DEVICES)")
        raise InputError(f"cuda requested but {reason}; use auto (a GPU when there is one) or cpu",
                         file=scenario.source_file, field="training.device")


def check_scenario(scenario: Scenario, strategies: Sequence[str] | None = None, device: bool = True) -> list[str]:
    """Every check of a scenario beyond its schema that needs no model weights (one-line InputErrors).

    The strategy names (registry), the model family, the names a scenario refers to
    (compute profiles, data domains, LoRA targets, ``config_overrides`` keys), the model's
    config values and checkpoint directory, the ``output.directory`` template and, with
    ``device``, that ``training.device`` is usable here. ``emsfl-sim validate`` runs it
    without ``device`` (a file for a GPU machine validates on a laptop); a run, with. A
    timeline scenario is checked without torch (``run/timeline_counts.py``).
    Returns the strategy names to run.
    """
    from emsfl_sim.run.world import check_model_architecture, check_scenario_names

    names = check_strategy_names(strategies or scenario.strategy.names, scenario.source_file)
    check_model_architecture(scenario)
    if scenario.simulate == "timeline":  # without torch: the counts of the model config are the check
        from emsfl_sim.run.timeline_counts import check_timeline_scenario

        check_timeline_scenario(scenario)
    else:
        check_scenario_names(scenario)
        check_model_inputs(scenario, device=device)
    check_tle_epochs(scenario)
    output_directory(scenario, None)
    return names


def check_model_inputs(scenario: Scenario, device: bool = True) -> None:
    """One-line InputErrors, before any work, for the device and the model's config values."""
    from emsfl_sim.learning.adapters.base import check_config_values

    if device and scenario.simulate == "learning":  # a timeline run trains nothing, anywhere
        check_training_device(scenario)
    model = scenario.model
    if model.checkpoint_path:
        from emsfl_sim.learning.models import check_checkpoint_dir

        check_checkpoint_dir(model.checkpoint_path)
    try:
        if isinstance(model.config, dict):
            check_config_values(dict(model.config), "model.config")
        check_config_values(dict(model.config_overrides), "model.config_overrides")
    except InputError as exc:
        raise exc.with_file(scenario.source_file) if scenario.source_file else exc from None
    if device and scenario.simulate == "learning":
        check_model_fits_memory(scenario)


def check_model_fits_memory(scenario: Scenario) -> None:
    """Refuse, before any work, a model whose weights alone exceed this machine's memory (CPU runs).

    A GPU run is left to the GPU (its memory is the device's, not the host's).
    """
    import os

    from emsfl_sim.run.timeline_counts import DTYPE_BYTES, check_model_shape

    counts = check_model_shape(scenario)
    if counts is None or scenario.training.device == "cuda":
        return
    import torch

    if scenario.training.device == "auto" and torch.cuda.is_available():
        return
    need = counts["total"] * DTYPE_BYTES[scenario.model.dtype]
    have = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if need > 0.8 * have:
        raise InputError(f"the model has {counts['total'] / 1e9:.2f} B parameters, {need / 1e9:.1f} GB in "
                         f"{scenario.model.dtype}, more than this machine's {have / 1e9:.1f} GB of memory can hold "
                         "next to training; use a smaller config (config_overrides: num_hidden_layers, hidden_size) "
                         "or a GPU machine", file=scenario.source_file, field="model")


#: The keys an ``output.directory`` template may use.
OUTPUT_DIRECTORY_KEYS = ("name", "seed")


def output_directory(scenario: Scenario, out: str | Path | None) -> Path:
    """The run directory (``--out`` or the scenario's ``output.directory``).

    Raises
    ------
    InputError
        For a template with an unknown ``{key}`` or unbalanced braces (field ``output.directory``).
    """
    if out:
        return Path(out)
    template = scenario.output.directory
    try:
        return Path(template.format(name=scenario.name, seed=scenario.seed))
    except (KeyError, IndexError, ValueError, AttributeError) as exc:
        allowed = ", ".join(f"{{{k}}}" for k in OUTPUT_DIRECTORY_KEYS)
        if isinstance(exc, KeyError):
            problem = f"unknown key {{{exc.args[0]}}}"
        elif isinstance(exc, (AttributeError, IndexError)):  # {name.x} or {seed[0]}: the keys are plain values
            problem = "a key with an attribute or index"
        else:
            problem = f"not a valid template ({exc})"
        raise InputError(f"{problem} in {template!r}; the allowed keys are {allowed} "
                         "(write {{ and }} for literal braces)", file=scenario.source_file,
                         field="output.directory") from None


def idle_fraction(schedule: LinkSchedule) -> float:
    """Fraction of the simulated time during which no cluster has a link (``cluster_idle_fraction_mean``: per cluster)."""
    return schedule.idle_fraction


def build_world(scenario: Scenario, log: Callable[[str], None] = print,
                work_dir: Path | None = None) -> LearningWorld:
    """The learning side shared by all strategies: engine, data, initial state, payloads.

    For ``simulate: timeline`` the world of counts without torch (``run/timeline.py``).
    """
    if scenario.simulate == "timeline":
        from emsfl_sim.run.timeline import build_timeline_world

        return build_timeline_world(scenario, log=log)
    from emsfl_sim.run.world import build_learning_world

    return build_learning_world(scenario, log=log, work_dir=work_dir)


def run_strategy(scenario: Scenario, schedule: LinkSchedule, world: LearningWorld, strategy_name: str, directory: Path,
                 progress: bool = True, log: Callable[[str], None] = print, resume: bool = True) -> dict[str, Any]:
    """Simulate one strategy and write its results into ``directory``.

    With ``resume``, a checkpoint left in ``directory`` by an interrupted run of the same
    scenario is continued from (``run/checkpoint.py``): the event loop is replayed up to
    its evaluation without learning work, then the run goes on for real; a checkpoint that
    cannot be used is reported in one line and the strategy runs from the start.
    """
    checkpoints = Checkpointer(directory, world.initial_state)
    learning = scenario.simulate == "learning"  # a timeline run is cheaper to rerun than to checkpoint
    saved, why = checkpoints.load(world.engine.device) if resume and learning else (None, "")
    if why:
        log(f"{strategy_name}: the checkpoint in {directory} is {why}; running the strategy from the start")
    if saved is not None:
        log(f"{strategy_name}: resuming from the checkpoint at {saved['time_s'] / 3600:.2f} h simulated "
            f"(replaying {len(saved['journal'])} learning calls without training)")
        try:
            return _simulate(scenario, schedule, world, strategy_name, directory, progress, checkpoints, saved)
        except ReplayMismatch as exc:
            log(f"{strategy_name}: the checkpoint does not match this run ({exc}); running the strategy from the start")
    return _simulate(scenario, schedule, world, strategy_name, directory, progress, checkpoints, None)


def _simulate(scenario: Scenario, schedule: LinkSchedule, world: LearningWorld, strategy_name: str, directory: Path,
              progress: bool, checkpoints: Checkpointer, saved: dict[str, Any] | None) -> dict[str, Any]:
    from emsfl_sim.strategies import get_strategy

    directory.mkdir(parents=True, exist_ok=True)
    recorder = Recorder(directory, strategy_name, scenario.time.start_utc, scenario.output.formats)
    ctx = SimContext(
        schedule,
        recorder,
        interrupt_policy=scenario.link.upload_interrupt_policy,
        downlink_rate_bps=scenario.link.downlink_rate_bps,
    )
    engine = JournaledEngine(world.engine, saved["journal"] if saved else None)
    restore_pending = saved is not None  # restored right after the replayed evaluation, where it was saved
    # the journaled engine stands in for the learning engine (same calls, recorded or replayed)
    strategy = get_strategy(strategy_name)(dataclasses.replace(world, engine=cast("LearningEngine", engine)), ctx)
    check_round_budget(strategy, schedule)
    learning = scenario.simulate == "learning"
    if learning:
        measure_peak_memory(world, strategy_name)
    strategy.start()
    interval = scenario.evaluation.every_s or (scenario.evaluation.every_cycles or 1.0) * schedule.cycle_s
    bar = _progress_bar(schedule.duration_s, strategy_name, progress)
    target = scenario.evaluation.target_accuracy

    def evaluate() -> dict[str, Any]:
        nonlocal restore_pending
        result = ctx.clock.timed(engine.evaluate, strategy.state, world.data.test)
        row = {"time_s": ctx.now, "cycle": ctx.cycle(), **{k: float(v) for k, v in result.items()}}
        recorder.metric(row)
        if restore_pending and not engine.replaying:
            assert saved is not None
            ctx.clock.timed(checkpoints.restore, saved, strategy, ctx)
            restore_pending = False
        elif scenario.output.checkpoints and not engine.replaying:
            ctx.clock.timed(checkpoints.save, strategy, ctx, engine)
        if bar is not None:
            bar.update(ctx.now - bar.n)
            bar.set_postfix(acc=f"{row['accuracy']:.3f}", cycle=f"{row['cycle']:.1f}")
        return row

    def evaluation_process() -> Generator[simpy.Event, Any, None]:
        evaluate()
        while ctx.now + interval <= schedule.duration_s + 1e-9:
            yield ctx.env.timeout(interval)
            evaluate()

    if learning:  # a timeline run has nothing to evaluate
        ctx.env.process(evaluation_process())
    ctx.run(until=schedule.duration_s + 1e-6)
    if bar is not None:
        bar.update(max(0.0, schedule.duration_s - bar.n))
        bar.close()
    if engine.replaying:
        raise ReplayMismatch("the run ended before the checkpoint's evaluation")
    metrics = recorder.metrics_frame()
    summary = summarise(scenario, schedule, strategy, ctx, metrics, target)
    recorder.close(summary)
    checkpoints.remove()
    return summary


#: More local rounds than this per device means a runaway run (hours of CPU for a tiny model).
MAX_ROUNDS_PER_DEVICE = 20000


def check_round_budget(strategy: Strategy, schedule: LinkSchedule) -> None:
    """Refuse a run whose compute model gives so short rounds that it would never finish."""
    from emsfl_sim.errors import InputError

    cluster = schedule.clusters[0]
    round_s = strategy.round_duration_s(cluster, strategy.all_experts, False, False)
    share = strategy.round_slot_s()
    longest = max(strategy.round_duration_s(c, strategy.all_experts, True, False) for c in schedule.clusters)
    if share is not None and longest > share + 1e-9:
        raise InputError(
            f"a local round lasts {longest:.4g} s but idealised time gives each round {share:.4g} s "
            f"(time.slot_duration_s / training.rounds_per_slot); shorten training.round_interval_s or use fewer "
            f"rounds_per_slot", file=strategy.scenario.source_file, field="training.round_interval_s")
    rounds = schedule.duration_s / max(round_s, 1e-12)
    if rounds > MAX_ROUNDS_PER_DEVICE:
        raise InputError(
            f"the compute model gives {round_s:.3g} s local rounds, i.e. {rounds:,.0f} rounds per device over "
            f"{schedule.duration_s:,.0f} s; set training.round_interval_s or training.simulated_tokens_per_round",
            file=strategy.scenario.source_file, field="training")


def measure_peak_memory(world: LearningWorld, strategy_name: str) -> float | None:
    """Peak memory (MB) of one local step of a device under this strategy (its declared footprint).

    EMS-FL devices are measured holding an even share of the experts (E / clusters).
    """
    if strategy_name in world.peak_memory_mb:
        return world.peak_memory_mb.get(strategy_name)
    from emsfl_sim.strategies.footprints import measure_strategy_memory

    examples = next(iter(world.data.train.values()))[0]
    report = measure_strategy_memory(world.engine, examples, strategy_name, len(world.scenario.clusters))
    world.peak_memory_mb[strategy_name] = report.peak_bytes / 1e6
    return world.peak_memory_mb[strategy_name]


def first_reached(metrics: pd.DataFrame, target: float, consecutive: int = 1) -> pd.DataFrame:
    """The metrics row where accuracy first reaches ``target`` and holds for ``consecutive`` evaluations.

    Empty if it never does.
    """
    if not len(metrics):
        return metrics
    hit = (metrics["accuracy"] >= target).to_numpy()
    run = 0
    for i, h in enumerate(hit):
        run = run + 1 if h else 0
        if run >= consecutive:
            return metrics.iloc[[i - consecutive + 1]]
    return metrics.iloc[[]]


def summarise(scenario: Scenario, schedule: LinkSchedule, strategy: Strategy, ctx: SimContext, metrics: pd.DataFrame,
              target: float) -> dict[str, Any]:
    """The numbers of summary.json."""
    reached = first_reached(metrics, target, scenario.evaluation.target_consecutive)
    windows_used = sum(ctx.window_count.values())
    wall = ctx.clock.total_s
    return {
        "strategy": strategy.name,
        "scenario": scenario.name,
        "simulate": scenario.simulate,
        "seed": scenario.seed,
        "target_accuracy": target,
        "time_to_target_s": float(reached["time_s"].iloc[0]) if len(reached) else None,
        "cycles_to_target": float(reached["cycle"].iloc[0]) if len(reached) else None,
        "final_accuracy": float(metrics["accuracy"].iloc[-1]) if len(metrics) else None,
        "best_accuracy": float(metrics["accuracy"].max()) if len(metrics) else None,
        "uplink_bytes": int(ctx.uplink_bytes),
        "uplink_mb": ctx.uplink_bytes / 1e6,
        "uplink_mb_per_pass": ctx.uplink_bytes / 1e6 / max(1, windows_used),
        "wasted_uplink_mb": ctx.wasted_uplink_bytes / 1e6,
        "passes": windows_used,
        "idle_fraction": idle_fraction(schedule),
        "cluster_idle_fraction_mean": schedule.cluster_idle_fraction_mean,
        "completed_uploads": ctx.completed_uploads,
        "interrupted_uploads": ctx.interrupted_uploads,
        "aggregations": strategy.aggregations,
        "gate_updates": strategy.gate_updates,
        **strategy.data_summary(),
        "mean_staleness": float(np.mean(strategy.staleness)) if strategy.staleness else 0.0,
        "peak_device_memory_mb": strategy.world.peak_memory_mb.get(strategy.name),
        "simulated_s": schedule.duration_s,
        "cycle_s": schedule.cycle_s,
        "wall_s": wall,
        "learning_wall_s": ctx.clock.learning_s,
        "overhead_wall_s": wall - ctx.clock.learning_s,
        "overhead_fraction": (wall - ctx.clock.learning_s) / wall if wall > 0 else 0.0,
        "warnings": run_warnings(schedule, strategy, metrics),
        **strategy.summary_extra(),
    }


#: Warnings whose cause is the scenario, not the strategy (printed once per run, without a strategy name).
SCENARIO_WIDE_WARNINGS = ("no contacts:", "no evaluation after t = 0:")


def run_warnings(schedule: LinkSchedule, strategy: Strategy, metrics: pd.DataFrame | None = None) -> list[str]:
    """Why a strategy's result may mean nothing (empty: nothing to warn about), every cause that applies."""
    scenario, out = strategy.scenario, []
    if not schedule.windows:
        out.append("no contacts: no cluster ever sees the server, so nothing was aggregated and the accuracies "
                   "are those of the initial model; check the constellation, clusters and elevation mask")
    elif strategy.aggregations == 0:
        out.append("no aggregation: no upload reached the satellite, so the global model is the initial one "
                   "(passes too short for a round and its upload, or uploads always interrupted)")
    if scenario.simulate == "learning" and metrics is not None and len(metrics) <= 1:
        ev = scenario.evaluation
        field, value = ("every_s", f"{ev.every_s:g} s") if ev.every_s else \
            ("every_cycles", f"{ev.every_cycles or 1:g} cycles")
        out.append(f"no evaluation after t = 0: evaluation.{field} ({value}) is longer than the run "
                   f"({schedule.duration_s:g} s), so the final accuracy is the initial model's; evaluate more often")
    return out


def _progress_bar(total: float, label: str, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm import tqdm

    # disable=None: no bar when stderr is not a terminal (a log file gets no flood of redraws)
    return tqdm(total=total, desc=f"{label:>15}", unit="sim-s", unit_scale=True, dynamic_ncols=True, disable=None,
                bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.3g}/{total:.3g} sim-s [{elapsed}<{remaining}{postfix}]")


def _log_schedule(schedule: LinkSchedule, log: Any, how: str) -> None:
    log(f"link schedule: {len(schedule.windows)} windows over {schedule.duration_s / 3600:.1f} h, "
        f"orbital cycle {schedule.cycle_s / 60:.1f} min, idle {idle_fraction(schedule):.1%} ({how})")


def check_strategy_names(names: Sequence[str], file: str | Path | None = None,
                         field: str = "strategy.names") -> list[str]:
    """The names as a list, each a registered strategy (``emsfl_sim.strategies.REGISTRY``).

    The scenario schema sits below strategies/ and accepts any name; run_scenario,
    run_seeds, the sweep expansion and ``emsfl-sim validate`` check them here.

    Raises
    ------
    InputError
        ``FILE: strategy.names: unknown strategy 'x'; use one of baseline, emsfl, ...``.
    """
    from emsfl_sim.errors import InputError
    from emsfl_sim.strategies import REGISTRY

    for name in names:
        if name not in REGISTRY:
            raise InputError(f"unknown strategy {name!r}; use one of {', '.join(sorted(REGISTRY))}", file, field)
    return list(names)


def run_scenario(scenario: Scenario, strategies: Sequence[str] | None = None, out: str | Path | None = None,
                 fresh: bool = False, progress: bool = True, log: Any = print,
                 schedule: LinkSchedule | None = None) -> pd.DataFrame:
    """Run the scenario's strategies on one contact plan; returns the comparison table.

    ``schedule`` is a pre-built link schedule of this scenario (sweeps share one
    between points that differ only in learning parameters); None builds it.
    """
    directory = output_directory(scenario, out)
    names = check_scenario(scenario, strategies)
    with run_lock(directory):
        check_resume(scenario, directory, names, fresh)
        return _run_scenario(scenario, names, directory, fresh, progress, log, schedule)


def _run_scenario(scenario: Scenario, names: list[str], directory: Path, fresh: bool, progress: bool, log: Any,
                  schedule: LinkSchedule | None) -> pd.DataFrame:
    t0 = time.perf_counter()
    schedule = schedule if schedule is not None else build_schedule(scenario, background=can_start_child())
    streamed = schedule.streaming
    if streamed:
        log(f"link schedule: built in {schedule.extras['chunk_s'] / 3600:g}-hour parts while the event loop runs, over "
            f"{schedule.duration_s / 3600:.1f} h, orbital cycle {schedule.cycle_s / 60:.1f} min")
    else:
        _log_schedule(schedule, log, f"{time.perf_counter() - t0:.1f} s")
    write_run_metadata(scenario, directory, schedule)
    if not streamed:  # a streamed schedule's table is written once the loop has built it
        write_links(scenario, directory, schedule)
    world = None
    summaries = []
    printed: set[str] = set()
    for name in names:
        sub = directory / name
        if (sub / "summary.json").exists() and not fresh:
            log(f"{name}: finished results found in {sub}, skipping (use --fresh to rerun)")
            summaries.append(json.loads((sub / "summary.json").read_text()))
            continue
        if world is None:
            world = build_world(scenario, log=log, work_dir=directory / "models")
        summaries.append(run_strategy(scenario, schedule, world, name, sub, progress, log, resume=not fresh))
        for warning in summaries[-1].get("warnings", []):
            if warning not in printed:  # one line per cause (summary.json of every strategy lists it)
                printed.add(warning)
                scope = "" if warning.startswith(SCENARIO_WIDE_WARNINGS) else f"{name}: "
                log(f"{scenario.source_file or scenario.name}: {scope}warning: {warning}")
    if streamed:
        write_links(scenario, directory, schedule)
        _log_schedule(schedule, log, "built alongside the event loop")
    table = pd.DataFrame(summaries).reindex(columns=COMPARISON_COLUMNS)
    write_table(table, directory / "comparison", scenario.output.formats)
    return table
