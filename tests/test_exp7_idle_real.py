"""Experiment 7 (idle time over the real Starlink and OneWeb snapshots): its core on tiny subsets.

The TLE snapshots live in ``../shared/tle`` next to the repository (not part of it): the
tests that need them skip cleanly without them.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

import pytest

from .conftest import REPO

SHARED_TLE = REPO.parent / "shared" / "tle"
needs_tle = pytest.mark.skipif(
    not all((SHARED_TLE / f).exists() for f in ("starlink-2023-07.tle", "oneweb-2025-12.tle")),
    reason=f"real TLE snapshots not found in {SHARED_TLE}",
)


@pytest.fixture
def exp7(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The experiment script as a module (``experiments/`` on the path for its ``common`` import)."""
    monkeypatch.syspath_prepend(str(REPO / "experiments"))
    return importlib.import_module("exp7_idle_real")


def test_subsets_first_and_spread(exp7: ModuleType) -> None:
    records = list(range(10))
    assert exp7.subset(records, "first", 3) == [0, 1, 2]
    assert exp7.subset(records, "every", 3) == [0, 3, 6]
    assert exp7.subset(records, "every", 20) == records
    assert exp7.subset(records, "all", None) == records


def test_skips_without_shared_tle(exp7: ModuleType, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(exp7, "SHARED_TLE", tmp_path / "no-shared" / "tle")
    monkeypatch.setattr(sys, "argv", ["exp7_idle_real.py", "--out", str(tmp_path / "out")])
    assert exp7.main() == 0
    assert "exp7 skipped" in capsys.readouterr().out
    assert not (tmp_path / "out").exists()


@needs_tle
def test_idle_point_tiny_subsets(exp7: ModuleType, tmp_path: Path) -> None:
    """3 Starlink satellites x the 3 clusters and 4 OneWeb satellites x a 3 x 3 grid, 3 h each."""
    row, tables = exp7.idle_point(exp7.Point("starlink", "first", 3, None), duration_s=3 * 3600.0,
                                  out=tmp_path / "sl")
    assert row["satellites"] == 3 and row["n_sites"] == 3 and row["hours"] == 3.0
    assert row["fraction_none"] + row["fraction_one"] + row["fraction_multiple"] == pytest.approx(1.0)
    idle = tables["idle_clusters"]["idle_fraction"]
    assert ((idle >= 0) & (idle <= 1)).all()
    assert idle.min() >= row["fraction_none"] - 1e-12  # while no cluster is connected, each one is idle
    assert row["fraction_none"] > 0.5  # 3 satellites leave these clusters idle most of the time
    assert (tmp_path / "sl" / "row.json").exists() and (tmp_path / "sl" / "idle_gaps.csv").exists()
    row, tables = exp7.idle_point(exp7.Point("oneweb", "every", 4, (60.0, 120.0)), duration_s=3 * 3600.0)
    assert row["satellites"] == 4 and row["n_sites"] == 9
    assert 0.0 <= row["cluster_idle_area_mean"] <= 1.0
    assert set(tables) == {"idle_summary", "idle_clusters", "idle_gaps", "idle_gap_histogram"}
