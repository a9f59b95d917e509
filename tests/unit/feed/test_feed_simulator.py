"""The market simulator: determinism, valid rows, a live market that never runs dry, calibration."""

from __future__ import annotations

import itertools
import random
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from coinfleet.feed import curve
from coinfleet.feed.calibration import CALIBRATION_BANDS, Calibration, measure
from coinfleet.feed.coin_plan import Fate, plan_coin
from coinfleet.feed.recorded import read_recorded
from coinfleet.feed.simulator import MarketSimulator, SimulatorConfig, coin_observations
from coinfleet.metrics import MetricRow

START = datetime(2025, 6, 6, 16, 35, tzinfo=UTC)
REAL_FILE = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "pumpfun_tracks_2025-06-06.csv"
#: the span of the real file, over which the calibration figures are compared
CALIBRATION_SECONDS = 6000.0


def history(config: SimulatorConfig | None = None, seconds: float = 1800.0) -> list[MetricRow]:
    return MarketSimulator(config or SimulatorConfig(), START).history(seconds)


@pytest.fixture(scope="module")
def calibration_rows() -> list[MetricRow]:
    return history(seconds=CALIBRATION_SECONDS)


@pytest.fixture(scope="module")
def simulated_figures(calibration_rows: list[MetricRow]) -> Calibration:
    return measure(calibration_rows)


def test_the_same_seed_gives_the_same_rows() -> None:
    assert history(SimulatorConfig(seed=3)) == history(SimulatorConfig(seed=3))


def test_a_seeded_run_keeps_its_rows() -> None:
    """Seed 7's first ten minutes, pinned: a refactoring of the simulator must not change its rows."""
    rows = history(SimulatorConfig(seed=7), seconds=600.0)
    assert (len(rows), len({row.mint for row in rows})) == (2665, 75)
    first, second, first_trade = rows[0], rows[1], rows[9]
    assert (first.mint, first.timestamp) == (
        "Fvj8yjDrRo8YgHovJAt7xAHBTi212R4CgRF4EfgCpump",
        START + timedelta(microseconds=903),
    )
    assert first.price_close == pytest.approx(2.9530613827772166e-08, rel=1e-12)
    assert (second.mint, second.timestamp) == (
        "AejS6AWgwXN3RKTqzyGcDDJydzGAkmWF2jR4A1Cepump",
        START + timedelta(seconds=1, microseconds=8795),
    )
    assert second.price_close == pytest.approx(3.583467082896405e-08, rel=1e-12)
    assert (first_trade.mint, first_trade.timestamp) == (
        second.mint,
        START + timedelta(seconds=14, microseconds=546464),
    )
    assert (first_trade.num_buys, first_trade.unique_wallets) == (1, 1)
    assert first_trade.buy_volume_sol == pytest.approx(0.0024396877742987044, rel=1e-12)
    assert first_trade.price_close == pytest.approx(3.583981921454032e-08, rel=1e-12)
    assert all(row.volume_sol == 0.0 for row in rows[:9])


def test_another_seed_gives_other_rows() -> None:
    assert history(SimulatorConfig(seed=3)) != history(SimulatorConfig(seed=4))


def test_stepping_in_small_steps_gives_the_same_rows_as_one_history() -> None:
    simulator = MarketSimulator(SimulatorConfig(seed=5), START)
    stepped: list[MetricRow] = []
    for second in range(0, 1801, 7):
        batch = simulator.step_until(START + timedelta(seconds=second))
        assert all(row.timestamp <= START + timedelta(seconds=second) for row in batch)
        stepped.extend(batch)
    stepped.extend(simulator.step_until(START + timedelta(seconds=1800)))
    assert stepped == history(SimulatorConfig(seed=5))


def test_rows_are_in_timestamp_order_and_never_repeat() -> None:
    rows = history()
    assert [row.timestamp for row in rows] == sorted(row.timestamp for row in rows)
    assert len({(row.mint, row.timestamp) for row in rows}) == len(rows)


def test_rows_are_valid(calibration_rows: list[MetricRow]) -> None:
    for row in calibration_rows:
        assert row.timestamp.tzinfo is not None
        assert min(row.price_open, row.price_low, row.market_cap_close) > 0.0
        assert row.price_high >= max(row.price_open, row.price_close)
        assert row.price_low <= min(row.price_open, row.price_close)
        assert min(row.volume_sol, row.buy_volume_sol, row.sell_volume_sol) >= 0.0
        assert min(row.num_buys, row.num_sells, row.unique_wallets) >= 0
        assert row.phase_id_at_time in {1, 2, 3, 4}
        assert row.price_close <= curve.price(curve.GRADUATION_SOL) * (1 + 1e-9)


def test_each_coin_opens_at_its_previous_close(calibration_rows: list[MetricRow]) -> None:
    by_coin: dict[str, list[MetricRow]] = defaultdict(list)
    for row in calibration_rows:
        by_coin[row.mint].append(row)
    for rows in by_coin.values():
        assert rows[0].price_open == rows[0].price_close
        for earlier, later in itertools.pairwise(rows):
            assert later.timestamp > earlier.timestamp
            assert later.price_open == earlier.price_close


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        MarketSimulator(SimulatorConfig(), datetime(2025, 6, 6))
    with pytest.raises(ValueError, match="naive"):
        MarketSimulator(SimulatorConfig(), START).step_until(datetime(2025, 6, 6, 17))


def test_rows_are_stamped_in_utc() -> None:
    berlin = timezone(timedelta(hours=2))
    rows = MarketSimulator(SimulatorConfig(), START.astimezone(berlin)).history(60)
    assert rows
    assert all(row.timestamp.tzinfo is UTC for row in rows)


def test_a_negative_config_is_refused() -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        SimulatorConfig(coins=-1)


def test_an_empty_market_stays_empty() -> None:
    assert history(SimulatorConfig(coins=0, launches_per_minute=0)) == []


def test_a_live_market_never_runs_dry() -> None:
    simulator = MarketSimulator(SimulatorConfig(), START)
    simulator.history(600)
    for minute in range(20, 241, 20):
        simulator.step_until(START + timedelta(minutes=minute - 1))
        last_minute = simulator.step_until(START + timedelta(minutes=minute))
        assert len({row.mint for row in last_minute}) >= 15
        assert 1.0 <= len(last_minute) / 60 <= 15.0


def test_it_makes_at_least_5000_rows_a_second() -> None:
    started = time.perf_counter()
    rows = history(seconds=3600.0)
    assert len(rows) / (time.perf_counter() - started) >= 5000


def test_every_fate_shows_its_shape() -> None:
    shapes: dict[Fate, list[tuple[float, float, int, int]]] = defaultdict(list)
    for index in range(1500):
        rng = random.Random(f"test:{index}")
        plan = plan_coin(rng)
        observations = coin_observations(plan, START, rng)
        pools = [obs.sol_in_pool for obs in observations]
        buyers = (observations[0].unique_buyers, observations[-1].unique_buyers)
        shapes[plan.fate].append((max(pools), pools[-1], *buyers))
    assert set(shapes) == set(Fate)
    assert any(peak >= curve.sol_for_progress(60.0) for peak, *_ in shapes[Fate.RUNNER])
    assert any(first + 5 <= last for _, _, first, last in shapes[Fate.PUMP])
    assert any(curve.price(last) <= 0.5 * curve.price(peak) for peak, last, *_ in shapes[Fate.RUG])
    assert sum(peak < 31.0 for peak, *_ in shapes[Fate.DUD]) > len(shapes[Fate.DUD]) / 2


def test_a_graduated_coin_stops_at_its_graduation_row() -> None:
    for index in range(3000):
        rng = random.Random(f"graduate:{index}")
        plan = plan_coin(rng)
        if plan.fate is Fate.RUNNER:
            observations = coin_observations(plan, START, rng)
            graduated = [curve.is_graduated(obs.sol_in_pool) for obs in observations]
            if any(graduated):
                assert graduated.index(True) == len(observations) - 1
                return
    pytest.fail("no runner graduated in 3000 coins")


@pytest.mark.parametrize("figure", sorted(CALIBRATION_BANDS))
def test_the_simulator_lands_in_the_calibration_bands(figure: str, simulated_figures: Calibration) -> None:
    low, high = CALIBRATION_BANDS[figure]
    assert low <= getattr(simulated_figures, figure) <= high


def test_the_real_file_lands_in_the_calibration_bands() -> None:
    if not REAL_FILE.exists():
        pytest.skip(f"the recorded file {REAL_FILE} is not on this machine")
    real = measure(read_recorded(REAL_FILE).rows)
    for figure, (low, high) in CALIBRATION_BANDS.items():
        assert low <= getattr(real, figure) <= high, figure


def test_every_band_names_a_figure() -> None:
    assert set(CALIBRATION_BANDS) <= set(Calibration.__dataclass_fields__)
