"""Recorded CSV files mapped to metric rows: the mapping, bad lines, and the real file."""

from __future__ import annotations

import csv
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from coinfleet.errors import DataFormatError
from coinfleet.feed import curve
from coinfleet.feed.recorded import (
    BOT_SIGNER_RATIO,
    Observation,
    RecordedMapper,
    RowError,
    phase_for_age,
    read_recorded,
)
from coinfleet.metrics import MetricRow

REPO_ROOT = Path(__file__).resolve().parents[3]
REAL_FILE = REPO_ROOT.parent / "shared" / "data" / "pumpfun_tracks_2025-06-06.csv"
HEADER = (
    "timestamp,mint,sol_in_pool,sol_raised_total,progress,sol_flow,sol_accel,unique_buyers,top3_pct,"
    "lp_burn,whale_flag,buy_sell_delta,buy_pressure,sell_pressure,bot_like"
)
T0 = "2025-06-06T16:35:10.000000+00:00"


def line(
    timestamp: str = T0,
    mint: str = "Amint",
    pool: str = "30.1",
    buyers: str = "2",
    whale: str = "True",
    buy_pressure: str = "1.0",
    sell_pressure: str = "0.5",
    bot: str = "False",
) -> str:
    """One recorded line; the columns the mapping ignores get fixed values."""
    return (
        f"{timestamp},{mint},{pool},0.1,0.45,0.1,0.1,{buyers},100.0,False,{whale},0.5,"
        f"{buy_pressure},{sell_pressure},{bot}"
    )


def write(tmp_path: Path, *lines: str, header: str = HEADER) -> Path:
    path = tmp_path / "tracks.csv"
    path.write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
    return path


def by_mint(rows: list[MetricRow], mint: str) -> list[MetricRow]:
    return [row for row in rows if row.mint == mint]


def test_a_first_row_opens_at_its_own_close_with_no_volume(tmp_path: Path) -> None:
    (row,) = read_recorded(write(tmp_path, line(pool="30.1"))).rows
    assert row.timestamp == datetime(2025, 6, 6, 16, 35, 10, tzinfo=UTC)
    assert row.price_close == pytest.approx(30.1**2 / curve.CURVE_K)
    assert row.price_open == row.price_high == row.price_low == row.price_close
    assert row.market_cap_close == pytest.approx(row.price_close * 1e9)
    assert (row.volume_sol, row.num_buys, row.num_sells, row.unique_wallets) == (0.0, 0, 0, 0)
    assert row.phase_id_at_time == 1
    assert row.buy_pressure_ratio == pytest.approx(1.0 / 1.5)


def test_a_buy_bar(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        line(pool="30.0", buyers="2", buy_pressure="1.0", sell_pressure="0.5"),
        line(timestamp="2025-06-06T16:35:16+00:00", pool="31.0", buyers="5", buy_pressure="2.5"),
    )
    first, second = read_recorded(path).rows
    assert second.price_open == first.price_close
    assert second.price_close == pytest.approx(31.0**2 / curve.CURVE_K)
    assert (second.price_high, second.price_low) == (second.price_close, second.price_open)
    assert (second.buy_volume_sol, second.sell_volume_sol) == (1.5, 0.0)
    assert second.net_volume_sol == 1.5
    assert (second.num_buys, second.num_sells, second.unique_wallets) == (3, 0, 3)
    assert second.whale_buy_volume_sol == 1.5
    assert second.volatility_pct == pytest.approx(((31 / 30) ** 2 - 1) * 100)


def test_a_sell_bar_takes_the_pool_move_when_pressures_lag(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        line(pool="31.0", whale="False"),
        line(timestamp="2025-06-06T16:35:16+00:00", pool="30.0", whale="False"),
    )
    second = read_recorded(path).rows[1]
    assert second.buy_volume_sol == 0.0
    assert second.sell_volume_sol == pytest.approx(1.0)
    assert (second.num_buys, second.num_sells, second.unique_wallets) == (0, 1, 1)
    assert second.whale_buy_volume_sol == 0.0
    assert second.price_high == second.price_open > second.price_close == second.price_low


def test_bot_like_rows_get_a_low_signer_ratio(tmp_path: Path) -> None:
    rows = read_recorded(write(tmp_path, line(bot="True"), line(mint="Bmint"))).rows
    assert [row.unique_signer_ratio for row in rows] == [BOT_SIGNER_RATIO, 1.0]


def test_rows_come_out_sorted_and_each_coin_keeps_its_own_previous_close(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        line(timestamp="2025-06-06T16:35:20+00:00", mint="A", pool="32.0"),
        line(timestamp="2025-06-06T16:35:10+00:00", mint="A", pool="31.0"),
        line(timestamp="2025-06-06T16:35:15+00:00", mint="B", pool="35.0"),
    )
    rows = read_recorded(path).rows
    assert [(row.mint, row.timestamp.second) for row in rows] == [("A", 10), ("B", 15), ("A", 20)]
    assert rows[2].price_open == rows[0].price_close


def test_an_offset_timestamp_is_converted_to_utc(tmp_path: Path) -> None:
    (row,) = read_recorded(write(tmp_path, line(timestamp="2025-06-06T18:35:10+02:00"))).rows
    assert row.timestamp == datetime(2025, 6, 6, 16, 35, 10, tzinfo=UTC)
    assert row.timestamp.utcoffset() is not None


@pytest.mark.parametrize(
    ("age", "phase"), [(0.0, 1), (119.9, 1), (120.0, 2), (599.0, 2), (600.0, 3), (1800.0, 4), (9e4, 4)]
)
def test_phase_by_age(age: float, phase: int) -> None:
    assert phase_for_age(age) == phase


def test_phase_follows_the_age_since_the_first_row(tmp_path: Path) -> None:
    stamps = ["16:35:10", "16:37:10", "16:45:10", "17:05:10"]
    rows = read_recorded(write(tmp_path, *(line(timestamp=f"2025-06-06T{s}+00:00") for s in stamps))).rows
    assert [row.phase_id_at_time for row in rows] == [1, 2, 3, 4]


BAD_LINES: list[tuple[str, str]] = [
    (line()[: line().rindex(",")], "expected 15 fields, got 14"),
    (line() + ",extra", "expected 15 fields, got 16"),
    (line(pool="abc"), "sol_in_pool 'abc' is not a number"),
    (line(timestamp="2025-06-06T16:35:10"), "has no UTC offset"),
    (line(timestamp="yesterday"), "is not ISO-8601"),
    (line(mint=""), "mint is empty"),
    (line(pool="-1.0"), "sol_in_pool must be positive"),
    (line(pool="nan"), "sol_in_pool 'nan' is not a finite number"),
    (line(buy_pressure="inf"), "buy_pressure 'inf' is not a finite number"),
    (line(sell_pressure="-0.2"), "sell_pressure must not be negative"),
    (line(buyers="2.5"), "unique_buyers must be a whole number"),
    (line(whale="maybe"), "whale_flag 'maybe' is not True or False"),
]


def test_each_bad_line_is_reported_with_its_line_number_and_good_rows_land(tmp_path: Path) -> None:
    good = [
        line(timestamp=f"2025-06-06T16:{minute:02d}:00+00:00") for minute in range(40, 40 + len(BAD_LINES))
    ]
    interleaved = [text for pair in zip(good, (bad for bad, _ in BAD_LINES), strict=True) for text in pair]
    recorded = read_recorded(write(tmp_path, *interleaved))
    assert len(recorded.rows) == len(good)
    assert recorded.total_lines == len(interleaved)
    # the header is line 1, the first good line 2, so the k-th bad line is line 2k + 3
    assert [error.line for error in recorded.errors] == [2 * k + 3 for k in range(len(BAD_LINES))]
    for error, (_, message) in zip(recorded.errors, BAD_LINES, strict=True):
        assert message in error.message


def test_a_repeated_coin_and_time_is_reported(tmp_path: Path) -> None:
    recorded = read_recorded(write(tmp_path, line(), line(mint="B"), line(pool="31.0")))
    assert len(recorded.rows) == 2
    assert recorded.errors == [RowError(line=4, message="same mint and timestamp as line 2")]


def test_blank_lines_are_skipped_but_keep_their_numbers(tmp_path: Path) -> None:
    recorded = read_recorded(write(tmp_path, line(), "", line(pool="x")))
    assert recorded.total_lines == 2
    assert [error.line for error in recorded.errors] == [4]


def test_a_header_without_required_columns_names_them(tmp_path: Path) -> None:
    header = HEADER.replace("sol_in_pool,", "").replace(",bot_like", "")
    with pytest.raises(DataFormatError, match="lacks the columns sol_in_pool, bot_like"):
        read_recorded(write(tmp_path, header=header))


def test_an_empty_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("", encoding="utf-8")
    with pytest.raises(DataFormatError, match="not a recorded metrics file"):
        read_recorded(path)


def test_the_mapper_streams_coin_by_coin() -> None:
    mapper = RecordedMapper()
    at = datetime(2025, 6, 6, tzinfo=UTC)
    first = mapper.map(observation("A", at, 31.0))
    second = mapper.map(observation("A", at.replace(minute=3), 32.0))
    assert second.price_open == first.price_close
    assert second.phase_id_at_time == 2
    mapper.forget("A")
    assert mapper.map(observation("A", at.replace(minute=4), 33.0)).phase_id_at_time == 1


def observation(mint: str, at: datetime, pool: float) -> Observation:
    return Observation(
        mint=mint,
        timestamp=at,
        sol_in_pool=pool,
        unique_buyers=3,
        buy_pressure=pool - 30.0,
        sell_pressure=0.0,
        whale=False,
        bot_like=False,
    )


@pytest.fixture(scope="module")
def real_file() -> Path:
    if not REAL_FILE.exists():
        pytest.skip(f"the recorded file {REAL_FILE} is not on this machine")
    return REAL_FILE


def test_the_real_file_reads_whole_and_fast(real_file: Path) -> None:
    started = time.perf_counter()
    recorded = read_recorded(real_file)
    assert time.perf_counter() - started < 2.0
    assert recorded.total_lines == 10_740
    assert len(recorded.rows) == 10_740 - len(recorded.errors)
    assert recorded.errors == []
    assert len({row.mint for row in recorded.rows}) == 75
    stamps = [row.timestamp for row in recorded.rows]
    assert stamps == sorted(stamps)


def test_the_real_file_prices_agree_with_its_progress_column(real_file: Path) -> None:
    with real_file.open(newline="", encoding="utf-8") as handle:
        expected = {(r["mint"], r["timestamp"]): float(r["progress"]) for r in csv.DictReader(handle)}
    for row in read_recorded(real_file).rows:
        pool = (row.price_close * curve.CURVE_K) ** 0.5
        key = (row.mint, row.timestamp.isoformat(timespec="microseconds"))
        assert curve.progress_pct(pool) == pytest.approx(expected[key], abs=0.006)


def test_the_real_file_rows_are_well_formed(real_file: Path) -> None:
    for row in read_recorded(real_file).rows:
        assert row.price_low <= min(row.price_open, row.price_close)
        assert row.price_high >= max(row.price_open, row.price_close)
        assert min(row.volume_sol, row.buy_volume_sol, row.sell_volume_sol) >= 0.0
        assert row.volume_sol == pytest.approx(row.buy_volume_sol + row.sell_volume_sol)
        assert row.phase_id_at_time in {1, 2, 3, 4}
