"""CLI command (not built yet)."""

from __future__ import annotations

import argparse

from emsfl_sim.cli.main import NotImplementedCommand


def run_tle(args: argparse.Namespace) -> int:
    """Not implemented yet."""
    raise NotImplementedCommand(args.command)
