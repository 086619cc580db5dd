"""Sweep runner: expansion, resume, failures, the combined table, the contact-plan cache, executors.

Most tests replace the per-point simulation by a fake that writes the files a
run writes (fast); one serial sweep, one process-pool sweep and one Ray sweep
run the real simulator on a tiny idealised scenario (about 2-3 s per point).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

import emsfl_sim.sim.schedule as schedule_module
from emsfl_sim.cli.main import main
from emsfl_sim.errors import InputError
from emsfl_sim.scenario import scenario_to_yaml, validate_raw
from emsfl_sim.sweep import cache as cache_mod
from emsfl_sim.sweep import expand_sweep, point_id, run_sweep, schedule_key
from emsfl_sim.sweep import point as point_mod
from emsfl_sim.sweep import runner as runner_mod

#: Columns that hold wall-clock measurements (differ between executions of the same point).
WALL_COLUMNS = ["wall_s", "point_wall_s", "point_cpu_s", "learning_wall_s", "overhead_wall_s", "overhead_fraction"]


def tiny_raw(**sweep: Any) -> dict[str, Any]:
    """A scenario that simulates in about a second per strategy (idealised clock, tiny model and data)."""
    raw: dict[str, Any] = {
        "name": "tiny-sweep",
        "seed": 0,
        "time": {"mode": "idealised", "orbital_cycles": 2, "slot_duration_s": 600},
        "clusters": [
            {"name": "a", "lat_deg": 48.1, "lon_deg": 11.6, "devices": 1, "domain": "astronomy"},
            {"name": "b", "lat_deg": 39.7, "lon_deg": -105.0, "devices": 1, "domain": "medicine"},
        ],
        "model": {"preset": "tiny", "gate_pretrain_steps": 0},
        "data": {"samples_per_device": 8, "test_samples_per_domain": 4, "trial_samples_per_cluster": 4,
                 "gate_samples": 8},
        "training": {"local_steps": 1, "batch_size": 4, "round_interval_s": 400},
        "strategy": {"names": ["baseline", "emsfl"]},
        "output": {"plots": False},
    }
    if sweep:
        raw["sweep"] = sweep
    return raw


def write_scenario(folder: Path, raw: dict[str, Any], name: str = "sweep.yaml") -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


# ----------------------------------------------------------------- expansion
def test_product_with_seeds_in_order() -> None:
    points = expand_sweep(tiny_raw(parameters={"training.learning_rate": [0.001, 0.01],
                                               "link.elevation_mask_deg": [10, 40]}, seeds=[0, 1]))
    assert len(points) == 2 * 2 * 2
    # First parameter slowest, seeds innermost.
    combos = [(p.overrides["training.learning_rate"], p.overrides["link.elevation_mask_deg"], p.overrides["seed"])
              for p in points]
    assert combos == [(lr, m, s) for lr in (0.001, 0.01) for m in (10, 40) for s in (0, 1)]
    assert points[3].id == "p003-training.learning_rate=0.001-link.elevation_mask_deg=40-seed=1"
    assert [p.index for p in points] == list(range(8))
    for point in points:
        assert point.error is None
        assert "sweep" not in point.raw and point.scenario.sweep is None
        assert point.scenario.seed == point.overrides["seed"] == point.seed
        assert point.scenario.training.learning_rate == point.overrides["training.learning_rate"]
        assert point.scenario.link.elevation_mask_deg == point.overrides["link.elevation_mask_deg"]


def test_zip_pairs_values_and_seeds_cross_them() -> None:
    points = expand_sweep(tiny_raw(mode="zip", parameters={"training.learning_rate": [0.001, 0.01, 0.1],
                                                           "training.local_steps": [1, 2, 3]}, seeds=[5, 6]))
    pairs = [(p.scenario.training.learning_rate, p.scenario.training.local_steps, p.scenario.seed) for p in points]
    assert pairs == [(0.001, 1, 5), (0.001, 1, 6), (0.01, 2, 5), (0.01, 2, 6), (0.1, 3, 5), (0.1, 3, 6)]


def test_seeds_only_and_zip_without_parameters() -> None:
    points = expand_sweep(tiny_raw(mode="zip", seeds=[3, 4]))
    assert [p.scenario.seed for p in points] == [3, 4]
    assert [p.id for p in points] == ["p000-seed=3", "p001-seed=4"]


def test_ids_are_filesystem_safe_stable_and_unique() -> None:
    raw = tiny_raw(parameters={"description": ["a/b c", "x:y*?"], "strategy.names": [["baseline"], ["emsfl"]]})
    first = [p.id for p in expand_sweep(raw)]
    assert first == [p.id for p in expand_sweep(raw)]
    assert len(set(first)) == len(first)
    for pid in first:
        assert all(ch.isalnum() or ch in "._+=-~" for ch in pid), pid
    long = point_id(7, {"constellation.walker": [{"altitude_km": 550.0 + i} for i in range(40)]})
    assert len(long) <= 120 and long.startswith("p007-")
    assert long != point_id(7, {"constellation.walker": [{"altitude_km": 551.0 + i} for i in range(40)]})


def test_invalid_value_fails_only_its_point() -> None:
    points = expand_sweep(tiny_raw(parameters={"training.learning_rate": [0.001, -1.0, 0.01]}), file="s.yaml")
    assert [p.error is None for p in points] == [True, False, True]
    error = points[1].error
    assert "\n" not in error
    assert error.startswith("s.yaml: training.learning_rate:") and "-1.0" in error
    assert points[1].scenario is None


def test_list_paths_index_or_broadcast() -> None:
    raw = tiny_raw(mode="zip", parameters={"clusters.devices": [3], "clusters.1.alt_m": [100.0]})
    raw["time"] = {"mode": "orbital", "duration_s": 3600}
    raw["constellation"] = {"walker": {"altitude_km": 550, "inclination_deg": 53, "planes": 1,
                                       "sats_per_plane": 1}}
    raw["sweep"]["parameters"]["constellation.walker.0.planes"] = [2]
    (point,) = expand_sweep(raw)
    assert point.error is None, point.error
    assert [c.devices for c in point.scenario.clusters] == [3, 3]
    assert [c.alt_m for c in point.scenario.clusters] == [0.0, 100.0]
    assert point.scenario.constellation.walker[0].planes == 2
    bad = expand_sweep(tiny_raw(parameters={"clusters.5.devices": [1]}))[0]
    assert "out of range" in bad.error


def test_scenario_without_sweep_block_is_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = write_scenario(tmp_path, tiny_raw())
    with pytest.raises(InputError, match="no sweep: block"):
        expand_sweep(path)
    assert main(["sweep", str(path), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "sweep: no sweep: block" in err and str(path) in err


def test_schedule_key_covers_link_fields_not_learning() -> None:
    base = validate_raw(tiny_raw())
    def key(**changes: Any) -> str:
        raw = tiny_raw()
        for dotted, value in changes.items():
            section, name = dotted.split("__")
            raw.setdefault(section, {})[name] = value
        return schedule_key(validate_raw(raw))
    assert key(training__learning_rate=0.5) == schedule_key(base)
    assert key(model__lora={"rank": 8}) == schedule_key(base)
    assert key(link__elevation_mask_deg=40) != schedule_key(base)
    assert key(time__slot_duration_s=450) != schedule_key(base)
    # The idealised schedule draws from the seed only for idle slots.
    raw = tiny_raw()
    raw["seed"] = 9
    assert schedule_key(validate_raw(raw)) == schedule_key(base)
    raw["time"]["idle_slot_rate"] = 0.2
    other = tiny_raw()
    other["time"]["idle_slot_rate"] = 0.2
    assert schedule_key(validate_raw(raw)) != schedule_key(validate_raw(other))


def test_schedule_key_is_the_schedule_format_plus_a_hash(monkeypatch: pytest.MonkeyPatch) -> None:
    scenario = validate_raw(tiny_raw())
    key = schedule_key(scenario)
    assert key.startswith(f"f{schedule_module.SCHEDULE_FORMAT}-")
    monkeypatch.setattr(schedule_module, "SCHEDULE_FORMAT", schedule_module.SCHEDULE_FORMAT + 1)
    bumped = schedule_key(scenario)
    assert bumped != key and bumped.startswith(f"f{schedule_module.SCHEDULE_FORMAT}-")
    assert bumped.split("-", 1)[1] == key.split("-", 1)[1]  # same inputs, other code


def orbital_raw(tle: Path) -> dict[str, Any]:
    raw = tiny_raw()
    raw["time"] = {"mode": "orbital", "duration_s": 3600}
    raw["constellation"] = {"tle_files": [str(tle)]}
    return raw


@pytest.mark.parametrize(("dotted", "value"), [
    ("time.start_utc", "2024-01-01T00:00:00Z"), ("time.contact_step_s", 30.0), ("time.geometry_step_s", 5.0),
    ("clusters.0.lat_deg", 10.0), ("clusters.1.devices", 3), ("server.mode", "constellation"),
    ("server.handover", "sticky"), ("link.tx_power_dbm", 30.0), ("link.rician_k_db", 3.0),
    ("constellation.max_satellites", 1), ("constellation.norad_ids", [25544]),
])
def test_schedule_key_changes_with_every_schedule_input(tmp_path: Path, dotted: str, value: Any) -> None:
    from emsfl_sim.scenario import apply_overrides

    tle = tmp_path / "sats.tle"
    tle.write_text("any text: the key hashes the bytes\n")
    raw = orbital_raw(tle)
    assert schedule_key(validate_raw(apply_overrides(raw, {dotted: value}))) != schedule_key(validate_raw(raw))


def test_schedule_key_follows_tle_contents_and_the_seed_it_draws(tmp_path: Path) -> None:
    tle = tmp_path / "sats.tle"
    tle.write_text("first version\n")
    raw = orbital_raw(tle)
    before = schedule_key(validate_raw(raw))
    tle.write_text("second version\n")  # same path, new elements: another schedule
    assert schedule_key(validate_raw(raw)) != before
    # Orbital schedules draw from the seed only for shadowing.
    assert schedule_key(validate_raw({**raw, "seed": 4})) == schedule_key(validate_raw(raw))
    raw["link"] = {"shadowing_sigma_db": 2.0}
    assert schedule_key(validate_raw({**raw, "seed": 4})) != schedule_key(validate_raw(raw))


def test_points_check_strategy_names_against_the_registry() -> None:
    points = expand_sweep(tiny_raw(parameters={"strategy.names": [["emsfl"], ["fedavg"]]}), file="s.yaml")
    assert points[0].error is None
    assert points[1].error == ("s.yaml: strategy.names: unknown strategy 'fedavg'; "
                               "use one of baseline, emsfl, emsfl_enhanced")


def test_point_path_errors_name_the_sweep_parameter() -> None:
    (point,) = expand_sweep(tiny_raw(parameters={"clusters.2.devices": [1]}), file="s.yaml")
    assert point.error == ("s.yaml: sweep.parameters.clusters.2.devices: index 2 is out of range: "
                           "clusters has 2 entries (use 0 to 1)")


@pytest.mark.parametrize(("sweep", "message"), [
    ({}, "sweep: the sweep has no parameters and no seeds; give at least one"),
    ({"parameters": {"seed": [1, 2]}, "seeds": [0]}, "sweep.parameters.seed: seed is swept twice"),
    ({"seeds": [1, 1]}, "sweep.seeds: seed 1 is listed twice; give each seed once"),
    ({"seeds": [-1]}, "sweep.seeds: must be non-negative integers (got -1)"),
    ({"parameters": {"link.elevation_mask": [10]}}, "sweep.parameters.link.elevation_mask: unknown key"),
])
def test_sweep_block_is_checked_by_the_schema(sweep: dict[str, Any], message: str) -> None:
    with pytest.raises(InputError, match=re.escape(message)):
        validate_raw({**tiny_raw(), "sweep": sweep}, file="s.yaml")


def test_resume_rebuilds_schedules_of_an_older_schedule_format(tmp_path: Path, fake: FakeRuns,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[str] = []
    real = cache_mod.build_schedule
    monkeypatch.setattr(cache_mod, "build_schedule", lambda scenario: (built.append("x"), real(scenario))[1])
    path = write_scenario(tmp_path, tiny_raw(parameters={"training.learning_rate": [0.1, 0.2]}))
    out = tmp_path / "out"
    run_sweep(path, out, executor="serial", progress=False, log=lambda m: None)
    assert len(built) == 1
    for marker in (out / "points").glob("*/point.json"):
        marker.unlink()  # the points rerun (e.g. after a crash) ...
    monkeypatch.setattr(schedule_module, "SCHEDULE_FORMAT", schedule_module.SCHEDULE_FORMAT + 1)
    table = run_sweep(path, out, executor="serial", progress=False, log=lambda m: None)
    assert len(built) == 2  # ... with schedules of the new code, not the cached ones
    assert len(list((out / "cache").glob("*.pkl"))) == 2
    assert table["schedule_key"].str.startswith(f"f{schedule_module.SCHEDULE_FORMAT}-").all()


# ------------------------------------------------- fake points (fast tests)
class FakeRuns:
    """Stands in for the simulator: writes what a run writes; final accuracy = learning rate."""

    def __init__(self, fail_on: float | None = None) -> None:
        self.calls: list[str] = []
        self.fresh: list[bool] = []
        self.fail_on = fail_on

    def __call__(self, scenario: Any, directory: Path, schedule: Any, fresh: bool, log: Any) -> pd.DataFrame:
        self.calls.append(directory.name)
        self.fresh.append(fresh)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "scenario.yaml").write_text(scenario_to_yaml(scenario))
        if scenario.training.learning_rate == self.fail_on:
            raise RuntimeError("simulated failure\nsecond line")
        rows = []
        for name in scenario.strategy.names:
            summary = {"strategy": name, "scenario": scenario.name, "seed": scenario.seed,
                       "final_accuracy": scenario.training.learning_rate,
                       "time_to_target_s": 100.0 * (1 + scenario.seed), "wall_s": 0.1,
                       "windows": len(schedule.windows)}
            (directory / name).mkdir(exist_ok=True)
            (directory / name / "summary.json").write_text(json.dumps(summary))
            rows.append(summary)
        return pd.DataFrame(rows)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeRuns:
    runs = FakeRuns()
    monkeypatch.setattr(point_mod, "run_point_scenario", runs)
    return runs


def test_table_resume_and_failures_with_fake_runs(tmp_path: Path, fake: FakeRuns) -> None:
    fake.fail_on = 0.3
    path = write_scenario(tmp_path, tiny_raw(parameters={"training.learning_rate": [0.1, 0.2, 0.3, -1.0]},
                                             seeds=[0, 1]))
    out = tmp_path / "out"
    table = run_sweep(path, out, executor="serial", progress=False, log=lambda m: None)
    assert len(fake.calls) == 6  # 8 points, 2 invalid (learning rate -1) never run
    assert len(table) == 8 * 2  # one row per point x strategy, failed points included
    assert list(table.columns[:6]) == ["point", "index", "training.learning_rate", "seed", "strategy", "status"]
    assert table.groupby("point").size().eq(2).all()
    ok = table[table["status"] == "ok"]
    assert sorted(ok["training.learning_rate"].unique()) == [0.1, 0.2]
    assert (ok["final_accuracy"] == ok["training.learning_rate"]).all()
    assert (ok["time_to_target_s"] == 100.0 * (1 + ok["seed"])).all()
    failed = table[table["status"] == "error"].drop_duplicates("point")
    assert len(failed) == 4
    runtime = failed[failed["training.learning_rate"] == 0.3]
    assert (runtime["error"] == "RuntimeError: simulated failure").all()
    assert (out / "points" / runtime["point"].iloc[0] / "error.txt").read_text().startswith("Traceback")
    invalid = failed[failed["training.learning_rate"] == -1.0]
    assert invalid["error"].str.contains("training.learning_rate: must be").all()
    # The stored tables equal the returned one.
    for stored in (pd.read_parquet(out / "sweep.parquet"), pd.read_csv(out / "sweep.csv")):
        assert len(stored) == 16
        assert list(stored["point"]) == list(table["point"])
    # Resume: finished points are skipped, failed ones run again.
    marker = out / "points" / ok["point"].iloc[0] / "point.json"
    stamp = marker.stat().st_mtime_ns
    fake.calls.clear()
    fake.fail_on = None
    again = run_sweep(path, out, executor="serial", progress=False, log=lambda m: None)
    assert sorted(fake.calls) == sorted(runtime["point"])
    assert marker.stat().st_mtime_ns == stamp
    assert (again["status"] == "ok").sum() == 12
    # A point whose folder holds another scenario reruns fresh (the runner's own resume must not reuse it).
    target = out / "points" / ok["point"].iloc[0]
    (target / "scenario.yaml").write_text("name: something else\n")
    fake.calls.clear()
    fake.fresh.clear()
    run_sweep(path, out, executor="serial", progress=False, log=lambda m: None)
    assert fake.calls == [target.name] and fake.fresh == [True]


def test_table_is_written_as_points_finish(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []
    real = runner_mod.write_sweep_table

    def spy(table: pd.DataFrame, out_dir: Path) -> None:
        seen.append(int((table["status"] == "ok").sum()) if len(table) else 0)
        real(table, out_dir)

    monkeypatch.setattr(runner_mod, "write_sweep_table", spy)
    monkeypatch.setattr(point_mod, "run_point_scenario", FakeRuns())
    path = write_scenario(tmp_path, tiny_raw(seeds=[0, 1, 2]))
    run_sweep(path, tmp_path / "out", executor="serial", progress=False, log=lambda m: None)
    assert seen == [0, 2, 4, 6]  # before any point, then after each of the 3 points (2 strategies each)


def test_learning_only_sweep_builds_one_schedule(tmp_path: Path, fake: FakeRuns,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[str] = []
    real = cache_mod.build_schedule

    def counting(scenario: Any) -> Any:
        built.append(scenario.training.optimizer)
        return real(scenario)

    monkeypatch.setattr(cache_mod, "build_schedule", counting)
    path = write_scenario(tmp_path, tiny_raw(parameters={"training.learning_rate": [0.1, 0.2],
                                                         "training.optimizer": ["sgd", "adamw"]}, seeds=[0, 1]))
    out = tmp_path / "out"
    table = run_sweep(path, out, executor="serial", progress=False, log=lambda m: None)
    assert (table["status"] == "ok").all() and table["point"].nunique() == 8
    assert len(built) == 1
    assert len(list((out / "cache").glob("*.pkl"))) == 1
    assert table["schedule_key"].nunique() == 1
    records = [json.loads(p.read_text()) for p in (out / "points").glob("*/point.json")]
    assert {r["schedule_source"] for r in records} == {"cache"}
    # A link parameter splits the cache: one schedule per elevation mask.
    built.clear()
    path = write_scenario(tmp_path, tiny_raw(parameters={"link.elevation_mask_deg": [10, 30],
                                                         "training.learning_rate": [0.1, 0.2]}), "mask.yaml")
    table = run_sweep(path, tmp_path / "mask", executor="serial", progress=False, log=lambda m: None)
    assert len(built) == 2 and table["schedule_key"].nunique() == 2


def test_cli_sweep_prints_summary(tmp_path: Path, fake: FakeRuns, capsys: pytest.CaptureFixture) -> None:
    path = write_scenario(tmp_path, tiny_raw(parameters={"training.learning_rate": [0.1, -2.0]}))
    out = tmp_path / "out"
    # a sweep with a failed point prints everything and exits non-zero (scripts must see it)
    assert main(["sweep", str(path), "--out", str(out), "--executor", "serial", "--no-progress"]) == 1
    captured = capsys.readouterr()
    assert "learning_rate" in captured.out and "baseline" in captured.out and "1/2 points ok" in captured.out
    assert "failed: p001-training.learning_rate=-2" in captured.err
    assert "1 of 2 points failed" in captured.err
    assert (out / "sweep.csv").exists() and (out / "sweep.parquet").exists()
    good = write_scenario(tmp_path, tiny_raw(parameters={"training.learning_rate": [0.1, 0.2]}), "good.yaml")
    assert main(["sweep", str(good), "--out", str(tmp_path / "good"), "--executor", "serial", "--no-progress"]) == 0


@pytest.mark.parametrize("workers", ["0", "-1"])
def test_cli_sweep_refuses_fewer_than_one_worker(tmp_path: Path, fake: FakeRuns, workers: str,
                                                 capsys: pytest.CaptureFixture) -> None:
    path = write_scenario(tmp_path, tiny_raw(parameters={"training.learning_rate": [0.1]}))
    assert main(["sweep", str(path), "--out", str(tmp_path / "out"), "--workers", workers, "--no-progress"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert "--workers: must be at least 1" in err[-1] and "Traceback" not in "".join(err)
    assert not fake.calls


def test_unknown_executor_and_missing_ray(tmp_path: Path, fake: FakeRuns, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_scenario(tmp_path, tiny_raw(seeds=[0]))
    with pytest.raises(InputError, match="unknown executor"):
        run_sweep(path, tmp_path / "out", executor="threads", progress=False)
    import builtins

    real_import = builtins.__import__

    def no_ray(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "ray":
            raise ImportError("no ray")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(InputError, match=r"install the ray extra: pip install -e \.\[ray\]"):
        run_sweep(path, tmp_path / "out", executor="ray", progress=False, log=lambda m: None)


# ------------------------------------------------------- real simulations
LR_SWEEP = {"parameters": {"training.learning_rate": [0.001, 0.01]}}


@pytest.fixture(scope="module")
def serial_sweep(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    """The tiny two-point learning-rate sweep run for real, serially."""
    folder = tmp_path_factory.mktemp("serial")
    path = write_scenario(folder, tiny_raw(**LR_SWEEP))
    table = run_sweep(path, folder / "out", executor="serial", progress=False, log=lambda m: None)
    return folder / "out", table


def _comparable(table: pd.DataFrame) -> pd.DataFrame:
    return table.drop(columns=[c for c in WALL_COLUMNS if c in table.columns]).reset_index(drop=True)


def test_real_serial_sweep_matches_single_runs(serial_sweep: tuple[Path, pd.DataFrame]) -> None:
    out, table = serial_sweep
    assert (table["status"] == "ok").all(), table["error"].tolist()
    assert len(table) == 4 and list(table["strategy"]) == ["baseline", "emsfl"] * 2
    for point in table["point"].unique():
        folder = out / "points" / point
        assert json.loads((folder / "point.json").read_text())["status"] == "ok"
        comparison = pd.read_csv(folder / "comparison.csv")
        rows = table[table["point"] == point]
        assert list(rows["final_accuracy"]) == pytest.approx(list(comparison["final_accuracy"]))
        assert list(rows["uplink_mb"]) == pytest.approx(list(comparison["uplink_mb"]))
    assert len(list((out / "cache").glob("*.pkl"))) == 1


def test_real_process_pool_gives_the_serial_table(serial_sweep: tuple[Path, pd.DataFrame], tmp_path: Path) -> None:
    _, serial = serial_sweep
    path = write_scenario(tmp_path, tiny_raw(**LR_SWEEP))
    pooled = run_sweep(path, tmp_path / "out", workers=2, executor="process", progress=False, log=lambda m: None)
    pd.testing.assert_frame_equal(_comparable(pooled), _comparable(serial), check_dtype=False)


@pytest.mark.slow  # about 20 s on 2 cores: Ray start-up plus torch imports in its workers
def test_real_ray_gives_the_serial_table(serial_sweep: tuple[Path, pd.DataFrame], tmp_path: Path) -> None:
    ray = pytest.importorskip("ray")
    _, serial = serial_sweep
    path = write_scenario(tmp_path, tiny_raw(**LR_SWEEP))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        table = run_sweep(path, tmp_path / "out", executor="ray", progress=False, log=lambda m: None)
    finally:
        ray.shutdown()
    pd.testing.assert_frame_equal(_comparable(table), _comparable(serial), check_dtype=False)
