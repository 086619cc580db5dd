"""Wrong types, nulls, unions, empty lists and YAML syntax: one plain line, no pydantic or PyYAML text.

Each case is a tiny scenario file read by ``load_scenario`` (and a few through the CLI's
``validate``); the message must be ``FILE: FIELD: what is wrong and what to use``.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from emsfl_sim.cli.main import main
from emsfl_sim.errors import InputError
from emsfl_sim.scenario import load_scenario

#: A scenario that loads: idealised time needs no TLEs.
BASE = "name: t\ntime: {mode: idealised, duration_s: 3600}\nclusters: [{name: a, lat_deg: 10, lon_deg: 20}]\n"
#: What pydantic's own text looks like in a location or a message: it must never reach the user.
LEAKS = re.compile(r"Input should|List should|String should|valid dictionary|instance of|union\[|list\[|dict\[|"
                   r"function-|literal\[|\.str\b|\.int\b|DataFileConfig|LinkConfig|Traceback|\(and \d+ more")


def scenario(tmp_path: Path, text: str, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def error_line(path: Path) -> str:
    with pytest.raises(InputError) as info:
        load_scenario(path)
    text = str(info.value)
    assert "\n" not in text, text
    assert text.startswith(f"{path}: "), text
    assert not LEAKS.search(text), text
    return text.removeprefix(f"{path}: ")


def with_base(body: str) -> str:
    """``BASE`` with the top-level keys of ``body`` replaced (later keys would be duplicates)."""
    keys = {line.split(":", 1)[0] for line in body.splitlines() if line and not line[0].isspace()}
    kept = [line for line in BASE.splitlines() if line.split(":", 1)[0] not in keys]
    return "\n".join([*kept, body]) + "\n"


@pytest.mark.parametrize(("body", "expected"), [
    # a section given a scalar or a list
    ("link: 5", "link: expected a mapping of link fields (e.g. link: {elevation_mask_deg: 25}), got 5"),
    ("link: [1, 2]", "link: expected a mapping of link fields (e.g. link: {elevation_mask_deg: 25}), got [1, 2]"),
    ("time: 3", "time: expected a mapping of time fields (e.g. time: {mode: orbital}), got 3"),
    ("model: {lora: 5}", "model.lora: expected a mapping of lora fields (e.g. lora: {rank: 4}), got 5"),
    ("sweep: 5", "sweep: expected a mapping of sweep fields (e.g. sweep: {parameters: "
                 "{link.elevation_mask_deg: [10, 20]}}), got 5"),
    ("clusters: [5]", "clusters[0]: expected a mapping with name, lat_deg and lon_deg (one entry of clusters), got 5"),
    # a list expected
    ("clusters: europe", "clusters: expected a list of mappings, each with name, lat_deg and lon_deg (got 'europe')"),
    ("seeds: 5", "seeds: expected a list of integers (got 5); write [5] for one value"),
    ("output: {formats: parquet}",
     "output.formats: expected a list of values among 'parquet', 'csv' (got 'parquet'); write [parquet] for one value"),
    ("sweep: {parameters: {link.elevation_mask_deg: 5}}",
     "sweep.parameters.link.elevation_mask_deg: expected a list of values to sweep (got 5); write [5] for one value"),
    # text expected
    ("name: [a, b]", "name: expected text (got ['a', 'b']); quote it if it is meant as text"),
    ("name: 5", "name: expected text (got 5)"),
    # a plain mapping expected
    ("model: {config_overrides: 5}", "model.config_overrides: expected a mapping (e.g. config_overrides: {key: value}), got 5"),
    ("sweep: {parameters: 5}", "sweep.parameters: expected a mapping (e.g. parameters: {key: value}), got 5"),
    # null
    ("evaluation: null", "evaluation: may not be null; remove it for the default"),
    ("link: {elevation_mask_deg: null}", "link.elevation_mask_deg: may not be null; remove it for the default (25)"),
    ("name: null", "name: may not be null; give text"),
    # union fields: the path names only fields and indices, one line for all branches
    ("data: {jsonl_files: 5}", "data.jsonl_files: expected a list of paths or a mapping domain -> path (got 5)"),
    ("data: {jsonl_files: [5]}",
     "data.jsonl_files[0]: expected a path or an entry {path, format, domain, split} (got 5)"),
    ("data: {jsonl_files: {med: 5}}",
     "data.jsonl_files.med: expected a path or an entry {path, format, domain, split} (got 5)"),
    ("server: {satellite: [a]}", "server.satellite: expected a satellite name or a NORAD id (an integer) (got ['a'])"),
    ("model: {config: 5}", "model.config: expected a mapping (key: value) or one of 'llama3-8b-x3', 'mixtral-8x7b', "
                           "'qwen1.5-moe-a2.7b', 'olmoe-1b-7b' (got 5)"),
    # empty lists
    ("strategy: {names: []}", "strategy.names: is empty; give at least one strategy name, e.g. emsfl"),
    ("clusters: []", "clusters: is empty; give at least one cluster, e.g. clusters: [{name: a, lat_deg: 0, lon_deg: 0}]"),
    ("name: ''", "name: is empty text; give at least 1 character"),
    ("output: {plots: maybe}", "output.plots: expected true or false (got 'maybe')"),
])
def test_type_errors_are_plain_lines(tmp_path: Path, body: str, expected: str) -> None:
    assert error_line(scenario(tmp_path, with_base(body))) == expected


def test_a_field_named_like_a_type_keeps_its_name(tmp_path: Path) -> None:
    """``time`` is a field, not pydantic's ``time`` type segment."""
    text = error_line(scenario(tmp_path, with_base("time: {mode: idealised, start_utc: [1]}")))
    assert text.startswith("time.start_utc: expected an ISO 8601 UTC time"), text


@pytest.mark.parametrize(("text", "expected"), [
    ("name: t\nclusters:\n\t- {name: a, lat_deg: 0, lon_deg: 0}\n", "line 3: invalid YAML: a tab character; indent with spaces"),
    ("name: t\n\tseed: 1\n", "line 2: invalid YAML: a tab character; indent with spaces"),
    ("name: t\nclusters: [\n", "line 3: invalid YAML: expected the node content, but found '<stream end>'; "
                               "close the bracket"),
    ("a: b: c\n", "line 1: invalid YAML: mapping values are not allowed here; quote a value that holds ': ', "
                  "or check the indentation"),
    ("name: 'x\n", "line 2: invalid YAML: found unexpected end of stream; close the quote"),
    ("name: x\n@foo: 1\n", "line 2: invalid YAML: found character '@' that cannot start any token"),
    ("name: x\nseed: *nope\n", "line 2: invalid YAML: found undefined alias 'nope'; "
                               "define the anchor (&name) before its alias (*name)"),
    ("name: x\ndescription: a\x01b\n",
     "line 2: invalid YAML: unacceptable character #x0001 (special characters are not allowed); "
     "remove it or re-save the file as plain text"),
])
def test_yaml_syntax_errors_are_one_line(tmp_path: Path, text: str, expected: str) -> None:
    assert error_line(scenario(tmp_path, text)) == expected


@pytest.mark.parametrize(("body", "expected"), [
    ("link: 5", "link: expected a mapping of link fields"),
    ("data: {jsonl_files: 5}", "data.jsonl_files: expected a list of paths or a mapping domain -> path (got 5)"),
    ("strategy: {names: []}", "strategy.names: is empty; give at least one strategy name"),
])
def test_validate_prints_the_line(tmp_path: Path, body: str, expected: str,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    path = scenario(tmp_path, with_base(body))
    assert main(["validate", str(path)]) == 1
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}: {expected}"), err
    assert not LEAKS.search(err), err


def test_tab_indentation_through_the_cli_has_no_traceback(tmp_path: Path) -> None:
    path = scenario(tmp_path, "name: t\nclusters:\n\t- a\n")
    proc = subprocess.run([sys.executable, "-m", "emsfl_sim.cli.main", "validate", str(path)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode != 0
    assert proc.stderr.strip() == f"error: {path}: line 3: invalid YAML: a tab character; indent with spaces"
