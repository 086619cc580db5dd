"""The recorder's fast rows (UTC strings without pandas, one at a time or per flush, buffered part files) equal the pandas ones."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from emsfl_sim.results import EVENT_COLUMNS, EVENT_DTYPES, EVENT_SCHEMA, TableWriter, event_table, write_table
from emsfl_sim.sim.recorder import Recorder
from emsfl_sim.sim.utc_strings import UtcStrings


def _times() -> list[float]:
    g = np.random.default_rng(7)
    values = [0.0, 1e-9, 5e-10, 0.1, 0.3, 1.0 / 3.0, 59.9999999995, 86400.0, 604799.999999999]
    values += g.uniform(0, 7 * 86400, 20000).tolist()
    values += np.round(g.uniform(0, 7 * 86400, 5000), 3).tolist() + (0.1 * np.arange(3000)).tolist()
    values += (g.integers(0, 10**6, 2000) + g.integers(0, 10**9, 2000) * 1e-9).tolist()
    return values


def test_utc_strings_equal_pandas(tmp_path):
    for start in ("2023-07-18T00:00:00Z", "2024-02-29T23:59:59.5Z", "2023-07-18T02:00:00+02:00"):
        rec = Recorder(tmp_path / start[:10], "x", start, ["csv"])
        base = pd.Timestamp(start)
        for t in _times():
            assert rec.utc(t) == (base + pd.to_timedelta(t, unit="s")).isoformat(), (start, t)


def test_many_utc_strings_equal_pandas():
    """The vectorised path (one call per flush) gives pandas' string for every time, half nanoseconds included."""
    g = np.random.default_rng(3)
    halves = (g.integers(0, 10**6, 500) + (g.integers(0, 10**9, 500) + 0.5) * 1e-9).tolist()  # at a half ns
    times = _times() + halves + [-1.5, 2e9]  # outside 0 <= t < 1e9 s: through pandas
    for start in ("2023-07-18T00:00:00Z", "2024-02-29T23:59:59.5Z", "2023-07-18T02:00:00+02:00",
                  "2023-07-18T00:00:00"):  # no time zone: pandas for every string
        formatter = UtcStrings(start)
        base = pd.Timestamp(start)
        assert formatter.many(np.array(times)) == [(base + pd.to_timedelta(t, unit="s")).isoformat() for t in times]
    assert UtcStrings("2023-07-18T00:00:00Z").many(np.array([])) == []


def _record_rows(tmp_path):
    """300 mixed events recorded and closed; the table the dict rows give."""
    rec = Recorder(tmp_path, "s", "2023-07-18T00:00:00Z", ["csv", "parquet"])
    rows = []
    for i, t in enumerate(_times()[:300]):
        fields = {"device": f"d{i % 3}", "bytes": i * 10 if i % 2 else None, "experts": [1, i % 4]}
        rec.event(t, "upload_start" if i % 2 else "link_up", f"c{i % 5}", **fields)
        row = {c: None for c in EVENT_COLUMNS}
        row.update(time_s=t, utc=(pd.Timestamp("2023-07-18T00:00:00Z") + pd.to_timedelta(t, unit="s")).isoformat(),
                   strategy="s", event="upload_start" if i % 2 else "link_up", cluster=f"c{i % 5}",
                   device=f"d{i % 3}", bytes=i * 10 if i % 2 else None, experts=f"1 {i % 4}")
        rows.append(row)
    rec.metric({"time_s": 12.5, "accuracy": 0.5})
    rec.close({})
    assert not (tmp_path / "events.csv.part").exists()
    events = pd.DataFrame(rows, columns=EVENT_COLUMNS).astype(EVENT_DTYPES)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "events.parquet"), events)
    return events


def test_event_table_equals_the_dict_rows(tmp_path):
    _record_rows(tmp_path)


def test_events_written_in_batches_equal_one_table(tmp_path, monkeypatch):
    """Issue 16: events go to the final tables every EVENT_BATCH rows; the files equal write_table of all rows."""
    events = _record_rows(tmp_path / "whole")
    monkeypatch.setattr("emsfl_sim.sim.recorder.EVENT_BATCH", 7)  # 300 rows: 42 full batches and a rest
    _record_rows(tmp_path / "batched")
    write_table(events, tmp_path / "reference", ["csv", "parquet"])
    for name in ("whole", "batched"):
        assert (tmp_path / name / "events.csv").read_bytes() == (tmp_path / "reference.csv").read_bytes()
        pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / name / "events.parquet"), events)
    assert not list((tmp_path / "batched").glob(".*.tmp"))


def test_a_run_without_events_writes_empty_tables(tmp_path):
    rec = Recorder(tmp_path, "s", "2023-07-18T00:00:00Z", ["csv", "parquet"])
    rec.close({})
    empty = pd.read_parquet(tmp_path / "events.parquet")
    assert list(empty.columns) == EVENT_COLUMNS and len(empty) == 0
    assert (tmp_path / "events.csv").read_text().strip() == ",".join(EVENT_COLUMNS)


def test_part_file_has_every_row_after_a_flush(tmp_path, monkeypatch):
    monkeypatch.setattr("emsfl_sim.sim.recorder.FLUSH_EVERY_S", 0.0)  # flush every row
    rec = Recorder(tmp_path, "s", "2023-07-18T00:00:00Z", ["csv"])
    rec.event(1.5, "link_up", "c0", satellite="S1")
    rec.event(2.0, "link_down", "c0", satellite="S1", detail="set")
    part = pd.read_csv(tmp_path / "events.csv.part")
    assert list(part.columns) == EVENT_COLUMNS and part.event.tolist() == ["link_up", "link_down"]
    assert part.utc.tolist() == ["2023-07-18T00:00:01.500000+00:00", "2023-07-18T00:00:02+00:00"]


def _pandas_table(columns: list[list]) -> pa.Table:
    """What the event rows gave through a typed pandas frame (the reference of :func:`event_table`)."""
    frame = pd.DataFrame(dict(zip(EVENT_COLUMNS, columns, strict=True))).astype(EVENT_DTYPES)
    return pa.Table.from_pandas(frame, preserve_index=False)


def test_event_table_equals_the_typed_frame_and_converts_as_pandas():
    """Issue 16: the event columns go to Arrow without a frame; values Arrow does not take go as astype takes them."""
    columns = [[0.5, 1.25, 2.0], ["u0", "u1", "u2"], ["s"] * 3, ["link_up", "upload_start", "aggregation"],
               ["c0", "c1", ""], [None, "c1/0", None], ["S1", None, None], [None, np.int64(5), 7],
               [123, 456, None], [None, "0 1", "2"], [None, None, "experts devices=2"]]
    got, expected = event_table(columns), _pandas_table(columns)
    assert got.schema.equals(EVENT_SCHEMA, check_metadata=True) and got.equals(expected)
    assert got.schema.equals(expected.schema, check_metadata=True)
    odd = [list(c) for c in columns]
    odd[6] = [7, None, "S2"]  # a number in a string column: pandas makes it "7"
    odd[7] = [3.0, None, 4]  # a whole float in an integer column: pandas makes it 3
    assert event_table(odd).equals(_pandas_table(odd))
    assert event_table(odd).column("satellite").to_pylist() == ["7", None, "S2"]
    odd[7] = [2.5, None, 4]  # pa.array would truncate it to 2; pandas refuses, and so does event_table
    with pytest.raises((TypeError, ValueError)):
        _pandas_table(odd)
    with pytest.raises((TypeError, ValueError)):
        event_table(odd)
    empty = event_table([[] for _ in EVENT_COLUMNS])
    assert len(empty) == 0 and empty.schema.equals(EVENT_SCHEMA, check_metadata=True)


def test_table_writer_writes_an_arrow_table_as_its_frame(tmp_path):
    """The recorder hands its batches to TableWriter as Arrow tables: the files equal those of the frame."""
    frame = pd.DataFrame({"time_s": [1.0, 2.5], "utc": ["a", "b"], "strategy": ["s", "s"], "event": ["x", "y"],
                          "cluster": ["c", "c"], "device": [None, "d"], "satellite": ["S", None],
                          "bytes": [None, 3], "bytes_total": [4, None], "experts": ["1", None],
                          "detail": [None, "z"]}).astype(EVENT_DTYPES)
    write_table(frame, tmp_path / "frame", ["csv", "parquet"])
    with TableWriter(tmp_path / "arrow", ["csv", "parquet"]) as writer:
        table = pa.Table.from_pandas(frame, preserve_index=False)
        writer.write(table.slice(0, 1))
        writer.write(table.slice(1))
    assert (tmp_path / "arrow.csv").read_bytes() == (tmp_path / "frame.csv").read_bytes()
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "arrow.parquet"), frame)


def test_link_event_is_the_event_with_its_keywords(tmp_path):
    """The link process's positional rows equal event(..., satellite=..., bytes_total=...)."""
    tables = []
    for name, fast in (("keywords", False), ("positional", True)):
        rec = Recorder(tmp_path / name, "s", "2023-07-18T00:00:00Z", ["parquet"])
        for i, t in enumerate(_times()[:50]):
            kind, total = ("link_up", 1000 + i) if i % 2 == 0 else ("link_down", None)
            if fast:
                rec.link_event(t, kind, f"c{i % 3}", f"S{i % 4}", total)
            elif total is None:
                rec.event(t, kind, f"c{i % 3}", satellite=f"S{i % 4}")
            else:
                rec.event(t, kind, f"c{i % 3}", satellite=f"S{i % 4}", bytes_total=total)
        rec.close({})
        tables.append(pd.read_parquet(tmp_path / name / "events.parquet"))
    pd.testing.assert_frame_equal(tables[0], tables[1])
    assert tables[1]["bytes_total"].iloc[0] == 1000 and tables[1]["satellite"].iloc[1] == "S1"
