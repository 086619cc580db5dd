"""Shared helpers of the experiment scripts: output folder, markdown report, tables."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]


def parser(description: str) -> argparse.ArgumentParser:
    """Arguments every experiment takes: --out, --full, --workers."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--out", type=Path, help="output folder (default runs/experiments/<name>)")
    p.add_argument("--full", action="store_true", help="larger run (longer horizons, more points/seeds)")
    p.add_argument("--workers", type=int, default=None, help="parallel sweep points (default: CPU count)")
    return p


def out_dir(args: argparse.Namespace, name: str) -> Path:
    """The experiment's output folder, created."""
    path = args.out or REPO / "runs" / "experiments" / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def md_table(frame: pd.DataFrame, floatfmt: str = ".3f") -> str:
    """A pandas table as GitHub markdown (no tabulate dependency)."""
    cols = list(frame.columns)

    def fmt(v: object) -> str:
        if isinstance(v, float):
            return "-" if pd.isna(v) else format(v, floatfmt)
        return str(v)

    lines = ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def write_report(folder: Path, title: str, sections: list[str], started: float) -> Path:
    """report.md with the sections and the wall time."""
    text = f"# {title}\n\n" + "\n\n".join(sections)
    text += f"\n\n_Wall time: {time.perf_counter() - started:.0f} s._\n"
    path = folder / "report.md"
    path.write_text(text)
    print(f"wrote {path}")
    return path
