"""``emsfl-sim report``: a self-contained HTML report of a run or sweep directory."""

from __future__ import annotations

import argparse


def run_report(args: argparse.Namespace) -> int:
    """Write RESULTS_DIR/report.html (or -o FILE; a .md file gets markdown + PNG files beside it)."""
    from pathlib import Path

    from emsfl_sim.cli.common import check_writable_file
    from emsfl_sim.report.report import report_markdown, write_html_report

    output = Path(args.output) if args.output else None
    if output is not None:
        check_writable_file(output, "--output")
    if output is not None and output.suffix.lower() == ".md":
        path = report_markdown(args.results, output.parent, output.name)
    else:
        path = write_html_report(args.results, output)
    print(f"report: {path}")
    return 0
