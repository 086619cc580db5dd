#!/usr/bin/env python3
"""Check that two run directories hold the same results (e.g. before and after a refactoring).

Compares, for every strategy present in either directory, the metrics table (every column,
exactly, or within ``--rtol``), the events table and every number of summary.json except
the wall-clock timings and the measured peak memory (they depend on the machine's load,
not on the simulation). Exits 1 and lists the differences when anything differs.

Usage: scripts/compare_runs.py DIR_A DIR_B [--rtol 0]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import pandas as pd

#: summary.json fields that measure the machine, not the simulation
MACHINE_FIELDS = {"wall_s", "learning_wall_s", "overhead_wall_s", "overhead_fraction", "peak_device_memory_mb"}


def read_table(stem: Path) -> pd.DataFrame | None:
    """``stem.parquet`` or ``stem.csv`` (None if neither exists)."""
    if stem.with_suffix(".parquet").is_file():
        return pd.read_parquet(stem.with_suffix(".parquet"))
    if stem.with_suffix(".csv").is_file():
        return pd.read_csv(stem.with_suffix(".csv"))
    return None


def compare_tables(name: str, a: pd.DataFrame | None, b: pd.DataFrame | None, rtol: float) -> list[str]:
    """Differences between two tables (column sets, lengths, values)."""
    if a is None or b is None:
        return [] if a is None and b is None else [f"{name}: present in only one directory"]
    if list(a.columns) != list(b.columns):
        return [f"{name}: columns differ: {list(a.columns)} vs {list(b.columns)}"]
    if len(a) != len(b):
        return [f"{name}: {len(a)} vs {len(b)} rows"]
    out = []
    for column in a.columns:
        x, y = a[column], b[column]
        if pd.api.types.is_numeric_dtype(x) and pd.api.types.is_numeric_dtype(y):
            same = [(pd.isna(p) and pd.isna(q)) or math.isclose(float(p), float(q), rel_tol=rtol, abs_tol=0.0)
                    for p, q in zip(x, y, strict=True)]
        else:
            same = [(pd.isna(p) and pd.isna(q)) or str(p) == str(q) for p, q in zip(x, y, strict=True)]
        if not all(same):
            row = same.index(False)
            out.append(f"{name}: column {column!r} differs first at row {row}: {x.iloc[row]!r} vs {y.iloc[row]!r}")
    return out


def compare_summaries(name: str, a: dict, b: dict, rtol: float) -> list[str]:
    """Differences between two summary.json objects, machine timings excluded."""
    out = []
    for key in sorted(set(a) | set(b)):
        if key in MACHINE_FIELDS:
            continue
        p, q = a.get(key), b.get(key)
        if isinstance(p, float) and isinstance(q, float):
            if not math.isclose(p, q, rel_tol=rtol, abs_tol=0.0):
                out.append(f"{name}: {key}: {p!r} vs {q!r}")
        elif p != q:
            out.append(f"{name}: {key}: {p!r} vs {q!r}")
    return out


def compare_runs(a: Path, b: Path, rtol: float = 0.0) -> list[str]:
    """All differences between the results of run directories ``a`` and ``b``."""
    strategies = sorted({p.parent.name for d in (a, b) for p in d.glob("*/summary.json")})
    if not strategies:
        return [f"no strategy results (*/summary.json) in {a} or {b}"]
    out = compare_tables("comparison", read_table(a / "comparison"), read_table(b / "comparison"), rtol)
    out = [d for d in out if "wall_s" not in d and "peak_device_memory_mb" not in d]
    for s in strategies:
        sa, sb = a / s / "summary.json", b / s / "summary.json"
        if not (sa.is_file() and sb.is_file()):
            out.append(f"{s}: results in only one directory")
            continue
        out += compare_summaries(f"{s}/summary.json", json.loads(sa.read_text()), json.loads(sb.read_text()), rtol)
        for table in ("metrics", "events"):
            out += compare_tables(f"{s}/{table}", read_table(a / s / table), read_table(b / s / table), rtol)
    return out


def main(argv: list[str] | None = None) -> int:
    """Compare two run directories; print the verdict."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", type=Path)
    parser.add_argument("b", type=Path)
    parser.add_argument("--rtol", type=float, default=0.0, help="relative tolerance for numbers (default: exact)")
    args = parser.parse_args(argv)
    differences = compare_runs(args.a, args.b, args.rtol)
    for line in differences:
        print(line)
    strategies = sorted(p.parent.name for p in args.a.glob("*/summary.json"))
    if differences:
        print(f"DIFFERENT: {len(differences)} difference(s) between {args.a} and {args.b}")
        return 1
    print(f"SAME: {args.a} and {args.b} hold identical results for {', '.join(strategies)} "
          f"(metrics, events, summaries{'' if args.rtol == 0 else f', rtol {args.rtol}'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
