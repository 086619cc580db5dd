"""Plots and reports built from run and sweep directories (never from live objects)."""

from emsfl_sim.report.plots import plot_accuracy, plot_link_timeline
from emsfl_sim.report.report import build_report, report_markdown, write_html_report

__all__ = ["build_report", "plot_accuracy", "plot_link_timeline", "report_markdown", "write_html_report"]
