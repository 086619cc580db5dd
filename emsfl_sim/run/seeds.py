"""Results across seeds: run one scenario once per seed and summarise with 95 % intervals.

Every seed runs the full scenario (all strategies, one contact plan and one
learning world per seed) into ``<out>/seed-<N>/`` through
:func:`emsfl_sim.run.runner.run_scenario`, so a rerun resumes finished seeds
and strategies. The per-seed comparison tables are joined into
``seeds_comparison`` and summarised into ``seeds_summary`` (one row per
strategy and metric: mean, Student-t 95 % interval, number of seeds).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from emsfl_sim.errors import InputError
from emsfl_sim.results import has_table, read_table, write_table
from emsfl_sim.scenario import Scenario

#: Most seeds one call runs (the same limit as the scenario's ``seeds`` field).
MAX_SEEDS = 1000

#: Columns of ``seeds_summary`` (``std`` is the sample standard deviation, ddof 1).
SUMMARY_COLUMNS = ["strategy", "metric", "mean", "ci95_low", "ci95_high", "n_seeds", "std"]

#: Metrics summarised for every strategy (a row with ``n_seeds`` 0 when the column is absent).
BASE_METRICS = ["final_accuracy", "best_accuracy", "time_to_target_s", "cycles_to_target", "uplink_mb"]

#: Metrics summarised when the per-seed table has the column with at least one value.
OPTIONAL_METRICS = ["wasted_uplink_mb", "local_rounds", "optimizer_steps", "tokens_processed", "samples_seen",
                    "unique_samples_fraction"]

#: The strategy the time-to-target ratios are taken against.
BASELINE = "baseline"

_SEEDS_HINT = "use a range 0-4, a list 0,2,5 or both, e.g. 1-3,7"
_NUMBER = re.compile(r"^\d+$")
_RANGE = re.compile(r"^(\d+)\s*-\s*(\d+)$")


# ------------------------------------------------------------------ parsing
def parse_seeds(text: str) -> list[int]:
    """Parse a ``--seeds`` specification into a list of seeds.

    Parameters
    ----------
    text:
        Comma-separated items, each a non-negative integer (``3``) or an
        inclusive range ``A-B`` with ``A <= B`` (``0-4``), e.g. ``"1-3,7"``.

    Returns
    -------
    list[int]
        The seeds in the order given (``"1-3,7"`` -> ``[1, 2, 3, 7]``).

    Raises
    ------
    InputError
        (field ``--seeds``) for an empty specification or item, a negative
        number, a reversed range (``4-0``), a seed given twice, something that
        is not an integer, or more than :data:`MAX_SEEDS` seeds.
    """
    spec = text.strip()
    if not spec:
        raise InputError(f"is empty; {_SEEDS_HINT}", field="--seeds")
    items = [item.strip() for item in spec.split(",")]
    spans: list[tuple[int, int]] = []
    for item in items:
        if not item:
            raise InputError(f"empty item in {text!r}; {_SEEDS_HINT}", field="--seeds")
        if item.startswith("-"):
            raise InputError(f"seeds must be non-negative (got {item!r} in {text!r}); {_SEEDS_HINT}",
                             field="--seeds")
        if _NUMBER.match(item):
            spans.append((int(item), int(item)))
            continue
        match = _RANGE.match(item)
        if match is None:
            raise InputError(f"{item!r} is neither an integer nor a range A-B (in {text!r}); {_SEEDS_HINT}",
                             field="--seeds")
        low, high = int(match.group(1)), int(match.group(2))
        if low > high:
            raise InputError(f"range {item!r} is reversed; write it low-high, e.g. {high}-{low}", field="--seeds")
        spans.append((low, high))
    count = sum(high - low + 1 for low, high in spans)
    if count > MAX_SEEDS:
        raise InputError(f"{text!r} gives {count} seeds, more than the limit of {MAX_SEEDS}; run fewer seeds",
                         field="--seeds")
    seeds: list[int] = []
    seen: set[int] = set()
    for low, high in spans:
        for seed in range(low, high + 1):
            if seed in seen:
                raise InputError(f"seed {seed} is given twice in {text!r}; give each seed once", field="--seeds")
            seen.add(seed)
            seeds.append(seed)
    return seeds


def check_seeds(seeds: Sequence[int], field: str = "seeds") -> list[int]:
    """The seeds as a list of ints after the checks of :func:`parse_seeds` (non-empty, >= 0, unique, limit).

    Raises
    ------
    InputError
        Naming ``field`` and what is wrong.
    """
    out = [int(s) for s in seeds]
    if not out:
        raise InputError(f"no seeds; {_SEEDS_HINT}", field=field)
    if len(out) > MAX_SEEDS:
        raise InputError(f"{len(out)} seeds is more than the limit of {MAX_SEEDS}; run fewer seeds", field=field)
    if min(out) < 0:
        raise InputError(f"seeds must be non-negative (got {min(out)})", field=field)
    if len(set(out)) != len(out):
        twice = next(s for s in out if out.count(s) > 1)
        raise InputError(f"seed {twice} is given twice; give each seed once", field=field)
    return out


# ------------------------------------------------------------------ running
def seed_scenario(scenario: Scenario, seed: int) -> Scenario:
    """A copy of ``scenario`` that runs just ``seed``.

    The copy has ``seed`` set and ``seeds`` cleared (its ``scenario.yaml``
    then reruns that one seed); the source file of the original is kept.

    Parameters
    ----------
    scenario:
        The validated scenario.
    seed:
        The seed of the copy.

    Returns
    -------
    Scenario
        The copy (``scenario`` itself is not changed).
    """
    copy = scenario.model_copy(update={"seed": int(seed), "seeds": None})
    if copy.source_file is None and scenario.source_file is not None:
        copy._source_file = scenario.source_file
    return copy


def run_seeds(scenario: Scenario, seeds: Sequence[int], strategies: Sequence[str] | None = None,
              out: str | Path | None = None, fresh: bool = False, progress: bool = True,
              log: Callable[[str], Any] = print) -> pd.DataFrame:
    """Run the scenario once per seed and summarise the strategies across seeds.

    Parameters
    ----------
    scenario:
        The scenario (its own ``seed`` and ``seeds`` are ignored).
    seeds:
        The seeds to run, in order; non-empty, non-negative and unique.
    strategies:
        Strategy names (default: the scenario's ``strategy.names``).
    out:
        The directory of the whole run (default: the scenario's
        ``output.directory``); seed ``N`` runs in ``<out>/seed-<N>/``.
    fresh:
        Rerun finished strategies instead of resuming them.
    progress:
        Show the progress bars of the strategy runs.
    log:
        Receives one-line progress messages.

    Returns
    -------
    pandas.DataFrame
        The summary table of :func:`summarise_seeds`.

    Notes
    -----
    Writes, in the formats of ``scenario.output.formats``,
    ``<out>/seeds_comparison`` (the per-seed comparison tables with a ``seed``
    column first; values of :data:`OPTIONAL_METRICS` that the comparison
    table lacks are taken from the strategies' ``summary.json``) and
    ``<out>/seeds_summary`` (plots: ``report.plot_seeds_directory``). The ``time_to_target_ratio_bound`` rows
    use the simulated duration from the seeds' ``run.json``.
    """
    from emsfl_sim.run import runner

    seeds = check_seeds(seeds)
    runner.check_strategy_names(strategies or scenario.strategy.names, scenario.source_file)  # before any seed runs
    directory = Path(out) if out else runner.output_directory(scenario, None)
    directory.mkdir(parents=True, exist_ok=True)
    tables = []
    for index, seed in enumerate(seeds, start=1):
        sub = directory / f"seed-{seed}"
        log(f"seed {seed} ({index}/{len(seeds)}) -> {sub}")
        table = runner.run_scenario(seed_scenario(scenario, seed), strategies, sub, fresh=fresh, progress=progress,
                                    log=log)
        table = _with_summary_extras(table, sub)
        tables.append(table.assign(seed=seed))
    per_seed = pd.concat(tables, ignore_index=True)
    per_seed = per_seed[["seed", *[c for c in per_seed.columns if c != "seed"]]]
    formats = scenario.output.formats
    write_table(per_seed, directory / "seeds_comparison", formats)
    summary = summarise_seeds(per_seed, duration_s=_duration_s(scenario, directory, seeds))
    write_table(summary, directory / "seeds_summary", formats)
    return summary


def _with_summary_extras(table: pd.DataFrame, directory: Path) -> pd.DataFrame:
    """Fill optional metrics the comparison table lacks (or has empty) from each strategy's summary.json."""
    if "strategy" not in table.columns:
        return table
    table = table.copy()
    summaries = []
    for name in table["strategy"]:
        path = directory / str(name) / "summary.json"
        summaries.append(json.loads(path.read_text()) if path.is_file() else {})
    for column in OPTIONAL_METRICS:
        current = table[column] if column in table.columns else pd.Series(None, index=table.index, dtype=object)
        filled = [value if pd.notna(value) else summary.get(column)
                  for value, summary in zip(current, summaries, strict=True)]
        if column in table.columns or any(v is not None for v in filled):
            table[column] = pd.to_numeric(pd.Series(filled, index=table.index, dtype=object), errors="coerce")
    return table


def _duration_s(scenario: Scenario, directory: Path, seeds: Sequence[int]) -> float | None:
    """The simulated duration: from a seed's run.json, else the scenario's time.duration_s."""
    for seed in seeds:
        path = directory / f"seed-{seed}" / "run.json"
        if path.is_file():
            value = json.loads(path.read_text()).get("duration_s")
            if value is not None:
                return float(value)
    return scenario.time.duration_s


def seed_metrics(directory: Path, per_seed: pd.DataFrame) -> pd.DataFrame:
    """The metrics tables of every seed and strategy, concatenated with a ``seed`` column."""
    frames = []
    for seed, strategy in per_seed[["seed", "strategy"]].itertuples(index=False):
        stem = directory / f"seed-{seed}" / str(strategy) / "metrics"
        if has_table(stem):
            frames.append(read_table(stem).assign(seed=seed, strategy=str(strategy)))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["strategy", "seed", "cycle",
                                                                                      "accuracy"])


# -------------------------------------------------------------- summarising
def mean_ci95(values: Sequence[float] | pd.Series) -> tuple[float, float, float, int, float]:
    """Mean, Student-t 95 % interval, count and sample std of the non-missing values.

    The half-width is ``t.ppf(0.975, n - 1) * std(ddof=1) / sqrt(n)``. With one
    value the bounds and std are NaN; with none the mean is NaN too.

    Returns
    -------
    tuple
        ``(mean, ci95_low, ci95_high, n, std)``.
    """
    from scipy import stats

    x = pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").astype(float)
    x = x[np.isfinite(x)]
    n = int(len(x))
    if n == 0:
        return math.nan, math.nan, math.nan, 0, math.nan
    mean = float(x.mean())
    if n == 1:
        return mean, math.nan, math.nan, 1, math.nan
    std = float(x.std(ddof=1))
    half = float(stats.t.ppf(0.975, n - 1)) * std / math.sqrt(n)
    return mean, mean - half, mean + half, n, std


def wilson_ci95(successes: int, n: int) -> tuple[float, float]:
    """Wilson score 95 % interval of a proportion ``successes / n`` (NaN for ``n`` 0).

    ``(p + z^2/2n -+ z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n)`` with
    ``z = norm.ppf(0.975)``.
    """
    from scipy import stats

    if n <= 0:
        return math.nan, math.nan
    z = float(stats.norm.ppf(0.975))
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def summarise_seeds(per_seed: pd.DataFrame, duration_s: float | None = None) -> pd.DataFrame:
    """Mean and 95 % interval of every metric of every strategy over the seeds.

    Parameters
    ----------
    per_seed:
        One row per seed and strategy, with columns ``seed``, ``strategy`` and
        the metrics (the comparison tables of the seeds, concatenated).
    duration_s:
        The simulated duration; given, the ``time_to_target_ratio_bound`` rows
        are added.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`SUMMARY_COLUMNS`: ``strategy, metric, mean, ci95_low,
        ci95_high, n_seeds, std``; strategies in order of appearance, for each
        the metrics :data:`BASE_METRICS`, those of :data:`OPTIONAL_METRICS`
        that ``per_seed`` has a value of (for any strategy), then
        ``reached_target`` and (for strategies
        other than ``baseline`` when a baseline is present)
        ``time_to_target_ratio`` and ``time_to_target_ratio_bound``.

    Notes
    -----
    * Metrics: the mean over the seeds that have a value (missing, NaN and
      infinite values are skipped; ``n_seeds`` counts the rest) and Student's
      t interval ``mean -+ t.ppf(0.975, n-1) * std(ddof=1) / sqrt(n)``; one
      seed gives NaN bounds, none a NaN mean and ``n_seeds`` 0. So
      ``time_to_target_s`` and ``cycles_to_target`` average the seeds that
      reached the target only (read them with ``reached_target``).
    * ``reached_target``: the fraction of the strategy's seeds whose
      ``time_to_target_s`` is not missing, with the **Wilson score** interval
      (defined for any ``n >= 1``; ``n_seeds`` is the number of seeds run).
    * ``time_to_target_ratio``: strategy time / baseline time on the seeds
      where both reached the target (``n_seeds`` those seeds; a baseline time
      of 0 makes the ratio undefined and that seed is left out).
    * ``time_to_target_ratio_bound``: the same over every seed both ran, an
      unreached time replaced by ``duration_s``: an upper bound on the true
      ratio of a seed where only the baseline failed, a lower bound where only
      the strategy failed, and 1 where both failed.
    """
    if "strategy" not in per_seed.columns or "seed" not in per_seed.columns:
        raise ValueError("per_seed needs the columns 'strategy' and 'seed'")
    strategies = list(dict.fromkeys(per_seed["strategy"].astype(str)))
    strategy_of = per_seed["strategy"].astype(str)
    metrics = [*BASE_METRICS, *[c for c in OPTIONAL_METRICS
                                if c in per_seed.columns and _numeric(per_seed[c]).notna().any()]]
    baseline = _times_by_seed(per_seed[strategy_of == BASELINE]) if BASELINE in strategies else None
    rows: list[dict[str, Any]] = []
    for strategy in strategies:
        group = per_seed[strategy_of == strategy]
        for metric in metrics:
            values = group[metric] if metric in group.columns else pd.Series([], dtype=float)
            rows.append(_row(strategy, metric, *mean_ci95(values)))
        times = _numeric(group["time_to_target_s"]) if "time_to_target_s" in group.columns else \
            pd.Series(math.nan, index=group.index)
        reached = times.notna().astype(float)
        n = int(len(reached))
        low, high = wilson_ci95(int(reached.sum()), n)
        rows.append(_row(strategy, "reached_target", float(reached.mean()) if n else math.nan, low, high, n,
                         float(reached.std(ddof=1)) if n > 1 else math.nan))
        if baseline is None or strategy == BASELINE:
            continue
        pair = pd.concat([_times_by_seed(group).rename("strategy"), baseline.rename("baseline")], axis=1,
                         join="inner")
        both = pair.dropna()
        rows.append(_row(strategy, "time_to_target_ratio", *mean_ci95(_ratio(both["strategy"], both["baseline"]))))
        if duration_s is not None:
            filled = pair.fillna(float(duration_s))
            rows.append(_row(strategy, "time_to_target_ratio_bound",
                             *mean_ci95(_ratio(filled["strategy"], filled["baseline"]))))
    table = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    table["n_seeds"] = table["n_seeds"].astype(int)
    return table


def _row(strategy: str, metric: str, mean: float, low: float, high: float, n: int, std: float) -> dict[str, Any]:
    return {"strategy": strategy, "metric": metric, "mean": mean, "ci95_low": low, "ci95_high": high,
            "n_seeds": n, "std": std}


def _numeric(values: pd.Series) -> pd.Series:
    out = pd.to_numeric(values.astype(object), errors="coerce").astype(float)
    return out.where(np.isfinite(out))


def _times_by_seed(group: pd.DataFrame) -> pd.Series:
    """time_to_target_s indexed by seed (first row of a seed that appears twice)."""
    times = _numeric(group["time_to_target_s"]) if "time_to_target_s" in group.columns else \
        pd.Series(math.nan, index=group.index)
    series = pd.Series(times.to_numpy(), index=group["seed"].to_numpy())
    return series[~series.index.duplicated(keep="first")]


def _ratio(numerator: pd.Series, denominator: pd.Series) -> pd.Series:
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = numerator.to_numpy(dtype=float) / denominator.to_numpy(dtype=float)
    return pd.Series(ratio[np.isfinite(ratio)])


def per_seed_at_target(directory: str | Path, target: float, consecutive: int = 1) -> pd.DataFrame:
    """The per-seed table of a finished ``--seeds`` run, time and cycles to another ``target``.

    Reads ``<directory>/seeds_comparison.csv`` and every seed's metrics tables and
    recomputes ``time_to_target_s`` and ``cycles_to_target`` with
    :func:`emsfl_sim.run.runner.first_reached` (``consecutive`` evaluations in a row), so
    a threshold can be studied without running the seeds again. Feed the result to
    :func:`summarise_seeds`.
    """
    from emsfl_sim.run.runner import first_reached

    directory = Path(directory)
    per_seed = read_table(directory / "seeds_comparison")
    metrics = seed_metrics(directory, per_seed)
    times, cycles = [], []
    for seed, strategy in per_seed[["seed", "strategy"]].itertuples(index=False):
        m = metrics[(metrics["seed"] == seed) & (metrics["strategy"] == str(strategy))].sort_values("time_s")
        hit = first_reached(m, target, consecutive)
        times.append(float(hit["time_s"].iloc[0]) if len(hit) else math.nan)
        cycles.append(float(hit["cycle"].iloc[0]) if len(hit) else math.nan)
    return per_seed.assign(time_to_target_s=times, cycles_to_target=cycles)
