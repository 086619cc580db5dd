"""Results across seeds: --seeds parsing, the summary statistics, the band plot and run_seeds.

Nothing here trains a model: the summaries are checked on hand-made per-seed
tables against hand-computed numbers, and run_seeds runs with a fake
``runner.run_scenario`` that writes tiny result files.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from emsfl_sim.cli.main import main
from emsfl_sim.errors import InputError
from emsfl_sim.report.plots import plot_accuracy_band
from emsfl_sim.report.run_plots import plot_seeds_directory
from emsfl_sim.run import runner
from emsfl_sim.run.seeds import (
    MAX_SEEDS,
    SUMMARY_COLUMNS,
    parse_seeds,
    run_seeds,
    seed_scenario,
    summarise_seeds,
    wilson_ci95,
)
from emsfl_sim.scenario import load_scenario, validate_raw

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# Student-t quantiles t_{0.975, df} from the tables (df = n - 1): the 95 % half-width is
# t_{0.975, n-1} * std(ddof=1) / sqrt(n).
T975_DF1 = 12.706204736
T975_DF2 = 4.302652730
Z975 = 1.959963985  # the normal quantile of the Wilson interval

RAW: dict[str, Any] = {
    "name": "tiny-seeds",
    "seed": 0,
    "time": {"mode": "idealised", "orbital_cycles": 2, "slot_duration_s": 600},
    "clusters": [
        {"name": "a", "lat_deg": 48.1, "lon_deg": 11.6, "devices": 1, "domain": "astronomy"},
        {"name": "b", "lat_deg": 39.7, "lon_deg": -105.0, "devices": 1, "domain": "medicine"},
    ],
    "model": {"preset": "tiny"},
    "strategy": {"names": ["baseline", "emsfl"]},
    "evaluation": {"target_accuracy": 0.5},
}


def write_scenario(folder: Path, raw: dict[str, Any], name: str = "s.yaml") -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def row(summary: pd.DataFrame, strategy: str, metric: str) -> pd.Series:
    hit = summary[(summary["strategy"] == strategy) & (summary["metric"] == metric)]
    assert len(hit) == 1, (strategy, metric, hit)
    return hit.iloc[0]


# ------------------------------------------------------------------ parse_seeds
@pytest.mark.parametrize(("text", "seeds"), [
    ("0-4", [0, 1, 2, 3, 4]),
    ("0,2,5", [0, 2, 5]),
    ("1-3,7", [1, 2, 3, 7]),
    ("3", [3]),
    (" 7 , 1 - 2 ", [7, 1, 2]),
    ("5-5", [5]),
    (f"0-{MAX_SEEDS - 1}", list(range(MAX_SEEDS))),
])
def test_parse_seeds_accepts_ranges_and_lists(text: str, seeds: list[int]) -> None:
    assert parse_seeds(text) == seeds


@pytest.mark.parametrize(("text", "words"), [
    ("", "is empty"),
    ("   ", "is empty"),
    ("-1", "non-negative"),
    ("0,-2", "non-negative"),
    ("4-0", "reversed"),
    ("1,1", "given twice"),
    ("1-3,2", "given twice"),
    ("a", "neither an integer nor a range"),
    ("1.5", "neither an integer nor a range"),
    ("1-b", "neither an integer nor a range"),
    ("1,,2", "empty item"),
    (f"0-{MAX_SEEDS}", "more than the limit of 1000"),
    ("0-999999999999", "more than the limit"),
])
def test_parse_seeds_rejects_bad_specs_in_one_line(text: str, words: str) -> None:
    with pytest.raises(InputError) as info:
        parse_seeds(text)
    message = str(info.value)
    assert message.startswith("--seeds: ")
    assert words in message
    assert "\n" not in message
    assert info.value.field == "--seeds"


def test_reversed_range_message_says_what_to_write() -> None:
    with pytest.raises(InputError, match="write it low-high, e.g. 0-4"):
        parse_seeds("4-0")


# ------------------------------------------------------------ scenario seeds
def test_scenario_seeds_field_is_validated() -> None:
    assert validate_raw(RAW).seeds is None
    assert validate_raw({**RAW, "seeds": [0, 3, 1]}).seeds == [0, 3, 1]
    for bad, words in ([], "is empty"), ([1, -1], "non-negative"), ([2, 2], "listed twice"), \
            (list(range(1001)), "more than the limit of 1000"):
        with pytest.raises(InputError) as info:
            validate_raw({**RAW, "seeds": bad}, file="s.yaml")
        assert str(info.value).startswith("s.yaml: seeds: ")
        assert words in str(info.value)


def test_seed_scenario_copies_with_the_seed_and_keeps_the_source_file(tmp_path: Path) -> None:
    scenario = load_scenario(write_scenario(tmp_path, {**RAW, "seed": 9, "seeds": [1, 2]}))
    copy = seed_scenario(scenario, 2)
    assert copy.seed == 2 and copy.seeds is None
    assert copy.source_file == scenario.source_file == str(tmp_path / "s.yaml")
    assert scenario.seed == 9 and scenario.seeds == [1, 2]  # the original is unchanged
    assert copy.clusters == scenario.clusters


# ----------------------------------------------------------- summarise_seeds
def per_seed_table() -> pd.DataFrame:
    """Three seeds of baseline and emsfl; baseline misses the target on seed 1."""
    return pd.DataFrame([
        {"seed": 0, "strategy": "baseline", "final_accuracy": 0.5, "best_accuracy": 0.55, "time_to_target_s": 7200.0,
         "cycles_to_target": 6.0, "uplink_mb": 10.0, "local_rounds": 30, "optimizer_steps": 120},
        {"seed": 1, "strategy": "baseline", "final_accuracy": 0.6, "best_accuracy": 0.6, "time_to_target_s": None,
         "cycles_to_target": None, "uplink_mb": 10.0, "local_rounds": 30, "optimizer_steps": 120},
        {"seed": 2, "strategy": "baseline", "final_accuracy": 0.7, "best_accuracy": 0.7, "time_to_target_s": 3600.0,
         "cycles_to_target": 3.0, "uplink_mb": 10.0, "local_rounds": 30, "optimizer_steps": 120},
        {"seed": 0, "strategy": "emsfl", "final_accuracy": 0.62, "best_accuracy": 0.7, "time_to_target_s": 3600.0,
         "cycles_to_target": 3.0, "uplink_mb": 4.0, "local_rounds": 40, "optimizer_steps": None},
        {"seed": 1, "strategy": "emsfl", "final_accuracy": 0.64, "best_accuracy": 0.7, "time_to_target_s": 1800.0,
         "cycles_to_target": 1.5, "uplink_mb": 4.0, "local_rounds": 40, "optimizer_steps": float("nan")},
        {"seed": 2, "strategy": "emsfl", "final_accuracy": 0.66, "best_accuracy": 0.7, "time_to_target_s": 2700.0,
         "cycles_to_target": 2.25, "uplink_mb": 4.0, "local_rounds": 40, "optimizer_steps": 200},
    ])


def test_summary_has_the_documented_columns_and_metrics() -> None:
    summary = summarise_seeds(per_seed_table(), duration_s=14400.0)
    assert list(summary.columns) == SUMMARY_COLUMNS
    assert SUMMARY_COLUMNS[:6] == ["strategy", "metric", "mean", "ci95_low", "ci95_high", "n_seeds"]
    base = ["final_accuracy", "best_accuracy", "time_to_target_s", "cycles_to_target", "uplink_mb",
            "local_rounds", "optimizer_steps", "reached_target"]
    assert list(summary[summary["strategy"] == "baseline"]["metric"]) == base
    assert list(summary[summary["strategy"] == "emsfl"]["metric"]) == [
        *base, "time_to_target_ratio", "time_to_target_ratio_bound"]
    assert "tokens_processed" not in set(summary["metric"])  # absent columns are not summarised
    assert summary["n_seeds"].dtype.kind == "i"


def test_optional_metrics_without_any_value_are_left_out() -> None:
    table = per_seed_table().assign(tokens_processed=None, samples_seen=float("nan"), wasted_uplink_mb=0.5)
    metrics = set(summarise_seeds(table)["metric"])
    assert "wasted_uplink_mb" in metrics
    assert not {"tokens_processed", "samples_seen", "unique_samples_fraction"} & metrics


def test_means_and_student_t_intervals() -> None:
    summary = summarise_seeds(per_seed_table())
    # baseline final accuracy 0.5, 0.6, 0.7: mean 0.6, std 0.1, half = t(0.975, 2) * 0.1 / sqrt(3) = 0.2484138
    acc = row(summary, "baseline", "final_accuracy")
    assert acc["n_seeds"] == 3
    assert acc["mean"] == pytest.approx(0.6)
    assert acc["std"] == pytest.approx(0.1)
    assert T975_DF2 * 0.1 / math.sqrt(3) == pytest.approx(0.2484138, abs=1e-7)
    assert acc["ci95_low"] == pytest.approx(0.6 - 0.2484138, abs=1e-6)
    assert acc["ci95_high"] == pytest.approx(0.6 + 0.2484138, abs=1e-6)
    # baseline time to target: 7200 and 3600 (seed 1 missing is skipped): mean 5400, std 1800 * sqrt(2),
    # half = t(0.975, 1) * 1800 * sqrt(2) / sqrt(2) = 12.706205 * 1800 = 22871.17
    time = row(summary, "baseline", "time_to_target_s")
    assert time["n_seeds"] == 2
    assert time["mean"] == pytest.approx(5400.0)
    assert time["ci95_low"] == pytest.approx(5400.0 - T975_DF1 * 1800.0, rel=1e-8)
    assert time["ci95_high"] == pytest.approx(5400.0 + 22871.17, abs=0.01)
    # constant values: zero-width interval
    uplink = row(summary, "emsfl", "uplink_mb")
    assert (uplink["mean"], uplink["ci95_low"], uplink["ci95_high"]) == pytest.approx((4.0, 4.0, 4.0))
    # emsfl optimizer_steps: None and NaN skipped, one value left -> NaN bounds
    steps = row(summary, "emsfl", "optimizer_steps")
    assert steps["n_seeds"] == 1 and steps["mean"] == 200
    assert math.isnan(steps["ci95_low"]) and math.isnan(steps["ci95_high"]) and math.isnan(steps["std"])


def test_reached_target_is_a_fraction_with_a_wilson_interval() -> None:
    summary = summarise_seeds(per_seed_table())
    # Wilson: (p + z^2/2n -+ z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n), z = 1.959964
    # baseline 2 of 3: p = 2/3, denom = 1 + 3.841459/3 = 2.280486, centre = (0.666667 + 0.640243) / 2.280486
    # = 0.573081, half = 1.959964 * sqrt(0.074074 + 0.106707) / 2.280486 = 0.365422 -> [0.207660, 0.938508]
    base = row(summary, "baseline", "reached_target")
    assert base["n_seeds"] == 3
    assert base["mean"] == pytest.approx(2 / 3)
    assert (base["ci95_low"], base["ci95_high"]) == pytest.approx((0.207660, 0.938508), abs=1e-6)
    # emsfl 3 of 3: p = 1, centre = (1 + 0.640243) / 2.280486 = 0.719250, half = 0.280750 -> [0.438503, 1]
    ems = row(summary, "emsfl", "reached_target")
    assert ems["mean"] == 1.0
    assert (ems["ci95_low"], ems["ci95_high"]) == pytest.approx((0.438503, 1.0), abs=1e-6)
    z = Z975
    assert wilson_ci95(0, 4)[0] == 0.0
    assert wilson_ci95(0, 4)[1] == pytest.approx((z * z / 8 + z * math.sqrt(z * z / 64)) / (1 + z * z / 4))


def test_time_to_target_ratio_pairs_seeds_where_both_reached() -> None:
    summary = summarise_seeds(per_seed_table(), duration_s=14400.0)
    # both reached on seeds 0 (3600 / 7200 = 0.5) and 2 (2700 / 3600 = 0.75): mean 0.625, std 0.25 / sqrt(2),
    # half = t(0.975, 1) * (0.25 / sqrt(2)) / sqrt(2) = 12.706205 * 0.125 = 1.588276
    ratio = row(summary, "emsfl", "time_to_target_ratio")
    assert ratio["n_seeds"] == 2
    assert ratio["mean"] == pytest.approx(0.625)
    assert (ratio["ci95_low"], ratio["ci95_high"]) == pytest.approx((0.625 - 1.588276, 0.625 + 1.588276),
                                                                     abs=1e-6)
    # bound: seed 1's unreached baseline counts as 14400 s -> 1800 / 14400 = 0.125; ratios 0.5, 0.125, 0.75:
    # mean 0.458333, std sqrt((0.041667^2 + 0.333333^2 + 0.291667^2) / 2) = 0.314576,
    # half = t(0.975, 2) * 0.314576 / sqrt(3) = 0.781451
    bound = row(summary, "emsfl", "time_to_target_ratio_bound")
    assert bound["n_seeds"] == 3
    assert bound["mean"] == pytest.approx(0.458333, abs=1e-6)
    assert bound["std"] == pytest.approx(0.314576, abs=1e-6)
    assert (bound["ci95_low"], bound["ci95_high"]) == pytest.approx((0.458333 - 0.781451, 0.458333 + 0.781451),
                                                                     abs=1e-5)
    assert not ((summary["strategy"] == "baseline") & summary["metric"].str.startswith("time_to_target_ratio")).any()


def test_no_bound_without_duration_and_no_ratio_without_baseline() -> None:
    table = per_seed_table()
    summary = summarise_seeds(table)
    assert "time_to_target_ratio" in set(summary["metric"])
    assert "time_to_target_ratio_bound" not in set(summary["metric"])
    only = summarise_seeds(table[table["strategy"] == "emsfl"], duration_s=14400.0)
    assert not only["metric"].str.startswith("time_to_target_ratio").any()


def test_no_values_gives_nan_mean_and_zero_seeds() -> None:
    table = pd.DataFrame([
        {"seed": 0, "strategy": "baseline", "final_accuracy": 0.3, "time_to_target_s": None},
        {"seed": 0, "strategy": "emsfl", "final_accuracy": 0.4, "time_to_target_s": 600.0},
    ])
    summary = summarise_seeds(table, duration_s=3600.0)
    for strategy, metric in [("baseline", "time_to_target_s"), ("baseline", "best_accuracy"),
                             ("emsfl", "uplink_mb"), ("emsfl", "time_to_target_ratio")]:
        r = row(summary, strategy, metric)
        assert r["n_seeds"] == 0 and math.isnan(r["mean"]), (strategy, metric)
    one = row(summary, "emsfl", "final_accuracy")
    assert one["n_seeds"] == 1 and one["mean"] == 0.4 and math.isnan(one["ci95_low"])
    bound = row(summary, "emsfl", "time_to_target_ratio_bound")  # 600 / 3600: only the baseline failed
    assert bound["n_seeds"] == 1 and bound["mean"] == pytest.approx(1 / 6)


def test_summarise_needs_seed_and_strategy() -> None:
    with pytest.raises(ValueError, match="seed"):
        summarise_seeds(pd.DataFrame({"strategy": ["a"], "final_accuracy": [0.1]}))


# -------------------------------------------------------------------- plot
def band_metrics(seeds: list[int]) -> pd.DataFrame:
    rows = []
    for strategy, slope in (("baseline", 0.05), ("emsfl", 0.1)):
        for seed in seeds:
            for cycle in range(5):
                rows.append({"strategy": strategy, "seed": seed, "cycle": cycle + 1e-9 * seed,
                             "accuracy": min(1.0, 0.1 + slope * cycle + 0.01 * seed)})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("seeds", [[0, 1, 2], [4]])
def test_plot_accuracy_band_writes_a_png(tmp_path: Path, seeds: list[int]) -> None:
    path = tmp_path / "band.png"
    assert plot_accuracy_band(band_metrics(seeds), path, target=0.3) is None
    assert path.read_bytes()[:8] == PNG_MAGIC


# ------------------------------------------------------------------ run_seeds
class FakeRunner:
    """Stands in for runner.run_scenario: writes run.json, metrics and summary.json, returns a table."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, list[int] | None, Path, list[str] | None]] = []

    def __call__(self, scenario: Any, strategies: Any = None, out: Any = None, fresh: bool = False,
                 progress: bool = True, log: Any = print, schedule: Any = None) -> pd.DataFrame:
        directory = Path(out)
        self.calls.append((scenario.seed, scenario.seeds, directory, strategies))
        names = list(strategies or scenario.strategy.names)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "run.json").write_text(json.dumps({"duration_s": 14400.0, "seed": scenario.seed}))
        rows = []
        for i, name in enumerate(names):
            sub = directory / name
            sub.mkdir(exist_ok=True)
            acc = [0.1, 0.3 + 0.1 * i + 0.01 * scenario.seed, 0.6]
            pd.DataFrame({"strategy": name, "time_s": [0.0, 3600.0, 7200.0], "cycle": [0.0, 1.0, 2.0],
                          "accuracy": acc}).to_csv(sub / "metrics.csv", index=False)
            (sub / "summary.json").write_text(json.dumps({"strategy": name, "optimizer_steps": 10 * (i + 1)}))
            reached = 3600.0 if acc[1] >= 0.4 else (None if scenario.seed == 5 else 7200.0)
            rows.append({"strategy": name, "time_to_target_s": reached,
                         "cycles_to_target": None if reached is None else reached / 3600.0,
                         "final_accuracy": acc[-1], "best_accuracy": max(acc), "uplink_mb": 5.0 + i,
                         "local_rounds": 3})
        return pd.DataFrame(rows).reindex(columns=runner.COMPARISON_COLUMNS)


@pytest.fixture
def fake_runner(monkeypatch: pytest.MonkeyPatch) -> FakeRunner:
    fake = FakeRunner()
    monkeypatch.setattr(runner, "run_scenario", fake)
    return fake


def test_run_seeds_layout_and_files(tmp_path: Path, fake_runner: FakeRunner) -> None:
    scenario = load_scenario(write_scenario(tmp_path, {**RAW, "seed": 7}))
    out = tmp_path / "run"
    messages: list[str] = []
    summary = run_seeds(scenario, [0, 2, 5], out=out, progress=False, log=messages.append)
    assert not (out / "accuracy_seeds.png").exists()  # plotting belongs to report/, called by the CLI
    assert plot_seeds_directory(out, scenario.evaluation.target_accuracy) == out / "accuracy_seeds.png"
    assert [(seed, seeds, path) for seed, seeds, path, _ in fake_runner.calls] == [
        (0, None, out / "seed-0"), (2, None, out / "seed-2"), (5, None, out / "seed-5")]
    assert any("seed 2 (2/3)" in m for m in messages)
    for seed in (0, 2, 5):
        assert (out / f"seed-{seed}" / "emsfl" / "metrics.csv").is_file()
    for file in ("seeds_comparison.csv", "seeds_comparison.parquet", "seeds_summary.csv", "seeds_summary.parquet"):
        assert (out / file).is_file(), file
    assert (out / "accuracy_seeds.png").read_bytes()[:8] == PNG_MAGIC  # output.plots is true by default
    per_seed = pd.read_csv(out / "seeds_comparison.csv")
    assert list(per_seed.columns[:2]) == ["seed", "strategy"]
    assert list(per_seed["seed"]) == [0, 0, 2, 2, 5, 5]
    assert list(per_seed["optimizer_steps"]) == [10, 20] * 3  # taken from summary.json
    written = pd.read_csv(out / "seeds_summary.csv")
    assert list(written.columns) == SUMMARY_COLUMNS
    assert len(written) == len(summary)
    assert row(summary, "emsfl", "uplink_mb")["mean"] == 6.0
    assert row(summary, "emsfl", "optimizer_steps")["n_seeds"] == 3
    # the fake's emsfl reaches at 3600 s, its baseline at 7200 s except on seed 5 (never)
    assert row(summary, "baseline", "reached_target")["mean"] == pytest.approx(2 / 3)
    ratio = row(summary, "emsfl", "time_to_target_ratio")
    assert (ratio["mean"], ratio["n_seeds"]) == (pytest.approx(0.5), 2)
    # bound: seed 5's baseline counts as the 14400 s of run.json -> ratios 0.5, 0.5, 0.25
    bound = row(summary, "emsfl", "time_to_target_ratio_bound")
    assert (bound["mean"], bound["n_seeds"]) == (pytest.approx(1.25 / 3), 3)
    assert scenario.seed == 7


def test_run_seeds_plots_and_honours_formats(tmp_path: Path, fake_runner: FakeRunner) -> None:
    raw = {**RAW, "output": {"plots": True, "formats": ["csv"]}}
    scenario = load_scenario(write_scenario(tmp_path, raw))
    run_seeds(scenario, [1, 2], strategies=["emsfl"], out=tmp_path / "run", progress=False, log=lambda _: None)
    plot_seeds_directory(tmp_path / "run", scenario.evaluation.target_accuracy)
    assert [c[3] for c in fake_runner.calls] == [["emsfl"], ["emsfl"]]
    assert (tmp_path / "run" / "accuracy_seeds.png").read_bytes()[:8] == PNG_MAGIC
    assert (tmp_path / "run" / "seeds_summary.csv").is_file()
    assert not (tmp_path / "run" / "seeds_summary.parquet").exists()


def test_run_seeds_default_directory_and_bad_seeds(tmp_path: Path, fake_runner: FakeRunner,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    scenario = load_scenario(write_scenario(tmp_path, {**RAW, "output": {"plots": False}}))
    run_seeds(scenario, [3], progress=False, log=lambda _: None)
    assert fake_runner.calls[0][2] == Path("runs/tiny-seeds/seed-3")
    assert (tmp_path / "runs" / "tiny-seeds" / "seeds_summary.csv").is_file()
    for bad in ([], [1, 1], [-1]):
        with pytest.raises(InputError):
            run_seeds(scenario, bad, progress=False, log=lambda _: None)


def test_run_seeds_refuses_unknown_strategies_before_any_seed(tmp_path: Path, fake_runner: FakeRunner) -> None:
    path = write_scenario(tmp_path, {**RAW, "strategy": {"names": ["emsfl", "fedavg"]}})
    scenario = load_scenario(path)
    with pytest.raises(InputError) as info:
        run_seeds(scenario, [0, 1], out=tmp_path / "run", progress=False, log=lambda _: None)
    assert str(info.value) == f"{path}: strategy.names: unknown strategy 'fedavg'; use one of baseline, emsfl, emsfl_enhanced"
    with pytest.raises(InputError, match="unknown strategy 'nope'"):
        run_seeds(load_scenario(write_scenario(tmp_path, RAW, "ok.yaml")), [0], strategies=["nope"],
                  out=tmp_path / "run", progress=False, log=lambda _: None)
    assert not fake_runner.calls and not (tmp_path / "run").exists()


# ------------------------------------------------------------------------ CLI
def test_cli_seed_and_seeds_conflict_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_scenario(tmp_path, RAW)
    assert main(["run", str(path), "--seed", "1", "--seeds", "0-4"]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("error: --seeds: --seed and --seeds cannot be combined")


def test_cli_bad_seeds_spec_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_scenario(tmp_path, RAW)
    assert main(["run", str(path), "--seeds", "4-0"]) == 1
    err = capsys.readouterr().err
    assert err.strip().splitlines() == ["error: --seeds: range '4-0' is reversed; write it low-high, e.g. 0-4"]


def test_cli_runs_seeds_and_prints_both_tables(tmp_path: Path, fake_runner: FakeRunner,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    path = write_scenario(tmp_path, {**RAW, "output": {"plots": False}})
    out = tmp_path / "run"
    assert main(["run", str(path), "--seeds", "0-1", "--out", str(out), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert [c[0] for c in fake_runner.calls] == [0, 1]
    header = text.splitlines()[0].split()
    assert header[:3] == ["seed", "strategy", "time_to_target_h"]
    assert "reached_target" in text and "ci95_low" in text and "time_to_target_ratio_bound" in text
    assert f"results: {out}" in text


def test_cli_uses_scenario_seeds_unless_seed_is_given(tmp_path: Path, fake_runner: FakeRunner,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    path = write_scenario(tmp_path, {**RAW, "seeds": [4, 6], "output": {"plots": False}})
    assert main(["run", str(path), "--out", str(tmp_path / "a"), "--no-progress"]) == 0
    assert [c[0] for c in fake_runner.calls] == [4, 6]
    assert (tmp_path / "a" / "seeds_summary.csv").is_file()
    fake_runner.calls.clear()
    assert main(["run", str(path), "--out", str(tmp_path / "b"), "--seeds", "1", "--no-progress"]) == 0
    assert [c[0] for c in fake_runner.calls] == [1]  # --seeds overrides the scenario's list
    fake_runner.calls.clear()
    assert main(["run", str(path), "--out", str(tmp_path / "c"), "--seed", "9", "--no-progress"]) == 0
    assert [(c[0], c[2]) for c in fake_runner.calls] == [(9, tmp_path / "c")]  # one plain run
    assert not (tmp_path / "c" / "seeds_summary.csv").exists()
    capsys.readouterr()


def test_per_seed_at_target_recomputes_times_from_the_metrics(tmp_path: Path, fake_runner: FakeRunner) -> None:
    from emsfl_sim.run.seeds import per_seed_at_target

    scenario = load_scenario(write_scenario(tmp_path, RAW))
    out = tmp_path / "run"
    run_seeds(scenario, [0, 1], out=out, progress=False, log=lambda _: None)
    # the fake's accuracies are [0.1, 0.3 + 0.1 i + 0.01 seed, 0.6] at 0, 3600, 7200 s
    low = per_seed_at_target(out, 0.2)
    assert list(low["time_to_target_s"]) == [3600.0] * 4 and list(low["cycles_to_target"]) == [1.0] * 4
    high = per_seed_at_target(out, 0.39)
    assert list(high["time_to_target_s"]) == [7200.0, 3600.0, 7200.0, 3600.0]  # strategy i = 1 is at 0.4+
    never = per_seed_at_target(out, 0.7)
    assert never["time_to_target_s"].isna().all()
