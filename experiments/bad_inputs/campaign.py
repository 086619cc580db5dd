"""Bad-input campaign: >110 inputs and faults a new user could hit, run through the real CLI.

Every case runs ``.venv/bin/emsfl-sim`` (or a short shell pipeline) as a subprocess in its
own temporary directory, with a timeout (a hang counts as BAD), and is classified by the
rule below. The table and the counts go to stdout, the rows to ``--out`` (CSV).

Classes (the issue's list):

* ``silent``     silent wrong results: reused output dirs, concurrent runs, bad orbits in
                 TLEs, sweeps whose points fail, nonsense values that must not validate
* ``late``       "validate says ok but run fails later"
* ``warn``       runs with zero contacts / no evaluation / no aggregation: must warn
* ``traceback``  inputs that used to end in a traceback where one line belongs
* ``misleading`` messages that name the wrong thing or print bounds / dates wrongly

Verdict rule (automatic; ``expect`` of each case says which applies):

``error`` (a bad input):
    BAD  if it timed out, printed a Python traceback, exited 0 (silent acceptance) or
         exited with a status other than 1/2 (e.g. killed by a signal);
    WEAK if the diagnostic (stderr without argparse's usage lines, known progress lines
         such as ``scenario 'x' (seed 0) -> DIR`` and ``warning:`` lines) is not exactly one
         line, or that line lacks the expected field, the file, a fix (a ``;`` clause or a
         word like use/give/set/remove/check/expected/must/choose), or holds a phrase the
         case forbids (``must_not``, e.g. "not found" for a folder);
    GOOD otherwise.
``warn`` (a run that works but means little):
    BAD  on a timeout, a traceback, a non-zero exit, no warning line at all, or a
         ``summary.json`` without the ``warnings`` entry;
    WEAK if more warning lines than the case allows (one per cause) or the warning lacks
         the expected words;
    GOOD otherwise.
``ok`` (a valid but unusual input that must work: CRLF TLEs, UTF-8 BOM, --fresh):
    BAD on a timeout, a traceback or a non-zero exit; then the case's own check.
``quiet`` (a closed stdout pipe): GOOD if no traceback, nothing on stderr and the status
    is 0 or 141; BAD otherwise.
``custom``: the case's own function decides (stated in its ``note``).

A case may add a ``check`` function that looks at the files it left (e.g. a reused run
directory: which seed do the results hold?) and overrides the verdict with its reason.

Run from the repository root:  .venv/bin/python experiments/bad_inputs/campaign.py [--out F]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
CLI = str(REPO / ".venv" / "bin" / "emsfl-sim")
QS = REPO / "scenarios" / "quickstart.yaml"
SHARED_TLE = Path("/work/shared/tle")
STARLINK = SHARED_TLE / "starlink-2023-07.tle"
ONEWEB = SHARED_TLE / "oneweb-2025-12.tle"
TIMEOUT_S = 60

#: stderr lines that are progress/information, not the diagnostic of the case.
INFO_PREFIXES = ("scenario '", "link schedule:", "learning world:", "sweep '", "usage:", "  ", "warning:",
                 "pre-training", "pretrain", "seed ", "results:")
#: Memory limit of every command (address space): a case must not take the shared machine down.
MEMORY_LIMIT_BYTES = 12 * 2**30
FIX_WORDS = re.compile(r";|\buse\b|\bgive\b|\bset\b|\bremove\b|\bcheck\b|\bexpected\b|\bmust\b|\bchoose\b|"
                       r"\bname the\b|\bquote\b|\bwrite\b|\bfix\b|\brun\b|\bleave\b|\bfree\b|\bneeds\b|invalid \w+ value|"
                       r"invalid choice|required|not found|\bneeds?\b", re.I)

# ----------------------------------------------------------------- scenario snippets
#: Extends the quickstart (orbital, 1200 km polar satellite); tiny and cheap to validate.
def ext(body: str) -> str:
    return f"extends: {QS}\n{textwrap.dedent(body)}"


#: A run that finishes in seconds: one cluster, one device, no pre-training, 1 h, no pass.
TINY = ext("""
name: tiny
time: {duration_s: 3600}
model: {pretrain_steps: 0}
data: {samples_per_device: 8, test_samples_per_domain: 4}
clusters:
  - {name: europe, lat_deg: 48.1, lon_deg: 11.6, devices: 1, domain: astronomy, compute_profile: rtx-4090}
strategy: {names: [baseline]}
output: {plots: false}
""")

#: A run that trains: idealised time, 2 slots of one cluster (about 7 s of CPU).
IDEAL = ext("""
name: ideal
time: {mode: idealised, orbital_cycles: 2, slot_duration_s: 600, duration_s: null}
constellation: {walker: []}
model: {pretrain_steps: 0}
data: {samples_per_device: 8, test_samples_per_domain: 4}
training: {round_interval_s: 300, local_steps: 1, batch_size: 4}
evaluation: {every_s: null, every_cycles: 1}
clusters:
  - {name: europe, lat_deg: 48.1, lon_deg: 11.6, devices: 1, domain: astronomy, compute_profile: rtx-4090}
strategy: {names: [baseline]}
output: {plots: false}
""")

def on(base: str, body: str) -> dict[str, str]:
    """Files of a case: ``base.yaml`` (TINY or IDEAL) and ``s.yaml`` extending it with ``body``."""
    return {"base.yaml": base, "s.yaml": "extends: base.yaml\n" + textwrap.dedent(body)}


L1 = "1 44713U 19074A   23198.31707558  .00000584  00000+0  58057-4 0  9994"
L2 = "2 44713  53.0547 204.8335 0000977  90.1304 269.9797 15.06399147203267"


def checksum(line: str) -> str:
    total = sum(int(c) if c.isdigit() else (1 if c == "-" else 0) for c in line[:68])
    return line[:68] + str(total % 10)


def tle(name: str, norad: int, ecc: str = "0000977", mm: str = "15.06399147", epoch: str = "23198.31707558",
        ndot: str = " .00000584", bstar: str = " 58057-4") -> str:
    l1 = L1[:2] + f"{norad:05d}" + L1[7:18] + epoch + " " + ndot + L1[43:53] + bstar + L1[61:]
    l2 = L2[:2] + f"{norad:05d}" + L2[7:26] + ecc + L2[33:52] + f"{mm:>11}" + L2[63:]
    return f"{name}\n{checksum(l1)}\n{checksum(l2)}\n"


def tle_scenario(tle_name: str = "sats.tle", server: str | None = None, const: str = "", extra: str = "") -> str:
    srv = f"server: {{mode: single, satellite: {server}}}" if server else "server: {mode: constellation}"
    return ext(f"""
    name: tle-case
    time: {{duration_s: 21600}}
    constellation: {{walker: [], tle_files: [{tle_name}]{const}}}
    {srv}
    """) + extra


def first_sats(path: Path, n: int) -> str:
    return "".join(path.read_text().splitlines(keepends=True)[: 3 * n])


# ----------------------------------------------------------------------- the cases
@dataclass
class Case:
    id: str
    cls: str
    argv: list[str] | str                      # list: argv after `emsfl-sim`; str: a shell command
    files: dict[str, str | bytes | Callable[[Path], Any]] = field(default_factory=dict)
    expect: str = "error"                      # error | warn | ok | quiet | custom
    fld: str | None = None                     # the field/option the message must name
    file: str | None = "auto"                  # substring the message must hold ("auto": the first file)
    must: list[str] = field(default_factory=list)
    must_not: list[str] = field(default_factory=list)
    should: str = ""                           # what the message should be (for the report)
    before: list[list[str]] = field(default_factory=list)   # commands run first (e.g. a first run)
    between: Callable[[Path], None] | None = None          # change files between before and argv
    check: Callable[[Path, Result], tuple[str, str] | None] | None = None
    summary: str | None = None                 # warn: path of a summary.json relative to the case dir
    max_warn_lines: int = 1
    timeout: int = TIMEOUT_S


@dataclass
class Result:
    rc: int | None
    out: str
    err: str
    wall: float
    timed_out: bool


def W(*more: str) -> list[str]:  # noqa: N802  (short builder of `tle walker` argv)
    return ["tle", "walker", "--altitude-km", "550", "--inclination-deg", "53", "--planes", "2",
            "--sats-per-plane", "1", *more]


def summary_of(d: Path, rel: str) -> dict[str, Any] | None:
    p = d / rel
    return json.loads(p.read_text()) if p.is_file() else None


def reuse_check(key: str, new_value: Any, rel: str = "r/baseline/summary.json"):
    """A rerun into a used directory: refused (GOOD if the line names the field) or results of the new run."""
    def check(d: Path, r: Result) -> tuple[str, str] | None:
        if r.rc != 0:
            return None  # the generic error rule judges the refusal
        s = summary_of(d, rel)
        run = json.loads((d / "r" / "run.json").read_text()) if (d / "r" / "run.json").is_file() else {}
        got = (s or {}).get(key, run.get(key))
        if got != new_value:
            return "BAD", f"exit 0 but {rel} still holds {key}={got!r}, not the new {new_value!r} (old results reported)"
        return "GOOD", f"rerun replaced the results ({key}={got!r})"
    return check


def build_cases() -> list[Case]:  # noqa: PLR0915  (a flat list is the clearest form)
    c: list[Case] = []
    add = c.append
    S, L, WN, T, M = "silent", "late", "warn", "traceback", "misleading"
    run = ["run", "s.yaml", "--out", "r", "--no-progress"]

    # ============================================================ silent wrong results
    # --- reused output directory
    add(Case("S01-reuse-seed", S, [*run, "--seed", "1"], {"s.yaml": TINY}, before=[run], fld="seed",
             file=None, must=["--fresh"], check=reuse_check("seed", 1),
             should="r: --out: holds results of seed 0 ...; use --fresh or another --out"))
    add(Case("S02-reuse-duration", S, [*run, "--set", "time.duration_s=1800"], {"s.yaml": TINY}, before=[run],
             fld="duration", file=None, check=reuse_check("simulated_s", 1800.0)))
    add(Case("S03-reuse-mask", S, [*run, "--set", "link.elevation_mask_deg=20"], {"s.yaml": TINY}, before=[run],
             fld="elevation_mask_deg", file=None))
    add(Case("S04-reuse-edited-file", S, run, {"s.yaml": TINY}, before=[run], fld="clusters", file=None,
             between=lambda d: (d / "s.yaml").write_text(TINY.replace("devices: 1", "devices: 2")),
             should="refused naming clusters[0].devices (the scenario file changed)"))
    add(Case("S05-reuse-edited-tle", S, ["run", "s.yaml", "--out", "r", "--no-progress", "--set",
                                         "time.duration_s=1800"],
             {"sats.tle": tle("SAT-A", 44713), "s.yaml": tle_scenario() + "model: {pretrain_steps: 0}\n"
              "strategy: {names: [baseline]}\noutput: {plots: false}\n"
              "data: {samples_per_device: 8, test_samples_per_domain: 4}\n"},
             before=[["run", "s.yaml", "--out", "r", "--no-progress", "--set", "time.duration_s=1800"]],
             between=lambda d: (d / "sats.tle").write_text(tle("SAT-A", 44713, mm="14.00000000")),
             fld="tle", file=None, should="refused: the TLE file's content changed since the first run"))
    add(Case("S06-reuse-fresh-ok", S, [*run, "--seed", "2", "--fresh"], {"s.yaml": TINY}, before=[run],
             expect="ok", check=reuse_check("seed", 2)))
    add(Case("S07-reuse-seeds-list", S, [*run, "--seeds", "0-1"], {"s.yaml": TINY}, before=[run],
             expect="custom", check=lambda d, r: _seeds_reuse(d, r)))
    add(Case("S08-concurrent-runs", S, "", {"s.yaml": IDEAL.replace("orbital_cycles: 2", "orbital_cycles: 12")},
             expect="custom", check=lambda d, r: _concurrent(d, r), timeout=120,
             should="second run: r: another run (pid N) holds this folder; wait or choose another --out"))
    # --- sweeps whose points fail
    sweep_cuda = IDEAL + "sweep: {parameters: {training.device: [cuda, cuda]}}\n" \
        if not _has_cuda() else IDEAL + "sweep: {parameters: {model.config_overrides.num_attention_heads: [3, 5]}}\n"
    add(Case("S09-sweep-all-fail-runtime", S, ["sweep", "s.yaml", "--out", "r", "--workers", "1", "--no-progress"],
             {"s.yaml": sweep_cuda}, expect="custom", check=_sweep_failed("training.device" if not _has_cuda() else "config_overrides"), timeout=120,
             should="exit 1: 'r: 2 of 2 points failed' (or refused before any work)"))
    add(Case("S10-sweep-all-invalid", S, ["sweep", "s.yaml", "--out", "r", "--workers", "1", "--no-progress"],
             {"s.yaml": IDEAL + "sweep: {parameters: {training.learning_rate: [-1, -2]}}\n"},
             expect="custom", check=_sweep_failed("learning_rate")))
    add(Case("S11-sweep-one-bad-point", S, ["sweep", "s.yaml", "--out", "r", "--workers", "1", "--no-progress"],
             {"s.yaml": IDEAL + "sweep: {parameters: {clusters.0.compute_profile: [rtx-4090, h900]}}\n"},
             expect="custom", check=_sweep_failed("compute_profile"), timeout=120))
    add(Case("S12-sweep-unknown-path", S, ["sweep", "s.yaml", "--out", "r", "--no-progress"],
             {"s.yaml": IDEAL + "sweep: {parameters: {training.lr: [0.1, 0.2]}}\n"}, fld="training.lr"))
    # --- invalid orbits in TLEs
    for cid, kw, what in (("S13", dict(ecc="9990000"), "eccentricity 0.999 (perigee under the surface)"),
                          ("S14", dict(mm="30.00000000"), "mean motion 30 rev/day (orbit inside the Earth)"),
                          ("S15", dict(mm="0.00000000"), "mean motion 0"),
                          ("S16", dict(mm="16.40000000", ndot=" .09999999", bstar=" 99999-1",
                                       epoch="23170.00000000"), "decayed before the start"),
                          ("S17", dict(mm="-15.0639914"), "negative mean motion")):
        body = tle("GOOD-1", 44713) + tle("BAD-ORBIT", 50000, **kw)
        add(Case(f"{cid}a-tle-check-{what.split()[0]}", S, ["tle", "check", "sats.tle"], {"sats.tle": body},
                 expect="custom", check=_tle_check_flags("BAD-ORBIT"),
                 should=f"tle check must report BAD-ORBIT ({what}) as a problem (warning naming line/NORAD id)"))
        only = tle("BAD-ORBIT", 50000, **kw)
        add(Case(f"{cid}b-contacts-only-{what.split()[0]}", S, ["contacts", "s.yaml"],
                 {"sats.tle": only, "s.yaml": tle_scenario()}, fld="constellation",
                 should=f"s.yaml: constellation: SGP4 cannot propagate ... ({what}); fix or replace the TLEs"))
    add(Case("S18-mixed-bad-orbit-warns", S, ["contacts", "s.yaml"],
             {"sats.tle": tle("GOOD-1", 44713) + tle("FAST", 50001, mm="30.00000000"), "s.yaml": tle_scenario()},
             expect="custom", check=_warned(["excluded 1 satellite", "FAST"])))
    add(Case("S19-bad-checksum", S, ["tle", "check", "sats.tle"],
             {"sats.tle": tle("GOOD-1", 44713)[:-2] + ("8" if tle("GOOD-1", 44713)[-2] != "8" else "9") + "\n"},
             fld="line 3", must=["checksum"]))
    add(Case("S20-bad-checksum-real-file", S, ["validate", "s.yaml"],
             {"sats.tle": lambda d: _corrupt_checksum(first_sats(STARLINK, 20), 7),
              "s.yaml": tle_scenario()}, fld="line 24", file="sats.tle", must=["checksum"]))
    add(Case("S21-skip-bad-count", S, ["tle", "check", "--skip-bad", "sats.tle"],
             {"sats.tle": lambda d: _corrupt_checksum(first_sats(STARLINK, 30), 3, 9, 27) + "JUNK\n1 xx\n"},
             expect="custom", check=_skip_count(4, 30 - 3)))
    add(Case("S22-skip-bad-tle-scenario", S, ["contacts", "s.yaml"],
             {"sats.tle": lambda d: _corrupt_checksum(first_sats(STARLINK, 12), 1, 5),
              "s.yaml": tle_scenario(const=", skip_bad_tle: true")},
             expect="custom", check=_warned(["skipped 2 bad TLE entries"], sats=10)))
    add(Case("S23-crlf-tle", S, ["tle", "check", "sats.tle"],
             {"sats.tle": first_sats(ONEWEB, 25).replace("\n", "\r\n").encode()},
             expect="ok", check=lambda d, r: _count_in(r.out, 25)))
    add(Case("S24-crlf-tle-scenario", S, ["validate", "s.yaml"],
             {"sats.tle": first_sats(STARLINK, 5).replace("\n", "\r\n").encode(),
              "s.yaml": tle_scenario(server="STARLINK-1008")}, expect="ok"))
    add(Case("S25-cr-only-tle", S, ["tle", "check", "sats.tle"],
             {"sats.tle": first_sats(STARLINK, 4).replace("\n", "\r").encode()},
             expect="ok", check=lambda d, r: _count_in(r.out, 4)))
    add(Case("S26-duplicate-norad-check", S, ["tle", "check", "sats.tle"],
             {"sats.tle": lambda d: first_sats(STARLINK, 3) + first_sats(STARLINK, 1).replace("STARLINK-1007",
                                                                                               "DUP-COPY")},
             expect="custom", check=_warned(["duplicate NORAD", "44713"], sats_in_out=None)))
    add(Case("S27-duplicate-norad-two-files", S, ["contacts", "s.yaml"],
             {"a.tle": lambda d: first_sats(STARLINK, 3), "b.tle": lambda d: first_sats(STARLINK, 2),
              "s.yaml": ext("""
              name: dup
              time: {duration_s: 7200}
              constellation: {walker: [], tle_files: [a.tle, b.tle]}
              server: {mode: constellation}
              """)}, expect="custom", check=_warned(["dropped 2 duplicate NORAD ids"])))
    add(Case("S28-tle-epoch-years-away", S, ["contacts", "s.yaml", "--set", "time.start_utc=2031-01-01T00:00:00Z"],
             {"sats.tle": lambda d: first_sats(STARLINK, 3), "s.yaml": tle_scenario()},
             expect="custom", check=lambda d, r: _epoch_years(r),
             should="s.yaml: time.start_utc: 2031-01-01 is 7.5 years from every TLE epoch; use TLEs near the "
             "scenario time or move the start time (check_epoch_span exists but is not called)"))
    add(Case("S29-truncated-tle-file", S, ["validate", "s.yaml"],
             {"sats.tle": lambda d: first_sats(STARLINK, 4)[:-30], "s.yaml": tle_scenario()},
             fld="line 12", file="sats.tle"))
    add(Case("S30-tle-shifted-column", S, ["tle", "check", "sats.tle"],
             {"sats.tle": lambda d: first_sats(ONEWEB, 2).replace("2 44058  87", "2 44058   87", 1)},
             fld="line 6"))
    add(Case("S31-tle-all-bad-skip", S, ["validate", "s.yaml"],
             {"sats.tle": "JUNK\nMORE JUNK\n", "s.yaml": tle_scenario(const=", skip_bad_tle: true")},
             fld=None, file="sats.tle", must=["no valid TLE"]))
    add(Case("S32-norad-filter-nothing", S, ["validate", "s.yaml"],
             {"sats.tle": lambda d: first_sats(STARLINK, 3),
              "s.yaml": tle_scenario(const=", norad_ids: [12345]")}, fld="constellation"))
    add(Case("S33-server-not-in-tle", S, ["validate", "s.yaml"],
             {"sats.tle": lambda d: first_sats(STARLINK, 3), "s.yaml": tle_scenario(server="STARLINK-9999")},
             fld="server.satellite"))
    # --- nonsense values that must not validate
    for cid, body, fld_ in (
            ("S34-inf-duration", "time: {duration_s: .inf}", "time.duration_s"),
            ("S35-nan-lat", "clusters: [{name: a, lat_deg: .nan, lon_deg: 0}]", "clusters[0].lat_deg"),
            ("S36-neg-inf-power", "link: {tx_power_dbm: -.inf}", "link.tx_power_dbm"),
            ("S37-nan-lr", "training: {learning_rate: .NaN}", "training.learning_rate"),
            ("S38-huge-devices", "clusters: [{name: a, lat_deg: 0, lon_deg: 0, devices: 99999999999}]",
             "clusters[0].devices"),
            ("S39-bool-devices", "clusters: [{name: a, lat_deg: 0, lon_deg: 0, devices: yes}]", "clusters[0].devices"),
            ("S40-bool-seed", "seed: true", "seed"),
            ("S41-float-seed", "seed: 1.5", "seed"),
            ("S42-bool-batch", "training: {batch_size: on}", "training.batch_size"),
            ("S43-bool-in-list", "sweep: {seeds: [0, false]}", "sweep.seeds[1]"),
            ("S44-dup-key-top", "name: a\nseed: 1\nseed: 2", "line 4"),
            ("S45-dup-key-nested", "link:\n  tx_power_dbm: 20\n  rx_antenna_gain_dbi: 30\n  tx_power_dbm: 25", "line 5"),
            ("S46-override-unknown", "model: {config_overrides: {num_expert: 8}}", "config_overrides.num_expert"),
            ("S47-override-wrong-type", "model: {config_overrides: {num_local_experts: many}}",
             "config_overrides.num_local_experts"),
            ("S48-target-percent", "evaluation: {target_accuracy: 50}", "evaluation.target_accuracy"),
            ("S49-huge-duration", "time: {duration_s: 1.0e+300}", "time.duration_s"),
            ("S50-huge-cycles", "time: {orbital_cycles: 1000000000000, duration_s: null}", "time.orbital_cycles"),
            ("S51-empty-strategies", "strategy: {names: []}", "strategy.names"),
            ("S52-feb30", "time: {start_utc: '2023-02-30T00:00:00Z'}", "time.start_utc"),
            ("S53-huge-samples", "data: {samples_per_device: 100000000000}", "data.samples_per_device"),
    ):
        add(Case(f"{cid}", S, ["validate", "s.yaml"], {"s.yaml": ext(body)}, fld=fld_))
    bomb = ['l0: &l0 ["x", "x", "x", "x", "x", "x", "x", "x"]']
    bomb += [f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 8) + "]" for i in range(1, 9)]
    add(Case("S54-alias-bomb", S, ["validate", "s.yaml"], {"s.yaml": ext("\n".join(bomb))}, fld="line",
             must=["alias"]))
    add(Case("S55-alias-bomb-show", S, ["show", "s.yaml"], {"s.yaml": ext("\n".join(bomb))}, fld="line",
             must=["alias"]))
    add(Case("S56-many-aliases", S, ["validate", "s.yaml"],
             {"s.yaml": ext("x: &a 1\n" + "\n".join(f"k{i}: *a" for i in range(150)))}, fld="line"))
    add(Case("S57-workers-0", S, ["sweep", str(REPO / "scenarios" / "paper-exp1-tiny.yaml"), "--workers", "0",
                                  "--out", "r"], fld="--workers", file=None))
    add(Case("S58-workers-neg", S, ["sweep", str(REPO / "scenarios" / "paper-exp1-tiny.yaml"), "--workers", "-1",
                                    "--out", "r"], fld="--workers", file=None))
    add(Case("S59-raan-90", S, W("--raan-spread-deg", "90"), fld="--raan-spread-deg", file=None))
    add(Case("S60-raan-nan", S, W("--raan-spread-deg", "nan"), fld="--raan-spread-deg", file=None))
    add(Case("S61-walker-planes-0", S, ["tle", "walker", "--altitude-km", "550", "--inclination-deg", "53",
                                        "--planes", "0", "--sats-per-plane", "1", "--phasing", "0"],
             fld="--planes", file=None))
    add(Case("S62-walker-alt-neg", S, W("--altitude-km", "-5"), fld="--altitude-km", file=None))
    add(Case("S63-walker-incl-200", S, W("--inclination-deg", "200"), fld="--inclination-deg", file=None))
    add(Case("S64-walker-alt-inf", S, W("--altitude-km", "inf"), fld="--altitude-km", file=None))
    add(Case("S65-contacts-xlsx", S, ["contacts", str(QS), "-o", "plan.xlsx"], fld="--output", file=None,
             check=lambda d, r: ("BAD", "plan.xlsx was written") if (d / "plan.xlsx").exists() else None))
    add(Case("S66-contacts-noext", S, ["contacts", str(QS), "-o", "plan"], fld="--output", file=None))
    add(Case("S67-seeds-reversed", S, ["run", str(QS), "--seeds", "4-0", "--out", "r"], fld="--seeds", file=None))
    add(Case("S68-seeds-huge", S, ["run", str(QS), "--seeds", "0-99999", "--out", "r"], fld="--seeds", file=None))
    add(Case("S69-seed-negative", S, ["run", "s.yaml", "--seed", "-3", "--out", "r", "--no-progress"],
             {"s.yaml": TINY}, expect="custom",
             check=lambda d, r: ("WEAK", "accepted (exit 0) although seeds: [-3] and --seeds are refused for negatives")
             if r.rc == 0 else judge_error(r, Case("x", S, [], fld="seed", file=None))))

    # ============================================ validate says ok but run fails later
    def late(cid: str, body: str, fld_: str, base: str = IDEAL, should: str = "", timeout: int = 90,
             extra_files: dict[str, Any] | None = None) -> None:
        files: dict[str, Any] = {**on(base, body), **(extra_files or {})}
        add(Case(cid, L, ["validate", "s.yaml"], files, fld=fld_, expect="custom", should=should,
                 check=_validate_then_run(fld_), timeout=timeout))
    late("L01-unknown-profile", "clusters: [{name: a, lat_deg: 0, lon_deg: 0, devices: 1, compute_profile: rtx-5090,"
         " domain: astronomy}]\n", "compute_profile")
    late("L02-unknown-domain", "clusters: [{name: a, lat_deg: 0, lon_deg: 0, devices: 1, domain: Astronomy}]\n",
         "domain")
    late("L03-preset-null", "model: {preset: null}\n", "model.preset")
    late("L04-preset-null-config-empty", "model: {preset: null, config: {}}\n", "model.config")
    late("L05-lora-nothing", "model: {lora: {targets: [w1]}}\n", "model.lora.targets")
    late("L06-lora-empty", "model: {lora: {targets: []}}\n", "model.lora.targets")
    late("L07-lora-partial", "model: {lora: {targets: [gate_up]}}\n", "model.lora.targets")
    late("L08-sweep-bad-value", "sweep: {parameters: {training.batch_size: [4, 0]}}\n", "batch_size")
    late("L09-sweep-bad-type", "sweep: {parameters: {training.optimizer: [adamw, lion]}}\n", "optimizer")
    late("L10-sweep-bad-domain", "sweep: {parameters: {clusters.0.domain: [astronomy, klingon]}}\n", "domain")
    late("L11-unknown-strategy", "strategy: {names: [baseline, fedavg]}\n", "strategy.names")
    late("L12-unknown-architecture", "model: {architecture: llama}\n", "model.architecture")
    late("L13-override-heads-3", "model: {config_overrides: {num_attention_heads: 3}}\n", "config_overrides",
         should="hidden_size must be divisible by num_attention_heads: name both fields")
    late("L14-override-experts-0", "model: {config_overrides: {num_local_experts: 0}}\n", "num_local_experts")
    late("L15-override-topk-gt-experts", "model: {config_overrides: {num_experts_per_tok: 9}}\n",
         "num_experts_per_tok")
    late("L16-num-experts-vs-clusters", "model: {num_experts: 1}\n", "num_experts",
         should="valid, or a one-line error naming model.num_experts")
    late("L17-jsonl-missing", "data: {jsonl_files: [nope.jsonl]}\nclusters: [{name: a, lat_deg: 0, lon_deg: 0, "
         "devices: 1}]\n", "jsonl_files")
    late("L18-jsonl-bad-row", "data: {jsonl_files: [d.jsonl]}\nclusters: [{name: a, lat_deg: 0, lon_deg: 0, "
         "devices: 1, domain: x}]\n", "d.jsonl",
         extra_files={"d.jsonl": '{"question": "q", "options": ["a", "b"], "answer": 5, "domain": "x"}\n{oops\n'})
    late("L19-checkpoint-missing", "model: {preset: null, checkpoint_path: no-such-dir}\n", "checkpoint_path")
    late("L20-max-batch-tokens-1", "training: {max_batch_tokens: 1}\n", "max_batch_tokens",
         should="works (micro-batches) or one line naming training.max_batch_tokens")
    late("L21-dirichlet-one-device", "data: {partition: dirichlet, dirichlet_alpha: 0.001, samples_per_device: 1}\n",
         "data", should="works or one line naming data.samples_per_device")
    late("L22-systems-model-dtype", "model: {systems_model: mixtral-8x7b, dtype: float16}\n", "model",
         should="works (float16 on CPU) or one line naming model.dtype")
    late("L23-gate-lr-huge", "training: {learning_rate: 10, optimizer: sgd}\n", "learning_rate",
         should="a run with lr 10 works (nan loss reported) or is refused in one line")
    late("L24-server-name-walker", "time: {mode: orbital, duration_s: 600, orbital_cycles: null}\n"
         "constellation: {walker: [{altitude_km: 550, inclination_deg: 53, planes: 1, sats_per_plane: 1}]}\n"
         "server: {satellite: WALKER-P01-S02}\n", "server.satellite")
    late("L25-output-template-attr", "output: {directory: 'runs/{name.nope}'}\n", "output.directory",
         should="s.yaml: output.directory: unknown key {name.nope}; the allowed keys are {name}, {seed}")

    # ========================================= zero contacts / no evaluation: warnings
    run_r = ["run", "s.yaml", "--out", "r", "--no-progress"]
    add(Case("W01-zero-contacts-short", WN, run_r, {"s.yaml": TINY}, expect="warn",
             summary="r/baseline/summary.json", must=["no contacts"]))
    add(Case("W02-zero-contacts-mask", WN, [*run_r, "--set", "link.elevation_mask_deg=89.9",
                                            "--set", "time.duration_s=21600"], {"s.yaml": TINY}, expect="warn",
             summary="r/baseline/summary.json", must=["no contacts"]))
    add(Case("W03-zero-contacts-low-inclination", WN, [*run_r, "--set", "time.duration_s=21600"], on(TINY, """
        constellation: {walker: [{altitude_km: 550, inclination_deg: 20, planes: 1, sats_per_plane: 1,
                                  name_prefix: LEO-SERVER}]}
        server: {satellite: LEO-SERVER-P01-S01}
        """), expect="warn", summary="r/baseline/summary.json", must=["no contacts"]))
    add(Case("W04-no-evaluation", WN, [*run_r, "--set", "evaluation.every_s=100000", "--set",
                                       "evaluation.every_cycles=null"], {"s.yaml": IDEAL}, expect="warn",
             summary="r/baseline/summary.json", must=["evaluat"],
             should="warning: s.yaml: evaluation.every_s: 100000 s is longer than the run (1200 s): no evaluation "
             "after the start; summary.json 'warnings' says so"))
    add(Case("W05-no-evaluation-cycles", WN, [*run_r, "--set", "evaluation.every_cycles=50"], {"s.yaml": IDEAL},
             expect="warn", summary="r/baseline/summary.json", must=["evaluat"]))
    add(Case("W06-no-aggregation", WN, [*run_r, "--set", "time.duration_s=21600", "--set",
                                        "link.bandwidth_per_device_hz=1", "--set", "training.round_interval_s=60"],
             {"s.yaml": TINY}, expect="warn", summary="r/baseline/summary.json", must=["aggregat"], timeout=90))
    add(Case("W07-zero-contacts-seeds", WN, [*run_r, "--seeds", "0,1"], {"s.yaml": TINY}, expect="warn",
             summary="r/seed-1/baseline/summary.json", must=["no contacts"], max_warn_lines=2, timeout=90))
    add(Case("W08-zero-contacts-constellation", WN, [*run_r, "--set", "server.mode=constellation",
                                                     "--set", "server.satellite=null"], {"s.yaml": TINY},
             expect="warn", summary="r/baseline/summary.json", must=["no contacts"]))
    add(Case("W09-idle-slots-all", WN, [*run_r, "--set", "time.idle_slot_rate=0.999", "--set",
                                        "time.orbital_cycles=3"], {"s.yaml": IDEAL}, expect="warn",
             summary="r/baseline/summary.json", must=["contact"]))

    # ============================================== tracebacks where one line belongs
    qs = str(QS)
    for cid, item, fld_ in (
            ("T01-set-list-index-range", "clusters.7.devices=3", "--set clusters.7.devices"),
            ("T02-set-list-neg-index", "clusters.-1.devices=3", "--set clusters.-1.devices"),
            ("T03-set-list-by-name", "strategy.names.emsfl=1", "--set strategy.names.emsfl"),
            ("T04-set-through-scalar", "link.tx_power_dbm.peak=3", "--set link.tx_power_dbm.peak"),
            ("T05-set-through-name", "name.first=x", "--set name.first"),
            ("T06-set-unparsable", "link.tx_power_dbm=[1", "--set link.tx_power_dbm"),
            ("T07-set-unparsable-brace", "clusters.0={name: a", "--set clusters.0"),
            ("T08-set-no-equals", "link.tx_power_dbm", "--set"),
            ("T09-set-empty-key", "=5", "--set"),
            ("T10-set-section-scalar", "link=5", "link"),
            ("T11-set-list-scalar", "clusters=3", "clusters"),
            ("T12-set-unknown-top", "linkk.tx_power_dbm=3", "--set linkk"),
            ("T13-set-double-dot", "link..tx_power_dbm=3", "--set link..tx_power_dbm"),
            ("T14-set-walker-through-list", "constellation.walker.planes.x=3", "--set constellation.walker"),
            ("T15-set-tab-value", "link.tx_power_dbm=\t", "link.tx_power_dbm"),
    ):
        add(Case(cid, T, ["contacts", qs, "--set", item], fld=fld_, file=None))
    add(Case("T16-set-overrides-hidden-neg", T, [*run, "--set", "model.config_overrides.hidden_size=-4"],
             {"s.yaml": TINY}, fld="config_overrides.hidden_size"))
    add(Case("T17-out-is-file", T, ["run", "s.yaml", "--out", "blocker", "--no-progress"],
             {"s.yaml": TINY, "blocker": "x"}, fld="--out", file="blocker"))
    add(Case("T18-out-under-file", T, ["run", "s.yaml", "--out", "blocker/sub", "--no-progress"],
             {"s.yaml": TINY, "blocker": "x"}, fld="--out", file="blocker"))
    add(Case("T19-out-unwritable", T, ["run", "s.yaml", "--out", "/sys/emsfl-bad-inputs", "--no-progress"],
             {"s.yaml": TINY}, fld="--out", file="/sys/emsfl-bad-inputs", must=["permission"]))
    add(Case("T20-template-dir-is-file", T, ["run", "s.yaml", "--no-progress"],
             {**on(TINY, "output: {directory: blocker}\n"), "blocker": "x"}, fld="output.directory",
             file="blocker"))
    add(Case("T21-contacts-o-dir", T, ["contacts", qs, "-o", "adir.csv"], {"adir.csv/x": "x"}, fld="--output", file="adir.csv"))
    add(Case("T22-contacts-plot-under-file", T, ["contacts", qs, "--plot", "blocker/p.png"], {"blocker": "x"},
             fld="--plot"))
    add(Case("T23-walker-o-unwritable", T, W("-o", "/sys/emsfl-bad.tle"), fld="--output", file="/sys"))
    add(Case("T24-report-o-dir", T, ["report", "r", "-o", "out"], {"s.yaml": TINY, "out/x": "x"},
             before=[["run", "s.yaml", "--out", "r", "--no-progress"]], fld="--output", file="out"))
    add(Case("T25-report-not-results", T, ["report", "empty"], {"empty/readme.txt": "x"}, file="empty"))
    add(Case("T26-cuda-without-cuda", T, ["run", "s.yaml", "--out", "r", "--no-progress", "--set",
                                          "training.device=cuda"], {"s.yaml": TINY}, fld="training.device",
             check=lambda d, r: ("GOOD", "CUDA present: cannot provoke") if _has_cuda() and r.rc == 0 else None))
    add(Case("T27-corrupt-config-json", T, run, {**on(TINY, "model: {preset: null, checkpoint_path: ck}\n"),
                                                 "ck/config.json": '{"model_type": "mixtral",'},
             fld="checkpoint_path", file="config.json"))
    add(Case("T28-checkpoint-no-weights", T, run, {**on(TINY, "model: {preset: null, checkpoint_path: ck}\n"),
                                                   "ck/config.json": '{"model_type": "mixtral"}'},
             fld="checkpoint_path", file="ck"))
    add(Case("T29-checkpoint-is-file", T, run, {**on(TINY, "model: {preset: null, checkpoint_path: ck.bin}\n"),
                                                "ck.bin": b"\x00\x01"}, fld="checkpoint_path", file="ck.bin"))
    add(Case("T30-checkpoint-wrong-type", T, run, {**on(TINY, "model: {preset: null, checkpoint_path: ck}\n"),
                                                   "ck/config.json": '{"model_type": "bert"}',
                                                   "ck/model.safetensors": b"not really"},
             fld="checkpoint_path", file="ck"))
    add(Case("T31-checkpoint-config-list", T, run, {**on(TINY, "model: {preset: null, checkpoint_path: ck}\n"),
                                                    "ck/config.json": "[1, 2]"}, fld="checkpoint_path", file="ck"))
    add(Case("T32-checkpoint-garbage-weights", T, run,
             {**on(TINY, "model: {preset: null, checkpoint_path: ck}\n"),
              "ck/config.json": json.dumps({"model_type": "mixtral", "hidden_size": 32, "intermediate_size": 64,
                                            "num_hidden_layers": 1, "num_attention_heads": 4,
                                            "num_key_value_heads": 4, "num_local_experts": 4,
                                            "num_experts_per_tok": 1, "vocab_size": 300}),
              "ck/model.safetensors": b"\x00" * 64}, fld="checkpoint_path", file="ck", timeout=90))
    add(Case("T33-override-hidden-neg", T, run, {**on(TINY, "model: {config_overrides: {hidden_size: -4}}\n")},
             fld="config_overrides.hidden_size"))
    add(Case("T34-override-layers-float", T, run,
             {**on(TINY, "model: {config_overrides: {num_hidden_layers: 1.5}}\n")},
             fld="config_overrides.num_hidden_layers"))
    add(Case("T35-template-unknown-key", T, ["run", "s.yaml", "--no-progress"],
             {**on(TINY, "output: {directory: 'runs/{nme}-{seed}'}\n")}, fld="output.directory"))
    add(Case("T36-template-unbalanced", T, ["run", "s.yaml", "--no-progress"],
             {**on(TINY, "output: {directory: 'runs/{name'}\n")}, fld="output.directory"))
    add(Case("T37-template-positional", T, ["validate", "s.yaml"],
             {**on(TINY, "output: {directory: 'runs/{0}'}\n")}, fld="output.directory"))
    add(Case("T38-latin1", T, ["validate", "s.yaml"], {"s.yaml": ("name: caf\xe9\n" + ext("")).encode("latin-1")},
             fld="line 1", must=["UTF-8"]))
    add(Case("T39-binary", T, ["validate", "s.yaml"], {"s.yaml": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"},
             must=["binary"]))
    add(Case("T40-utf16", T, ["validate", "s.yaml"], {"s.yaml": ext("name: x\n").encode("utf-16")},
             must=["UTF-8"], fld="line"))
    add(Case("T41-utf8-bom-ok", T, ["validate", "s.yaml"], {"s.yaml": ("\ufeff" + ext("name: bom\n")).encode()},
             expect="ok"))
    add(Case("T42-latin1-tle", T, ["tle", "check", "sats.tle"],
             {"sats.tle": lambda d: ("\xc9TOILE\n" + "\n".join(first_sats(STARLINK, 2).splitlines()[1:]) + "\n")
              .encode("latin-1")},
             file="sats.tle", must=["text"]))
    add(Case("T43-pipe-validate", T, f"{CLI} validate {REPO}/scenarios/*.yaml | head -1", expect="quiet"))
    add(Case("T44-pipe-show", T, f"{CLI} show {QS} | head -1", expect="quiet"))
    add(Case("T45-pipe-walker", T, f"{CLI} tle walker --altitude-km 550 --inclination-deg 53 --planes 72 "
             "--sats-per-plane 22 | head -2", expect="quiet"))
    add(Case("T46-pipe-tle-check", T, f"{CLI} tle check {STARLINK} {ONEWEB} | head -0", expect="quiet"))
    add(Case("T47-pipe-show-json", T, f"{CLI} show --format json {QS} | head -c 10", expect="quiet"))
    add(Case("T48-missing-validate", T, ["validate", "nope.yaml"], file="nope.yaml", must=["not found"]))
    add(Case("T49-missing-run", T, ["run", "nope.yaml", "--out", "r"], file="nope.yaml", must=["not found"]))
    add(Case("T50-missing-tle-check", T, ["tle", "check", "nope.tle"], file="nope.tle", must=["not found"]))
    add(Case("T51-missing-extends", T, ["validate", "s.yaml"], {"s.yaml": "extends: base.yaml\nname: x\n"},
             fld="extends", must=["base.yaml"]))
    add(Case("T52-missing-tle-file", T, ["validate", "s.yaml"], {"s.yaml": tle_scenario("gone.tle")},
             file="gone.tle", must=["not found"], should="s.yaml: constellation.tle_files[0]: gone.tle not found"))
    add(Case("T53-missing-report", T, ["report", "nope"], file="nope"))
    add(Case("T54-missing-sweep", T, ["sweep", "nope.yaml"], file="nope.yaml"))
    add(Case("T55-missing-link-budget", T, ["link-budget", "nope.yaml"], file="nope.yaml"))
    add(Case("T56-dir-validate", T, ["validate", "adir"], {"adir/x": "x"}, file="adir", must_not=["not found"]))
    add(Case("T57-dir-run", T, ["run", "adir", "--out", "r"], {"adir/x": "x"}, file="adir", must_not=["not found"]))
    add(Case("T58-dir-sweep", T, ["sweep", "adir", "--out", "r"], {"adir/x": "x"}, file="adir",
             must_not=["not found"]))
    add(Case("T59-report-on-file", T, ["report", "f.txt"], {"f.txt": "x"}, file="f.txt", must_not=["not found"]))
    for cid, body, fld_ in (
            ("T60-clusters-string", "clusters: europe", "clusters"),
            ("T61-clusters-mapping", "clusters: {name: a, lat_deg: 0, lon_deg: 0}", "clusters"),
            ("T62-link-list", "link: [1, 2]", "link"),
            ("T63-time-number", "time: 5", "time"),
            ("T64-lat-text", "clusters: [{name: a, lat_deg: north, lon_deg: 0}]", "clusters[0].lat_deg"),
            ("T65-names-number", "strategy: {names: 5}", "strategy.names"),
            ("T66-tle-files-number", "constellation: {tle_files: 5}", "constellation.tle_files"),
            ("T67-seeds-string", "seeds: '0-4'", "seeds"),
            ("T68-lora-number", "model: {lora: 4}", "model.lora"),
            ("T69-evaluation-null", "evaluation: null", "evaluation"),
            ("T70-name-list", "name: [a, b]", "name"),
            ("T71-sweep-params-list", "sweep: {parameters: [1, 2]}", "sweep.parameters"),
            ("T72-sweep-param-scalar", "sweep: {parameters: {training.learning_rate: 0.1}}",
             "sweep.parameters.training.learning_rate"),
            ("T73-formats-xlsx", "output: {formats: [xlsx]}", "output.formats"),
            ("T74-jsonl-number", "data: {jsonl_files: 5}", "data.jsonl_files"),
            ("T75-extends-number", "extends: 5", "extends"),
            ("T76-overrides-list", "model: {config_overrides: [hidden_size]}", "model.config_overrides"),
            ("T77-walker-string", "constellation: {walker: big}", "constellation.walker"),
            ("T78-server-sat-list", "server: {satellite: [a]}", "server.satellite"),
            ("T79-top-level-list", None, None),
            ("T80-yaml-tab-indent", "link:\n\ttx_power_dbm: 3", "line"),
    ):
        text = "- a\n- b\n" if body is None else (ext(body) if not body.startswith("extends") else
                                                  body + "\nname: x\nclusters: [{name: a, lat_deg: 0, lon_deg: 0}]\n")
        add(Case(cid, T, ["validate", "s.yaml"], {"s.yaml": text}, fld=fld_))
    add(Case("T81-walker-planes-text", T, W("--planes", "two"), fld="--planes", file=None))
    add(Case("T82-seed-text", T, ["run", str(QS), "--seed", "abc"], fld="--seed", file=None))
    add(Case("T83-seeds-dangling", T, ["run", str(QS), "--seeds", "1-", "--out", "r"], fld="--seeds", file=None))
    add(Case("T84-walker-epoch", T, W("--epoch", "yesterday"), fld="--epoch", file=None))
    add(Case("T85-walker-ids-overflow", T, W("--first-norad-id", "99999"), fld="--first-norad-id", file=None))
    add(Case("T86-walker-ids-negative", T, W("--first-norad-id", "-5"), fld="--first-norad-id", file=None))
    add(Case("T87-link-budget-elev", T, ["link-budget", qs, "--elevation", "95"], fld="--elevation", file=None))
    add(Case("T88-link-budget-alt-neg", T, ["link-budget", qs, "--altitude-km", "-1", "--no-passes"],
             fld="--altitude-km", file=None))
    add(Case("T89-link-budget-idealised", T, ["link-budget", str(REPO / "scenarios" / "paper-exp1-tiny.yaml")],
             expect="custom", check=lambda d, r: _ok_or_one_line(r)))
    add(Case("T90-contacts-idealised", T, ["contacts", str(REPO / "scenarios" / "paper-exp1-tiny.yaml")],
             fld="time.mode"))
    add(Case("T91-extends-cycle", T, ["validate", "a.yaml"], {"a.yaml": "extends: b.yaml\nname: a\n",
                                                             "b.yaml": "extends: a.yaml\nname: b\n"},
             fld="extends", must=["cycle"]))
    add(Case("T92-empty-file", T, ["validate", "s.yaml"], {"s.yaml": ""}, must=["empty"]))
    add(Case("T93-comments-only", T, ["validate", "s.yaml"], {"s.yaml": "# nothing\n"}, must=["empty"]))
    add(Case("T94-tle-as-scenario", T, ["validate", "s.yaml"], {"s.yaml": lambda d: first_sats(STARLINK, 2)},
             must=["mapping"]))
    add(Case("T95-scenario-as-tle", T, ["tle", "check", "s.yaml"], {"s.yaml": TINY}, file="s.yaml"))
    add(Case("T96-tle-name-only", T, ["tle", "check", "sats.tle"], {"sats.tle": tle("A", 44713) + "LONELY\n"},
             fld="line 4"))
    add(Case("T97-jsonl-dir", T, ["validate", "s.yaml"],
             {"s.yaml": ext("data: {jsonl_files: [ddir]}\nclusters: [{name: a, lat_deg: 0, lon_deg: 0}]\n"),
              "ddir/x.jsonl": "{}"}, fld="jsonl_files", file="ddir", must_not=["not found"]))

    # ============================================================ misleading messages
    add(Case("M01-tle-check-dir", M, ["tle", "check", "tdir"], {"tdir/a.tle": "x"}, file="tdir",
             must_not=["not found"], should="tdir: is a folder, not a TLE file; give the .tle file(s) inside it"))
    add(Case("M02-tle-files-dir", M, ["validate", "s.yaml"], {"s.yaml": tle_scenario("tdir"), "tdir/a.tle": "x"},
             file="tdir", must_not=["not found"], fld="tle_files",
             should="s.yaml: constellation.tle_files[0]: tdir is a folder, not a TLE file"))
    add(Case("M03-extends-dir", M, ["validate", "s.yaml"], {"s.yaml": "extends: sub\nname: x\n", "sub/x": "x"},
             fld="extends", must_not=["not found"]))
    add(Case("M04-checkpoint-path-file-in-validate", M, ["validate", "s.yaml"],
             {**on(TINY, "model: {preset: null, checkpoint_path: ck.bin}\n"), "ck.bin": b"\x00"},
             fld="checkpoint_path", file="ck.bin", must_not=["not found"]))
    for cid, item, expected in (
            ("M05-bound-contact-step", "time.contact_step_s=0", "greater than 0 and at most 600"),
            ("M06-bound-idle-rate", "time.idle_slot_rate=1", "at least 0 and less than 1"),
            ("M07-bound-lat", "clusters.0.lat_deg=91", "between -90 and 90"),
            ("M08-bound-relevance", "strategy.relevance_threshold=1", "at least 0 and less than 1"),
            ("M09-bound-fading-pos", "link.large_scale_fading_db=5", "0 dB"),
            ("M10-bound-rank", "model.lora.rank=0", "greater than 0 and at most 1024"),
            ("M11-bound-walker-alt", "constellation.walker.0.altitude_km=50", "greater than 100 and less than 40000"),
            ("M12-bound-mask-neg", "link.elevation_mask_deg=-5", "between 0 and 90"),
            ("M13-bound-devices-0", "clusters.0.devices=0", "greater than 0"),
            ("M14-bound-test-fraction", "data.test_fraction=1", "less than 1"),
            ("M15-bound-efficiency", "training.compute_efficiency=0", "greater than 0 and at most 1"),
            ("M16-bound-lon-361", "clusters.0.lon_deg=361", "between -180 and 360"),
    ):
        add(Case(cid, M, ["contacts", qs, "--set", item], fld=item.split("=")[0].split(".")[-1], file=None,
                 must=[expected], must_not=["Input should", "greater_than"]))
    for cid, item in (("M17-date-word", "time.start_utc=yesterday"), ("M18-date-month13", "time.start_utc=2023-13-01"),
                      ("M19-date-number", "time.start_utc=12345678901234"),
                      ("M20-walker-epoch", "constellation.walker.0.epoch_utc=soon")):
        add(Case(cid, M, ["contacts", qs, "--set", item], fld=item.split("=")[0].split(".")[-1], file=None,
                 must=["ISO 8601"], must_not=["Input should", "datetime_", "Invalid isoformat"]))
    add(Case("M21-walker-phasing-scenario", M, ["validate", "s.yaml"],
             {"s.yaml": ext("constellation: {walker: [{altitude_km: 550, inclination_deg: 53, planes: 2, "
                            "sats_per_plane: 1, phasing: 2}]}")}, fld="constellation.walker[0].phasing",
             must_not=["first_norad_id", "raan_spread_deg="]))
    add(Case("M22-walker-ids-scenario", M, ["validate", "s.yaml"],
             {"s.yaml": ext("constellation: {walker: [{altitude_km: 550, inclination_deg: 53, planes: 100, "
                            "sats_per_plane: 101, name_prefix: LEO-SERVER}]}\nserver: {mode: constellation}")},
             fld="constellation.walker", must_not=["first_norad_id", "total_satellites"],
             should="s.yaml: constellation.walker[0]: 10100 satellites need NORAD ids 90000..100099 (5 digits end "
             "at 99999); use at most 9999 satellites per shell"))
    add(Case("M23-walker-second-shell-ids", M, ["validate", "s.yaml"],
             {"s.yaml": ext("constellation: {walker: [{altitude_km: 550, inclination_deg: 53, planes: 1, "
                            "sats_per_plane: 1, name_prefix: LEO-SERVER}, {altitude_km: 600, inclination_deg: 53, "
                            "planes: 1, sats_per_plane: 1}]}\nserver: {mode: constellation}")},
             expect="ok", should="two one-satellite shells are valid"))
    add(Case("M24-walker-raan-scenario", M, ["validate", "s.yaml"],
             {"s.yaml": ext("constellation: {walker: [{altitude_km: 550, inclination_deg: 53, planes: 2, "
                            "sats_per_plane: 1, raan_spread_deg: 90}]}")},
             fld="constellation.walker[0].raan_spread_deg", must_not=["--raan"]))
    add(Case("M25-typo-suggestion", M, ["validate", "s.yaml"], {"s.yaml": ext("link: {elevation_mask: 10}")},
             fld="link.elevation_mask", must=["elevation_mask_deg"]))
    add(Case("M26-typo-cluster-field", M, ["validate", "s.yaml"],
             {"s.yaml": ext("clusters: [{name: a, lat: 0, lon_deg: 0}]")}, fld="clusters[0].lat",
             must=["lat_deg"]))
    add(Case("M27-literal-mode", M, ["validate", "s.yaml"], {"s.yaml": ext("time: {mode: ideal}")}, fld="time.mode",
             must=["idealised"]))
    add(Case("M28-seeds-workers-python-name", M, ["run", "s.yaml", "--seed", "1", "--seeds", "0-1"],
             {"s.yaml": TINY}, fld="--seed", file=None))
    add(Case("M29-both-durations", M, ["validate", "s.yaml"], {"s.yaml": ext("time: {orbital_cycles: 3}")},
             fld="orbital_cycles", must=["duration_s"]))
    add(Case("M30-rounds-per-slot-orbital", M, ["validate", "s.yaml"], {"s.yaml": ext("training: {rounds_per_slot: 2}")},
             fld="training.rounds_per_slot"))
    add(Case("M31-dup-cluster-names", M, ["validate", "s.yaml"],
             {"s.yaml": ext("clusters: [{name: a, lat_deg: 0, lon_deg: 0}, {name: a, lat_deg: 1, lon_deg: 1}]")},
             fld="clusters[1].name"))
    add(Case("M32-report-run-dir-missing-summary", M, ["report", "r"], {"r/run.json": "{}"}, file="r"))
    add(Case("M33-strategy-option-unknown", M, ["run", str(QS), "--strategy", "fedavg", "--out", "r"],
             fld="--strategy", file=None, must=["baseline"]))
    return c


# ----------------------------------------------------------------- case helpers
def _has_cuda() -> bool:
    return shutil.which("nvidia-smi") is not None and os.path.exists("/dev/nvidia0")


def _corrupt_checksum(text: str, *entries: int) -> str:
    """Flip the checksum digit of line 2 of the given entries (0-based) of a 3LE text."""
    lines = text.splitlines()
    for e in entries:
        i = 3 * e + 2
        last = lines[i][68]
        lines[i] = lines[i][:68] + str((int(last) + 1) % 10)
    return "\n".join(lines) + "\n"


def _count_in(out: str, n: int) -> tuple[str, str] | None:
    m = re.search(r"(\d+) satellites", out)
    if not m or int(m.group(1)) != n:
        return "BAD", f"expected {n} satellites, stdout: {out.strip()[:120]!r}"
    return "GOOD", f"{n} satellites read"


def _warn_lines(err: str) -> list[str]:
    return [ln for ln in err.splitlines() if "warning" in ln.lower()]


def _warned(words: list[str], sats: int | None = None, sats_in_out: int | None = None):
    def check(d: Path, r: Result) -> tuple[str, str]:
        if r.rc != 0:
            return "BAD", f"exit {r.rc}: {first_line(r.err)}"
        ws = _warn_lines(r.err)
        hit = [w for w in ws if all(x in w for x in words)]
        if not hit:
            return "BAD", f"no warning with {words}; stderr: {r.err.strip()[:200]!r}"
        if sats is not None and not re.search(rf"\b{sats} satellites", r.out):
            return "WEAK", f"warned, but stdout does not show {sats} satellites: {r.out.strip()[:100]!r}"
        if len(hit) > 1:
            return "WEAK", f"{len(hit)} warning lines for one cause"
        return "GOOD", hit[0][:160]
    return check


def _skip_count(skipped: int, kept: int):
    def check(d: Path, r: Result) -> tuple[str, str]:
        if r.rc != 0:
            return "BAD", f"exit {r.rc}: {first_line(r.err)}"
        m = re.search(r"(\d+) satellites, (\d+) skipped", r.out)
        w = [x for x in _warn_lines(r.err) if f"skipped {skipped} bad" in x]
        if not m or (int(m.group(1)), int(m.group(2))) != (kept, skipped):
            return "BAD", f"expected {kept} satellites, {skipped} skipped; stdout {r.out.strip()!r}"
        if not w:
            return "WEAK", "count right but no warning line with it"
        return "GOOD", f"{kept} kept, {skipped} skipped, warning: {w[0][:100]}"
    return check


def _tle_check_flags(name: str):
    def check(d: Path, r: Result) -> tuple[str, str]:
        if r.timed_out or "Traceback" in r.err:
            return "BAD", "traceback/hang"
        if name in r.err or name in r.out.replace(f"{name}\n", ""):
            if r.rc == 0 and not _warn_lines(r.err):
                return "WEAK", "named, but not as a warning"
            return "GOOD", first_line(r.err)
        return "BAD", f"exit {r.rc}, problem not reported: stdout {r.out.strip()[:120]!r} stderr " \
                      f"{r.err.strip()[:80]!r}"
    return check


def _ok_or_one_line(r: Result) -> tuple[str, str]:
    if r.timed_out or "Traceback" in r.err:
        return "BAD", "traceback/hang"
    if r.rc == 0:
        return "GOOD", "works"
    lines = diag_lines(r.err)
    return ("GOOD" if len(lines) == 1 else "WEAK"), first_line(r.err)


def _validate_then_run(fld_: str):
    """validate refused it (judged by the error rule) or said ok: then a run must work or fail in one line."""
    def check(d: Path, r: Result) -> tuple[str, str]:
        if r.timed_out or "Traceback" in r.err:
            return "BAD", "validate: traceback/hang"
        if r.rc != 0:
            v, note = judge_error(r, Case("x", "late", [], fld=fld_, file="s.yaml"))
            return v, f"validate refused: {note}"
        rr = execute(["run", "s.yaml", "--out", "r", "--no-progress"], d, 90)
        if rr.timed_out:
            return "BAD", "validate ok, run hangs"
        if rr.rc == 0:
            return "GOOD", "validate ok and the run works"
        if "Traceback" in rr.err:
            return "BAD", f"validate ok, run fails with a traceback: {last_exc_line(rr.err)}"
        return "BAD", f"validate ok, run fails later (exit {rr.rc}): {first_line(rr.err)}"
    return check


def _sweep_failed(word: str):
    """A sweep with failing points: exit 1, one ``failed: POINT: FILE: FIELD: ...`` line per failed point."""
    def check(d: Path, r: Result) -> tuple[str, str]:
        if r.timed_out or "Traceback" in r.err:
            return "BAD", f"traceback/hang: {last_exc_line(r.err)}"
        if r.rc == 0:
            return "BAD", "exit 0 although points failed"
        failed = [ln for ln in r.err.splitlines() if ln.startswith("failed: ")]
        errors = [ln for ln in r.err.splitlines() if ln.startswith("error: ")]
        if errors and not failed:  # refused before any work
            return judge_error(r, Case("x", "silent", [], fld=word, file="s.yaml"))
        if not failed or not all(word in ln and "s.yaml" in ln for ln in failed):
            return "WEAK", f"exit {r.rc}, but the failed lines do not all name s.yaml and {word}: {failed[:1]}"
        return "GOOD", f"exit {r.rc}; {failed[0][:150]}"
    return check


def _epoch_years(r: Result) -> tuple[str, str]:
    if r.timed_out or "Traceback" in r.err:
        return "BAD", "traceback/hang"
    if r.rc != 0:
        return judge_error(r, Case("x", "silent", [], fld="start_utc", file="s.yaml"))
    if any("epoch" in w for w in _warn_lines(r.err)):
        return "WEAK", "exit 0 with only the 14-day epoch warning; contacts computed 7.5 years from every epoch"
    return "BAD", "exit 0, no warning"


def _seeds_reuse(d: Path, r: Result) -> tuple[str, str]:
    """A multi-seed run into a directory that holds a single-seed run."""
    if r.timed_out or "Traceback" in r.err:
        return "BAD", "traceback/hang"
    if r.rc != 0:
        lines = diag_lines(r.err)
        return ("GOOD" if len(lines) == 1 else "WEAK"), f"refused: {first_line(r.err)}"
    ok = all((d / "r" / f"seed-{s}" / "baseline" / "summary.json").is_file() for s in (0, 1))
    if not ok:
        return "BAD", "exit 0 but no seed-0/seed-1 results"
    s1 = json.loads((d / "r" / "seed-1" / "baseline" / "summary.json").read_text())
    if s1.get("seed") != 1:
        return "BAD", f"seed-1 summary holds seed {s1.get('seed')}"
    return "GOOD", "per-seed results next to the old run (seed-N/), seeds right"


def _concurrent(d: Path, r: Result) -> tuple[str, str]:
    """Start a run, then a second into the same --out while the first holds it."""
    argv = [CLI, "run", "s.yaml", "--out", "r", "--no-progress"]
    env = campaign_env()
    first = subprocess.Popen(argv, cwd=d, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                             start_new_session=True, preexec_fn=_limit_memory)
    t0 = time.time()
    while time.time() - t0 < 60 and not (d / "r" / "run.json").exists():  # the first one has taken the lock
        if first.poll() is not None:
            break
        time.sleep(0.2)
    second = execute(["run", "s.yaml", "--out", "r", "--no-progress"], d, 60)
    try:
        out1, err1 = first.communicate(timeout=100)
    except subprocess.TimeoutExpired:
        os.killpg(first.pid, signal.SIGKILL)
        return "BAD", "first run hangs"
    if first.returncode != 0:
        return "BAD", f"first run failed: {first_line(err1)}"
    if second.rc == 0:
        return "BAD", "both runs into one directory exited 0"
    if "Traceback" in second.err:
        return "BAD", "second run: traceback"
    line = first_line(second.err)
    lines = diag_lines(second.err)
    if len(lines) == 1 and "pid" in line:
        return "GOOD", f"second refused: {line}"
    return "WEAK", f"second refused but: {line}"


# ------------------------------------------------------------------ running / rules
def campaign_env() -> dict[str, str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
    env.setdefault("EMSFL_CACHE", str(Path(tempfile.gettempdir()) / "emsfl-bad-inputs-cache"))
    env.pop("EMSFL_DEBUG", None)
    return env


def execute(argv: list[str] | str, cwd: Path, timeout: int) -> Result:
    t0 = time.time()
    cmd: list[str] | str = argv if isinstance(argv, str) else [CLI, *argv]
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            errors="replace", shell=isinstance(argv, str), env=campaign_env(),
                            start_new_session=True, stdin=subprocess.DEVNULL, preexec_fn=_limit_memory)
    try:
        out, err = proc.communicate(timeout=timeout)
        return Result(proc.returncode, out, err, time.time() - t0, False)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        return Result(None, out, err, time.time() - t0, True)


def _limit_memory() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT_BYTES, MEMORY_LIMIT_BYTES))


def diag_lines(err: str) -> list[str]:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    out = []
    for ln in lines:
        if ln.startswith(INFO_PREFIXES) or ": warning: " in ln:
            continue
        if ln.startswith(("emsfl-sim: error:", "emsfl-sim ")) and ": error: " in ln:  # argparse
            out.append(ln)
            continue
        out.append(ln)
    return out


def first_line(err: str) -> str:
    lines = diag_lines(err) or [ln for ln in err.splitlines() if ln.strip()]
    return lines[0] if lines else ""


def last_exc_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    return lines[-1][:200] if lines else ""


def expected_file(case: Case) -> str | None:
    """The file a message must name: ``auto`` is the case's scenario (``s.yaml``) or its first file."""
    if case.file != "auto":
        return case.file
    if "s.yaml" in case.files:
        return "s.yaml"
    return next(iter(case.files), None)


def judge_error(r: Result, case: Case) -> tuple[str, str]:
    if r.timed_out:
        return "BAD", f"hang: no exit within {case.timeout} s"
    if "Traceback (most recent call last)" in r.err:
        return "BAD", f"traceback: {last_exc_line(r.err)}"
    if r.rc == 0:
        return "BAD", "exit 0: the bad input was accepted"
    if r.rc not in (1, 2):
        return "BAD", f"exit status {r.rc}"
    lines = diag_lines(r.err)
    if len(lines) != 1:
        return "WEAK", f"{len(lines)} diagnostic lines: " + " | ".join(x[:100] for x in lines[:3])
    line = lines[0]
    problems = []
    if case.fld and case.fld.lower() not in line.lower():
        problems.append(f"does not name {case.fld!r}")
    want = expected_file(case)
    if want and want.lower() not in line.lower():
        problems.append(f"does not name the file {want!r}")
    for word in case.must:
        if word.lower() not in line.lower():
            problems.append(f"lacks {word!r}")
    for word in case.must_not:
        if word.lower() in line.lower():
            problems.append(f"says {word!r}")
    if not FIX_WORDS.search(line.split(": ", 1)[-1]):
        problems.append("no fix/expectation")
    if problems:
        return "WEAK", "; ".join(problems)
    return "GOOD", "one line"


def judge_warn(r: Result, case: Case, d: Path) -> tuple[str, str]:
    if r.timed_out:
        return "BAD", "hang"
    if "Traceback" in r.err:
        return "BAD", f"traceback: {last_exc_line(r.err)}"
    if r.rc != 0:
        return "BAD", f"exit {r.rc}: {first_line(r.err)}"
    ws = _warn_lines(r.err)
    s = summary_of(d, case.summary) if case.summary else None
    marked = bool(s and s.get("warnings"))
    if not ws and not marked:
        return "BAD", "no warning, summary.json not marked: a meaningless result looks normal"
    if not ws:
        return "BAD", "summary.json marked but no warning printed"
    if not marked:
        return "BAD", f"warned ({ws[0][:80]}) but summary.json has no 'warnings'"
    if len(ws) > case.max_warn_lines:
        return "WEAK", f"{len(ws)} warning lines (one per cause expected): " + " | ".join(w[:70] for w in ws[:3])
    missing = [w for w in case.must if not any(w.lower() in x.lower() for x in ws)]
    if missing:
        return "WEAK", f"warning lacks {missing}: {ws[0][:100]}"
    return "GOOD", ws[0][:120]


def run_case(case: Case, root: Path) -> dict[str, Any]:
    d = root / case.id
    d.mkdir(parents=True)
    for rel, content in case.files.items():
        p = d / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        value = content(d) if callable(content) else content
        p.write_bytes(value) if isinstance(value, bytes) else p.write_text(value)
    pre_note = ""
    for argv in case.before:
        pr = execute(argv, d, case.timeout)
        if pr.rc != 0:
            pre_note = f"(setup run failed: {first_line(pr.err)}) "
    if case.between:
        case.between(d)
    if case.argv == "":  # the check does all the work
        r = Result(0, "", "", 0.0, False)
    else:
        r = execute(case.argv, d, case.timeout)
    t0 = time.time()
    if case.expect == "error":
        verdict, note = judge_error(r, case)
    elif case.expect == "warn":
        verdict, note = judge_warn(r, case, d)
    elif case.expect == "quiet":
        if "Traceback" in r.err or r.timed_out:
            verdict, note = "BAD", f"traceback/hang: {last_exc_line(r.err)}"
        elif r.err.strip():
            verdict, note = "WEAK", f"stderr: {first_line(r.err)}"
        elif r.rc not in (0, 141):
            verdict, note = "BAD", f"exit {r.rc}"
        else:
            verdict, note = "GOOD", "quiet"
    elif case.expect == "ok":
        if r.timed_out or "Traceback" in r.err or r.rc != 0:
            verdict, note = "BAD", f"valid input refused or crashed (exit {r.rc}): " \
                                   f"{last_exc_line(r.err) if 'Traceback' in r.err else first_line(r.err)}"
        else:
            verdict, note = "GOOD", "works"
    else:
        verdict, note = "BAD", "no check"
    if case.check is not None and not (case.expect == "ok" and verdict == "BAD"):
        override = case.check(d, r)
        if override is not None:
            verdict, note = override
    cmd = case.argv if isinstance(case.argv, str) else "emsfl-sim " + " ".join(case.argv)
    if case.argv == "":
        cmd = "emsfl-sim run s.yaml --out r  (x2, concurrently)"
    return {
        "id": case.id, "class": case.cls, "command": cmd, "exit": "timeout" if r.timed_out else r.rc,
        "stderr_first": first_line(r.err)[:300], "verdict": verdict, "note": pre_note + note,
        "should": case.should, "wall_s": round(r.wall + (time.time() - t0), 1),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="/tmp/bad-inputs.csv", help="CSV of the results")
    ap.add_argument("--jobs", type=int, default=2, help="cases run at once (default 2)")
    ap.add_argument("--only", help="regex of case ids to run")
    ap.add_argument("--keep", action="store_true", help="keep the case directories")
    args = ap.parse_args()
    cases = build_cases()
    ids = [c.id for c in cases]
    assert len(ids) == len(set(ids)), "duplicate case ids"
    if args.only:
        cases = [c for c in cases if re.search(args.only, c.id)]
    root = Path(tempfile.mkdtemp(prefix="emsfl-bad-inputs-"))
    t0 = time.time()
    rows: list[dict[str, Any]] = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = {pool.submit(run_case, c, root): c for c in cases}
        for fut in concurrent.futures.as_completed(futures):
            case = futures[fut]
            try:
                row = fut.result()
            except Exception as exc:  # a bug in the campaign itself: show it, keep going
                row = {"id": case.id, "class": case.cls, "command": str(case.argv), "exit": "-",
                       "stderr_first": "", "verdict": "ERROR", "note": f"campaign error: {exc!r}",
                       "should": case.should, "wall_s": 0}
            rows.append(row)
            print(f"[{len(rows):3d}/{len(cases)}] {row['verdict']:5s} {row['id']}", file=sys.stderr, flush=True)
    order = {c.id: i for i, c in enumerate(build_cases())}
    rows.sort(key=lambda r: order[r["id"]])
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    print(f"{'id':34s} {'class':10s} {'exit':>7s} {'verdict':7s} command | first stderr line | note")
    for r in rows:
        print(f"{r['id']:34s} {r['class']:10s} {str(r['exit']):>7s} {r['verdict']:7s} {r['command'][:90]}")
        print(f"{'':61s}stderr: {r['stderr_first'][:160]}")
        if r["verdict"] != "GOOD":
            print(f"{'':61s}note:   {r['note'][:200]}")
    print("\nclass        tried  good  weak   bad")
    classes = sorted({r["class"] for r in rows}, key=["silent", "late", "warn", "traceback", "misleading"].index)
    for cls in [*classes, "total"]:
        sel = rows if cls == "total" else [r for r in rows if r["class"] == cls]
        n = {v: sum(r["verdict"] == v for r in sel) for v in ("GOOD", "WEAK", "BAD")}
        print(f"{cls:12s} {len(sel):5d} {n['GOOD']:5d} {n['WEAK']:5d} {n['BAD']:5d}")
    errors = [r for r in rows if r["verdict"] == "ERROR"]
    if errors:
        print(f"{len(errors)} campaign errors: {[r['id'] for r in errors]}")
    print(f"\n{len(rows)} cases in {time.time() - t0:.0f} s; CSV: {args.out}; case folders: "
          f"{root if args.keep else '(removed)'}")
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
