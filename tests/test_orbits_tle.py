"""TLE parsing and validation (emsfl_sim.orbits.tle)."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest
import sgp4

from emsfl_sim.errors import InputError
from emsfl_sim.orbits import (
    check_epoch_span,
    epoch_warnings,
    filter_records,
    load_tle_file,
    load_tle_file_with_count,
    parse_tle_text,
    to_earth_satellites,
    to_satrecs,
)
from tests.fakes import ISS_TLE

ISS = list(ISS_TLE)  # source cited in tests/fakes.py
# A second satellite: STARLINK-1007, lines 1-3 of /work/shared/tle/starlink-2023-07.tle.
SL = [
    "STARLINK-1007",
    "1 44713U 19074A   23198.31707558  .00000584  00000+0  58057-4 0  9994",
    "2 44713  53.0547 204.8335 0000977  90.1304 269.9797 15.06399147203267",
]
SGP4_VER = Path(sgp4.__file__).parent / "SGP4-VER.TLE"


def write(tmp_path: Path, text: str, name: str = "x.tle", newline: str = "\n") -> Path:
    p = tmp_path / name
    p.write_bytes(text.replace("\n", newline).encode())
    return p


def test_3le_lf_and_crlf_give_same_records(tmp_path):
    text = "\n".join(ISS + [""] + SL) + "\n"
    a = load_tle_file(write(tmp_path, text, "lf.tle"))
    b = load_tle_file(write(tmp_path, text, "crlf.tle", "\r\n"))
    assert [r.name for r in a] == ["ISS (ZARYA)", "STARLINK-1007"]
    assert [(r.line1, r.line2, r.norad_id) for r in a] == [(r.line1, r.line2, r.norad_id) for r in b]
    assert a[1].line_number == 6  # line 1 of the second entry, after a blank line
    # 2008 day 264.51782528 = 2008-09-20 12:25:40.104 UTC
    assert a[0].epoch_utc == datetime(2008, 9, 20, 12, 25, 40, 104192, tzinfo=timezone.utc)


def test_2le_without_names_and_space_track_prefix():
    recs, skipped = parse_tle_text("\n".join(ISS[1:] + SL[1:]))
    assert skipped == 0
    assert [r.name for r in recs] == ["NORAD 25544", "NORAD 44713"]
    recs, _ = parse_tle_text("0 ISS (ZARYA)\n" + "\n".join(ISS[1:]))
    assert recs[0].name == "ISS (ZARYA)"


def test_bad_checksum_message_names_file_and_line(tmp_path):
    bad = SL[1][:-1] + "5"
    p = write(tmp_path, "\n".join(ISS + [SL[0], bad, SL[2]]))
    with pytest.raises(InputError) as exc:
        load_tle_file(p)
    assert str(exc.value) == (
        f"{p}: line 5: checksum is 5, expected 4; fix the last digit or skip bad entries "
        "(constellation.skip_bad_tle: true in a scenario, --skip-bad with emsfl-sim tle check)"
    )
    recs, skipped = load_tle_file_with_count(p, skip_bad=True)
    assert [r.norad_id for r in recs] == [25544] and skipped == 1


def test_truncated_line(tmp_path):
    p = write(tmp_path, "\n".join(ISS[:2] + [ISS[2][:60]]))
    with pytest.raises(
        InputError, match=r"x\.tle: line 3: TLE line 2 has 60 characters, expected 69 \(truncated"
    ):
        load_tle_file(p)


def test_catalogue_numbers_must_match(tmp_path):
    p = write(tmp_path, "\n".join([ISS[0], ISS[1], SL[2]]))
    with pytest.raises(InputError, match=r"line 3: catalogue number '44713' does not match '25544'"):
        load_tle_file(p)


def test_missing_line_2_and_orphan_line_2():
    with pytest.raises(InputError, match=r"<string>: line 2: expected TLE line 2"):
        parse_tle_text("\n".join(ISS[:2]))
    with pytest.raises(InputError, match=r"line 1: TLE line 2 without a line 1"):
        parse_tle_text(ISS[2])


def test_non_tle_and_empty_files(tmp_path):
    p = write(tmp_path, "scenario:\n  name: demo\n  seed: 1\n", "s.yaml")
    with pytest.raises(InputError, match=r"s\.yaml: line 2: expected TLE line 1 .* is this a TLE file\?"):
        load_tle_file(p)
    with pytest.raises(InputError, match=r"e\.tle: file is empty"):
        load_tle_file(write(tmp_path, "\n \r\n", "e.tle"))
    with pytest.raises(InputError, match=r"not found"):
        load_tle_file(tmp_path / "missing.tle")
    binary = tmp_path / "b.tle"
    binary.write_bytes(b"\xff\xfe\x00\x81")
    with pytest.raises(InputError, match=r"b\.tle: not a text file"):
        load_tle_file(binary)


def test_corrupted_number_field():
    line2 = ISS[2][:52] + "15.7X125391" + ISS[2][63:]
    with pytest.raises(InputError, match=r"line 3: columns 53-63 \(mean motion\)"):
        parse_tle_text("\n".join([ISS[0], ISS[1], line2]), check_checksums=False)


def test_sgp4_verification_file_loads():
    """sgp4's SGP4-VER.TLE: comments, extra columns, old-style lines, 33 element sets.

    The file ships with sgp4 (2.27 here): Vallado, Crawford, Hujsak & Kelso, "Revisiting
    Spacetrack Report #3", AIAA 2006-6753, verification cases. Counts and the line-100
    checksum below are read off that file.

    Five of its lines carry deliberately wrong checksums (entries 33333, 33334,
    33335, the error-code test cases), so it loads without error only with
    checksum checking off; with checks on, the first is reported precisely.
    """
    recs = load_tle_file(SGP4_VER, check_checksums=False)
    assert len(recs) == 33
    assert recs[0].norad_id == 5 and recs[0].name == "NORAD 5"
    assert all(len(r.line1) == 69 and len(r.line2) == 69 for r in recs)
    sats = to_satrecs(recs)
    assert [s.satnum for s in sats] == [r.norad_id for r in recs]
    with pytest.raises(InputError, match=r"SGP4-VER\.TLE: line 100: checksum is 4, expected 2"):
        load_tle_file(SGP4_VER)
    good, skipped = load_tle_file_with_count(SGP4_VER, skip_bad=True)
    assert (len(good), skipped) == (30, 3)


def test_filter_and_conversion():
    recs, _ = parse_tle_text("\n".join(ISS + SL))
    assert [r.norad_id for r in filter_records(recs, "starlink-*")] == [44713]
    assert [r.norad_id for r in filter_records(recs, norad_ids=[25544])] == [25544]
    assert len(filter_records(recs)) == 2
    assert filter_records(recs, ["NOPE*"]) == []
    sats = to_earth_satellites(recs)
    assert sats[0].model.satnum == 25544 and sats[1].name == "STARLINK-1007"


def test_epoch_warnings_and_far_epochs():
    recs, _ = parse_tle_text("\n".join(ISS + SL))
    when = datetime(2023, 7, 20, tzinfo=timezone.utc)
    warn = epoch_warnings(recs, when)
    assert len(warn) == 1 and warn[0].startswith("1 of 2 TLEs have epochs more than 14 days")
    assert "ISS (ZARYA)" in warn[0]
    assert epoch_warnings(recs[1:], when) == []
    check_epoch_span(recs, when)  # one epoch is close: fine
    with pytest.raises(
        InputError, match=r"scenario time 2031-01-01T00:00:00Z is 7\.\d years from every TLE epoch"
    ):
        check_epoch_span(recs, datetime(2031, 1, 1), source="x.tle")
