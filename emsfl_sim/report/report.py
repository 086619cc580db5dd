"""Reports from results directories: a self-contained HTML page, or markdown + PNG files.

A *run directory* (``comparison.csv``, written by ``emsfl-sim run``) gives the
scenario, the comparison table, accuracy curves and the link timeline. A *sweep
directory* (``sweep.csv``, written by ``emsfl-sim sweep``) gives the sweep table,
each summary metric against each swept parameter and the accuracy curves of all
points. Both state the headline result in numbers (time to target accuracy of
each strategy against the baseline).

Everything is read from files, never from live objects, so a report can be
rebuilt at any time from a finished (or partly finished) directory.
"""

from __future__ import annotations

import base64
import functools
import html
import json
import math
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from emsfl_sim.errors import InputError
from emsfl_sim.results import read_table

#: How strategies are named in report text.
DISPLAY_NAMES = {"baseline": "baseline", "emsfl": "EMS-FL", "emsfl_enhanced": "enhanced EMS-FL"}

#: Columns of the run comparison shown in reports (label, column, scale).
RUN_COLUMNS: list[tuple[str, str, float]] = [
    ("strategy", "strategy", 1.0),
    ("time to target (h)", "time_to_target_s", 1 / 3600),
    ("cycles to target", "cycles_to_target", 1.0),
    ("final accuracy", "final_accuracy", 1.0),
    ("best accuracy", "best_accuracy", 1.0),
    ("uplink (MB)", "uplink_mb", 1.0),
    ("uplink per pass (MB)", "uplink_mb_per_pass", 1.0),
    ("idle fraction", "idle_fraction", 1.0),
    ("interrupted uploads", "interrupted_uploads", 1.0),
    ("local rounds", "local_rounds", 1.0),
    ("optimizer steps", "optimizer_steps", 1.0),
    ("samples seen", "samples_seen", 1.0),
    ("distinct samples (share)", "unique_samples_fraction", 1.0),
    ("wasted uplink (MB)", "wasted_uplink_mb", 1.0),
    ("peak device memory (MB)", "peak_device_memory_mb", 1.0),
    ("wall (s)", "wall_s", 1.0),
]

#: Metrics plotted against each swept parameter (column -> axis label).
SWEEP_METRICS = {"time_to_target_h": "time to target accuracy (h)", "final_accuracy": "final accuracy"}


@dataclass
class Figure:
    """One PNG figure of a report."""

    caption: str
    filename: str
    png: bytes


@dataclass
class Report:
    """The content of a report, independent of its format."""

    title: str
    kind: str  # "run" or "sweep"
    settings: list[tuple[str, str]] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)
    tables: list[tuple[str, pd.DataFrame]] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)


# ------------------------------------------------------------------ helpers
def display_name(strategy: str) -> str:
    """Human name of a strategy (EMS-FL, baseline, ...)."""
    return DISPLAY_NAMES.get(strategy, strategy)


def _num(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def _count(n: Any, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _hours(seconds: Any) -> str:
    value = _num(seconds)
    return "-" if value is None else f"{value / 3600:.2f} h"


def _figure(caption: str, filename: str, draw: Callable[[Path], Any]) -> Figure | None:
    """Draw with ``draw(path)`` into a temporary PNG and keep its bytes (None if nothing to draw)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / filename
        draw(path)
        if not path.exists():
            return None
        return Figure(caption, filename, path.read_bytes())


def _add_figure(report: Report, figure: Figure | None) -> None:
    """Append ``figure`` to the report's figures unless there was nothing to draw."""
    if figure is not None:
        report.figures.append(figure)


def scenario_settings(data: dict[str, Any], run_meta: dict[str, Any] | None = None) -> list[tuple[str, str]]:
    """Key settings of a resolved scenario mapping as (label, text) pairs."""
    def get(section: str, key: str, default: Any = None) -> Any:
        return (data.get(section) or {}).get(key, default)

    out: list[tuple[str, str]] = [("name", str(data.get("name", "?")))]
    if data.get("description"):
        out.append(("description", str(data["description"])))
    out.append(("seed", str(data.get("seed", 0))))
    mode = get("time", "mode", "orbital")
    clock = f"{mode}"
    if run_meta and run_meta.get("duration_s"):
        clock += f", {run_meta['duration_s'] / 3600:.1f} h simulated"
        if run_meta.get("cycle_s"):
            clock += f", orbital cycle {run_meta['cycle_s'] / 60:.1f} min"
    elif get("time", "orbital_cycles"):
        clock += f", {get('time', 'orbital_cycles')} orbital cycles"
    elif get("time", "duration_s"):
        clock += f", {float(get('time', 'duration_s')) / 3600:.1f} h"
    if mode == "idealised":
        clock += f", slot {get('time', 'slot_duration_s', 600)} s, idle slot rate {get('time', 'idle_slot_rate', 0)}"
    out.append(("time", clock))
    if mode != "idealised":
        shells = [f"{w['altitude_km']:g} km / {w['inclination_deg']:g} deg, {w['planes']}x{w['sats_per_plane']}"
                  for w in (get("constellation", "walker") or []) if isinstance(w, dict)]
        files = [Path(p).name for p in get("constellation", "tle_files") or []]
        out.append(("constellation", "; ".join([*(f"Walker {s}" for s in shells), *files]) or "-"))
        server = data.get("server") or {}
        out.append(("server", f"{server.get('mode', 'single')}"
                    + (f" ({server.get('satellite')})" if server.get("satellite") else "")
                    + (f", handover {server.get('handover')}" if server.get("mode") == "constellation" else "")))
    clusters = data.get("clusters") or []
    out.append(("clusters", f"{len(clusters)}: " + ", ".join(
        f"{c.get('name')} ({_count(c.get('devices', '?'), 'device')}{', ' + c['domain'] if c.get('domain') else ''})"
        for c in clusters)))
    out.append(("link", f"elevation mask {get('link', 'elevation_mask_deg', '?')} deg, "
                f"{float(get('link', 'bandwidth_per_device_hz', 0)) / 1e6:g} MHz per device, "
                f"{float(get('link', 'carrier_frequency_hz', 0)) / 1e9:g} GHz, {get('link', 'tx_power_dbm', '?')} dBm"))
    model = data.get("model") or {}
    out.append(("model", f"{model.get('architecture', 'mixtral')} {model.get('preset') or ''}".strip()
                + (f", timed as {model['systems_model']}" if model.get("systems_model") else "")
                + f", LoRA rank {(model.get('lora') or {}).get('rank', '?')}"))
    part = get("data", "partition", "by_domain")
    out.append(("data", f"{get('data', 'task', 'mcqa')}, {part}"
                + (f" (alpha {get('data', 'dirichlet_alpha')})" if part == "dirichlet" else "")
                + f", {get('data', 'samples_per_device', '?')} samples per device"))
    out.append(("training", f"{get('training', 'optimizer', '?')}, learning rate {get('training', 'learning_rate', '?')}, "
                f"{get('training', 'local_steps', '?')} local steps, batch {get('training', 'batch_size', '?')}"))
    names = get("strategy", "names", [])
    out.append(("strategies", ", ".join(display_name(str(n)) for n in ([names] if isinstance(names, str) else names))))
    out.append(("target accuracy", str(get("evaluation", "target_accuracy", 0.5))))
    return out


def comparison_findings(table: pd.DataFrame, target: float | None, duration_s: float | None = None) -> list[str]:
    """Headline sentences: each strategy's time to target (and uplink) against the baseline."""
    rows = {str(r["strategy"]): r for _, r in table.iterrows()}
    goal = f"{target:g}" if target is not None else "the target"
    horizon = f" within {duration_s / 3600:.1f} h" if duration_s else ""
    out = []
    base = rows.get("baseline")
    for name, row in rows.items():
        if name == "baseline" and len(rows) > 1:
            continue
        t = _num(row.get("time_to_target_s"))
        acc = _num(row.get("final_accuracy"))
        own = (f"{display_name(name)} reached {goal} in {_hours(t)}" if t is not None else
               f"{display_name(name)} did not reach {goal}{horizon} (final accuracy {acc if acc is not None else '-'})")
        if base is not None and name != "baseline":
            tb = _num(base.get("time_to_target_s"))
            if t is not None and tb is not None:
                own += f" vs baseline {_hours(tb)} (ratio {t / tb:.2f})" if tb > 0 else f" vs baseline {_hours(tb)}"
            elif tb is not None:
                own += f"; baseline reached it in {_hours(tb)}"
            else:
                acc_b = _num(base.get("final_accuracy"))
                either = " either" if t is None else ""
                own += f"; baseline did not reach it{either} (final accuracy {acc_b if acc_b is not None else '-'})"
            up, up_b = _num(row.get("uplink_mb")), _num(base.get("uplink_mb"))
            if up is not None and up_b:
                own += f"; uplink {up:.3g} MB vs {up_b:.3g} MB (ratio {up / up_b:.2f})"
            mem, mem_b = _num(row.get("peak_device_memory_mb")), _num(base.get("peak_device_memory_mb"))
            if mem is not None and mem_b:
                own += f"; peak device memory {mem:.4g} MB vs {mem_b:.4g} MB"
        out.append(own + ".")
    return out


def _format_table(table: pd.DataFrame, columns: list[tuple[str, str, float]]) -> pd.DataFrame:
    out = pd.DataFrame()
    for label, column, scale in columns:
        if column not in table.columns:
            continue
        values = table[column]
        if scale != 1.0:
            values = pd.to_numeric(values, errors="coerce") * scale
        out[label] = values.map(lambda v: "-" if _num(v) is None and not isinstance(v, str) else
                                (v if isinstance(v, str) else f"{float(v):.4g}")).to_numpy()
    return out


# -------------------------------------------------------------- run reports
def build_run_report(directory: Path) -> Report:
    """The report of a run directory (comparison.csv, */metrics.csv, links.csv)."""
    from emsfl_sim.report.plots import plot_accuracy, plot_link_timeline

    data = yaml.safe_load((directory / "scenario.yaml").read_text()) if (directory / "scenario.yaml").exists() else {}
    meta = json.loads((directory / "run.json").read_text()) if (directory / "run.json").exists() else {}
    table = read_table(directory / "comparison")
    target = (data.get("evaluation") or {}).get("target_accuracy")
    report = Report(f"emsfl-sim run: {data.get('name', directory.name)}", "run", scenario_settings(data, meta))
    report.findings = comparison_findings(table, target, meta.get("duration_s"))
    report.tables.append(("Comparison of strategies", _format_table(table, RUN_COLUMNS)))
    metrics = [pd.read_csv(p) for p in sorted(directory.glob("*/metrics.csv"))]
    metrics = [m for m in metrics if len(m)]
    if metrics:
        _add_figure(report, _figure("Global test accuracy vs simulated time and vs orbital cycles", "accuracy.png",
                                    lambda p: plot_accuracy(pd.concat(metrics), p, target)))
    events_files = sorted(directory.glob("*/events.csv"))
    if (directory / "links.csv").exists() and events_files:
        links = pd.read_csv(directory / "links.csv")
        if len(links):
            events = pd.read_csv(events_files[-1])
            strategy = events_files[-1].parent.name
            _add_figure(report, _figure(f"Link windows per cluster and the uploads of {display_name(strategy)}",
                                        "links.png", lambda p: plot_link_timeline(links, events, p)))
    return report


# ------------------------------------------------------------ sweep reports
def _swept_columns(table: pd.DataFrame, parameters: list[str]) -> list[str]:
    return [p for p in parameters if p in table.columns]


def sweep_findings(table: pd.DataFrame, parameters: list[str], target: float | None) -> list[str]:
    """Headline sentences of a sweep: how often each strategy reached the target and how fast vs the baseline."""
    goal = f"{target:g}" if target is not None else "the target"
    ok = table[table["status"] == "ok"].copy()
    points = table["point"].nunique()
    failed = points - ok["point"].nunique()
    out = [f"{points} points, {points - failed} finished, {failed} failed."]
    if ok.empty:
        return out
    ok["_t"] = pd.to_numeric(ok["time_to_target_s"], errors="coerce")
    for name, rows in ok.groupby("strategy", sort=False):
        reached = rows["_t"].notna()
        text = f"{display_name(str(name))} reached {goal} in {int(reached.sum())}/{len(rows)} points"
        if reached.any():
            text += f" (median {_hours(rows.loc[reached, '_t'].median())})"
        acc = pd.to_numeric(rows["final_accuracy"], errors="coerce").mean()
        text += f"; mean final accuracy {acc:.3f}." if not math.isnan(acc) else "."
        out.append(text)
    wide = ok.pivot_table(index="point", columns="strategy", values="_t", aggfunc="first")
    if "baseline" not in wide.columns:
        return out
    for name in [c for c in wide.columns if c != "baseline"]:
        both = wide[[name, "baseline"]].dropna()
        both = both[both["baseline"] > 0]
        if both.empty:
            continue
        ratio = both[name] / both["baseline"]
        out.append(f"Where both reached {goal}, {display_name(str(name))} took {ratio.median():.2f}x the baseline's "
                   f"time (median over {_count(len(ratio), 'point')}, range {ratio.min():.2f}-{ratio.max():.2f}).")
        for parameter in parameters:
            by_point = ok.drop_duplicates("point").set_index("point")[parameter]
            parts = []
            for value, group in both.groupby(by_point.reindex(both.index).astype(str), sort=False):
                parts.append(f"{value}: {group[name].mean() / 3600:.2f} h vs {group['baseline'].mean() / 3600:.2f} h "
                             f"(ratio {(group[name] / group['baseline']).mean():.2f})")
            if len(parts) > 1:
                out.append(f"{display_name(str(name))} vs baseline time to {goal} by {parameter}: " + "; ".join(parts) + ".")
    return out


def build_sweep_report(directory: Path) -> Report:
    """The report of a sweep directory (sweep.csv, sweep.json, points/*/)."""
    from emsfl_sim.report.plots import plot_metric_scatter, plot_sweep_accuracy, plot_sweep_metrics

    table = read_table(directory / "sweep")
    info = json.loads((directory / "sweep.json").read_text()) if (directory / "sweep.json").exists() else {}
    parameters = _swept_columns(table, list(info.get("parameters", {})))
    # The resolved scenario of the first finished point stands for the base (plus the sweep definition).
    resolved = sorted(directory.glob("points/*/scenario.yaml"))
    data = yaml.safe_load(resolved[0].read_text()) if resolved else {}
    if not data and (directory / "scenario.yaml").exists():
        data = yaml.safe_load((directory / "scenario.yaml").read_text()) or {}
    target = (data.get("evaluation") or {}).get("target_accuracy")
    report = Report(f"emsfl-sim sweep: {data.get('name', directory.name)}", "sweep", scenario_settings(data))
    report.settings.append(("sweep", f"{info.get('mode', '?')} over "
                            + ", ".join(f"{k} = {v}" for k, v in info.get("parameters", {}).items())
                            + (f"; seeds {info.get('seeds')}" if info.get("seeds") else "")
                            + (f" (other settings above: point {resolved[0].parent.name})" if resolved else "")))
    if table.empty:
        report.findings = ["No finished points yet."]
        return report
    table = table.copy()
    table["time_to_target_h"] = pd.to_numeric(table["time_to_target_s"], errors="coerce") / 3600
    report.findings = sweep_findings(table, parameters, target)
    columns = [("point", "index", 1.0), *[(p, p, 1.0) for p in parameters], ("seed", "seed", 1.0),
               *RUN_COLUMNS[:1], ("status", "status", 1.0), *RUN_COLUMNS[1:]]
    report.tables.append(("Sweep table (one row per point and strategy)", _format_table(table, columns)))
    errors = table[table["status"] != "ok"].drop_duplicates("point")
    if len(errors):
        report.tables.append(("Failed points", errors[["point", "error"]].fillna("-").reset_index(drop=True)))
    ok = table[table["status"] == "ok"]
    for parameter in parameters:
        if ok[parameter].nunique() < 2:
            continue
        _add_figure(report, _figure(
            f"Time to target and final accuracy vs {parameter} (mean over other parameters and seeds, "
            "time over the points that reached the target; bars: standard deviation)", f"sweep-{parameter}.png",
            functools.partial(plot_sweep_metrics, ok, parameter, SWEEP_METRICS)))
    idle = pd.to_numeric(ok.get("idle_fraction"), errors="coerce") if "idle_fraction" in ok else None
    if idle is not None and idle.nunique() > 1:
        _add_figure(report, _figure("Time to target vs idle fraction (every point)", "idle-vs-time.png",
                                    lambda p: plot_metric_scatter(ok, "idle_fraction", "time_to_target_h", p,
                                                                  "idle fraction", "time to target (h)")))
    curves = []
    for point in ok["point"].unique()[:60]:
        for metrics_file in sorted((directory / "points" / str(point)).glob("*/metrics.csv")):
            frame = pd.read_csv(metrics_file)
            curves.append(frame.assign(point=point, strategy=metrics_file.parent.name))
    if curves:
        _add_figure(report, _figure("Accuracy vs orbital cycles of every point", "sweep-accuracy.png",
                                    lambda p: plot_sweep_accuracy(pd.concat(curves), p, target)))
    return report


def build_report(results_dir: str | Path) -> Report:
    """The report of a run directory (has comparison.csv) or a sweep directory (has sweep.csv)."""
    directory = Path(results_dir)
    if directory.is_file():
        raise InputError("is a file, not a results folder; give the --out folder of emsfl-sim run or sweep",
                         file=directory)
    if not directory.is_dir():
        raise InputError("results directory not found; give the --out folder of emsfl-sim run or sweep",
                         file=directory)
    if (directory / "sweep.csv").exists() or (directory / "sweep.parquet").exists():
        return build_sweep_report(directory)
    if (directory / "comparison.csv").exists() or (directory / "comparison.parquet").exists():
        return build_run_report(directory)
    raise InputError("neither a run directory (comparison.csv) nor a sweep directory (sweep.csv); "
                     "give the --out folder of emsfl-sim run or sweep", file=directory)


# ---------------------------------------------------------------- rendering
_CSS = """
body { font-family: system-ui, sans-serif; max-width: 1200px; margin: 2em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f2f2f2; } td:first-child, th:first-child { text-align: left; }
table.settings td { text-align: left; } figure { margin: 1em 0; } img { max-width: 100%; }
figcaption { font-size: 0.9em; color: #555; } .findings li { margin: 0.3em 0; }
"""


def render_html(report: Report) -> str:
    """The report as one self-contained HTML page (figures embedded as base64 PNG)."""
    esc = html.escape
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{esc(report.title)}</title>",
             f"<style>{_CSS}</style></head><body>", f"<h1>{esc(report.title)}</h1>", "<h2>Scenario</h2>",
             "<table class='settings'>",
             *[f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in report.settings], "</table>"]
    if report.findings:
        parts += ["<h2>Result</h2><ul class='findings'>", *[f"<li>{esc(f)}</li>" for f in report.findings], "</ul>"]
    for caption, table in report.tables:
        parts += [f"<h2>{esc(caption)}</h2>", table.to_html(index=False, na_rep="-", border=0, escape=True)]
    if report.figures:
        parts.append("<h2>Figures</h2>")
    for fig in report.figures:
        data = base64.b64encode(fig.png).decode("ascii")
        parts.append(f"<figure><img alt='{esc(fig.caption)}' src='data:image/png;base64,{data}'>"
                     f"<figcaption>{esc(fig.caption)}</figcaption></figure>")
    parts.append("</body></html>")
    return "\n".join(parts)


def markdown_table(table: pd.DataFrame) -> str:
    """A pipe table (GitHub markdown) of ``table``'s values as text."""
    cells = table.astype(object).where(table.notna(), "-").astype(str)
    clean = lambda text: str(text).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    lines = ["| " + " | ".join(clean(c) for c in table.columns) + " |",
             "|" + "|".join("---" for _ in table.columns) + "|"]
    lines += ["| " + " | ".join(clean(v) for v in row) + " |" for row in cells.itertuples(index=False)]
    return "\n".join(lines)


def render_markdown(report: Report, image_prefix: str = "") -> str:
    """The report as markdown; figures are referenced as ``image_prefix + filename``."""
    parts = [f"# {report.title}", "", "## Scenario", "",
             *[f"- **{k}**: {v}" for k, v in report.settings], ""]
    if report.findings:
        parts += ["## Result", "", *[f"- {f}" for f in report.findings], ""]
    for caption, table in report.tables:
        parts += [f"## {caption}", "", markdown_table(table), ""]
    for fig in report.figures:
        parts += [f"![{fig.caption}]({image_prefix}{fig.filename})", "", f"*{fig.caption}*", ""]
    return "\n".join(parts)


def write_html_report(results_dir: str | Path, path: str | Path | None = None) -> Path:
    """Write the HTML report of a run or sweep directory (default ``RESULTS_DIR/report.html``)."""
    report = build_report(results_dir)
    out = Path(path) if path else Path(results_dir) / "report.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_html(report), encoding="utf-8")
    return out


def report_markdown(results_dir: str | Path, out_dir: str | Path | None = None, name: str = "report.md") -> Path:
    """Write ``report.md`` and its PNG figures into ``out_dir`` (default ``RESULTS_DIR/report/``).

    The figures are named after the report file (``run.md`` -> ``run-accuracy.png``), so
    two reports in one folder keep their own figures. Returns the markdown file's path.
    Experiments use this to put a short report with numbers and figures next to their results.
    """
    report = build_report(results_dir)
    folder = Path(out_dir) if out_dir else Path(results_dir) / "report"
    folder.mkdir(parents=True, exist_ok=True)
    prefix = f"{Path(name).stem}-"
    for fig in report.figures:
        (folder / f"{prefix}{fig.filename}").write_bytes(fig.png)
    path = folder / name
    path.write_text(render_markdown(report, image_prefix=prefix), encoding="utf-8")
    return path
