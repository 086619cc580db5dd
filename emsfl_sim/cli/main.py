"""The ``emsfl-sim`` command line.

Each subcommand lives in its own small function; heavy packages (torch,
skyfield) are imported inside the command that needs them so ``--help`` and
``validate`` stay fast. Input errors (and OSErrors on a path: a file in the way,
permission denied, a full disk) print one line and exit 1; ``--debug`` shows the
traceback instead. A closed stdout pipe (``| head``) exits quietly with 141.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from emsfl_sim import __version__
from emsfl_sim.errors import InputError

EXIT_INPUT_ERROR = 1
EXIT_NOT_IMPLEMENTED = 2
#: Exit status when stdout's reader closed the pipe (128 + SIGPIPE, as shells report it).
EXIT_BROKEN_PIPE = 141

Command = Callable[[argparse.Namespace], int]


class NotImplementedCommand(Exception):
    """A subcommand that exists in the CLI but is not built yet."""


# ----------------------------------------------------------------- commands

def _non_negative_int(text: str) -> int:
    """Argparse type: an integer >= 0 (seeds)."""
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer (got {value}); seeds count from 0")
    return value

def cmd_validate(args: argparse.Namespace) -> int:
    """Validate scenario files; print one line per file."""
    from emsfl_sim.cli.validate_cmd import run_validate

    return run_validate(args)


def cmd_show(args: argparse.Namespace) -> int:
    """Print the fully resolved scenario (``extends`` merged, defaults filled)."""
    from emsfl_sim.cli.validate_cmd import run_show

    return run_show(args)


def cmd_contacts(args: argparse.Namespace) -> int:
    """Compute the contact plan of a scenario and print its summary."""
    from emsfl_sim.cli.contacts_cmd import run_contacts

    return run_contacts(args)


def cmd_idle(args: argparse.Namespace) -> int:
    """Idle statistics: time with no / one / several clusters connected, per-cluster fractions, gaps."""
    from emsfl_sim.cli.idle_cmd import run_idle

    return run_idle(args)


def cmd_payloads(args: argparse.Namespace) -> int:
    """Bytes of each strategy's uploads (experts, shared part) and the passes of the link each needs."""
    from emsfl_sim.cli.payloads_cmd import run_payloads

    return run_payloads(args)


def cmd_link_budget(args: argparse.Namespace) -> int:
    """Print the link budget of a scenario at an elevation and at the mask."""
    from emsfl_sim.cli.link_cmd import run_link_budget

    return run_link_budget(args)


def cmd_tle(args: argparse.Namespace) -> int:
    """TLE tools: generate Walker shells, check TLE files."""
    from emsfl_sim.cli.tle_cmd import run_tle

    return run_tle(args)


def cmd_run(args: argparse.Namespace) -> int:
    """Run a scenario end to end (one or several strategies)."""
    from emsfl_sim.cli.run_cmd import run_scenario

    return run_scenario(args)


def cmd_sweep(args: argparse.Namespace) -> int:
    """Run a parameter sweep."""
    from emsfl_sim.cli.sweep_cmd import run_sweep

    return run_sweep(args)


def cmd_report(args: argparse.Namespace) -> int:
    """Build a report from a run or sweep directory."""
    from emsfl_sim.cli.report_cmd import run_report

    return run_report(args)


# ------------------------------------------------------------------- parser
SET_HELP = "override a field by dotted path (repeatable), e.g. --set link.elevation_mask_deg=40 or " \
    "--set clusters.0.devices=3"


def _add_set(p: argparse.ArgumentParser) -> None:
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help=SET_HELP)


def _add_scenario_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The commands that read a scenario and compute little: validate, show, contacts, idle, payloads, link-budget."""
    p = sub.add_parser("validate", help="validate scenario files", description=cmd_validate.__doc__)
    p.add_argument("files", nargs="+", metavar="FILE", help="scenario YAML files")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("show", help="print the fully resolved scenario", description=cmd_show.__doc__)
    p.add_argument("file", metavar="FILE")
    p.add_argument("--format", choices=["yaml", "json"], default="yaml")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("contacts", help="compute a scenario's contact plan", description=cmd_contacts.__doc__)
    p.add_argument("scenario", metavar="SCENARIO")
    p.add_argument("-o", "--output", metavar="FILE", help="write the pass table (.parquet or .csv)")
    p.add_argument("--plot", metavar="FILE.png", help="write a timeline plot")
    _add_set(p)
    p.set_defaults(func=cmd_contacts)

    p = sub.add_parser("idle", help="idle statistics of a scenario or a global grid", description=cmd_idle.__doc__)
    p.add_argument("scenario", metavar="SCENARIO")
    p.add_argument("--grid", nargs=2, type=float, metavar=("LAT_STEP", "LON_STEP"),
                   help="virtual clusters on a latitude-longitude grid (degrees) instead of the scenario's")
    p.add_argument("-o", "--output", metavar="OUT_DIR",
                   help="folder for the tables and plots (default runs/idle/NAME[-gridLATxLON])")
    _add_set(p)
    p.set_defaults(func=cmd_idle)

    p = sub.add_parser("payloads", help="upload sizes per strategy and the passes they need",
                       description=cmd_payloads.__doc__)
    p.add_argument("scenario", metavar="SCENARIO")
    p.add_argument("-o", "--output", metavar="FILE.csv", help="write the table as CSV")
    _add_set(p)
    p.set_defaults(func=cmd_payloads)

    p = sub.add_parser("link-budget", help="print the link budget", description=cmd_link_budget.__doc__)
    p.add_argument("scenario", metavar="SCENARIO")
    p.add_argument("--elevation", type=float, metavar="DEG", help="elevation to evaluate (default 90)")
    p.add_argument("--altitude-km", type=float, help="satellite altitude (default: from the constellation)")
    p.add_argument("--no-passes", action="store_true", help="skip the per-pass volume statistics")
    _add_set(p)
    p.set_defaults(func=cmd_link_budget)


def _add_run_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The commands that simulate or read results: run, sweep, report."""
    p = sub.add_parser("run", help="run a scenario end to end", description=cmd_run.__doc__)
    p.add_argument("scenario", metavar="SCENARIO")
    p.add_argument("--strategy", action="append", dest="strategies", metavar="S",
                   help="strategy to run (repeatable; default: the scenario's strategy.names)")
    p.add_argument("--out", metavar="DIR", help="output directory (default: the scenario's output.directory)")
    p.add_argument("--seed", type=_non_negative_int, help="override the scenario seed (>= 0)")
    p.add_argument("--seeds", metavar="SPEC",
                   help="run every seed, e.g. 0-4, 0,2,5 or 1-3,7, and summarise across seeds with 95%% "
                   "intervals (overrides the scenario's seeds; not with --seed)")
    _add_set(p)
    p.add_argument("--fresh", action="store_true", help="ignore finished strategies in DIR and run all again")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("sweep", help="run a parameter sweep", description=cmd_sweep.__doc__)
    p.add_argument("scenario", metavar="SCENARIO")
    p.add_argument("--out", metavar="DIR")
    p.add_argument("--workers", type=int, help="parallel points (default: CPU count)")
    p.add_argument("--executor", choices=["process", "ray", "serial"], default="process")
    p.add_argument("--address", help="Ray cluster address (with --executor ray)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("report", help="build a report from a results directory", description=cmd_report.__doc__)
    p.add_argument("results", metavar="RESULTS_DIR")
    p.add_argument("-o", "--output", metavar="FILE", help="report file (default RESULTS_DIR/report.html)")
    p.set_defaults(func=cmd_report)


def _add_tle_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The TLE tools: ``tle walker`` and ``tle check``."""
    p = sub.add_parser("tle", help="TLE tools (walker shells, checks)", description=cmd_tle.__doc__)
    tsub = p.add_subparsers(dest="tle_command", metavar="TLE_COMMAND")
    tsub.required = True
    w = tsub.add_parser("walker", help="generate a Walker-delta (or star) shell as TLE text")
    w.add_argument("--altitude-km", type=float, required=True)
    w.add_argument("--inclination-deg", type=float, required=True)
    w.add_argument("--planes", type=int, required=True)
    w.add_argument("--sats-per-plane", type=int, required=True)
    w.add_argument("--phasing", type=int, default=1, help="Walker phasing factor F (0 <= F < planes)")
    w.add_argument("--raan-spread-deg", type=float, default=360.0, help="360 (Walker delta) or 180 (star); nothing else")
    w.add_argument("--epoch", default="2023-07-18T00:00:00Z", help="TLE epoch (UTC ISO 8601)")
    w.add_argument("--name-prefix", default="WALKER")
    w.add_argument("--first-norad-id", type=int, default=90000)
    w.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    c = tsub.add_parser("check", help="parse TLE files and report satellites, epochs and problems")
    c.add_argument("files", nargs="+", metavar="FILE")
    c.add_argument("--skip-bad", action="store_true", help="skip malformed entries and count them")
    p.set_defaults(func=cmd_tle)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="emsfl-sim",
        description="Discrete-event simulator for federated fine-tuning of MoE models over "
        "satellite-terrestrial networks (EMS-FL).",
    )
    parser.add_argument("--version", action="version", version=f"emsfl-sim {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    _add_scenario_commands(sub)
    _add_run_commands(sub)
    _add_tle_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``emsfl-sim`` console script."""
    import warnings

    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.debug:
        # Library deprecation chatter (transformers, PEFT) is noise for users of the CLI.
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
    try:
        status = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, inside the handlers, not at interpreter exit
        return status
    except InputError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INPUT_ERROR
    except NotImplementedCommand as exc:
        if args.debug and exc.__cause__ is not None:
            raise
        print(f"emsfl-sim {exc}: not implemented yet in this version", file=sys.stderr)
        return EXIT_NOT_IMPLEMENTED
    except KeyboardInterrupt:
        print("interrupted; finished results are kept and a rerun resumes", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return _broken_pipe()
    except FileNotFoundError as exc:
        if args.debug:
            raise
        print(f"error: {exc.filename}: file or folder not found; check the path", file=sys.stderr)
        return EXIT_INPUT_ERROR
    except OSError as exc:  # an output path that is a file, not writable, or on a full disk
        if args.debug or exc.filename is None:
            raise
        from emsfl_sim.errors import os_error

        print(f"error: {os_error(exc)}", file=sys.stderr)
        return EXIT_INPUT_ERROR


def _broken_pipe() -> int:
    """The reader of stdout went away (``emsfl-sim validate ... | head -1``): stop quietly.

    Python would report the failed flush at exit, so stdout is pointed at /dev/null;
    the exit status is 141 (128 + SIGPIPE), as for any other program a pipe closes on.
    """
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return EXIT_BROKEN_PIPE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
