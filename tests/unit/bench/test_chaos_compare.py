"""The chaos benchmark's verdict: what is missing, extra or repeated against the reference run."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

from coinfleet.bench.chaos import Havoc, Outcome, Plan, compare

T = datetime(2026, 1, 1, tzinfo=UTC)
PLAN = Plan(rows=3, workers=3, models=1, kills=2, feed_seconds=10, seed=1)


def test_missing_extra_and_repeated_predictions_and_alerts_are_counted() -> None:
    reference = Outcome(
        predictions={("m", "a", T), ("m", "b", T), ("m", "c", T)}, alerts=Counter({"k1": 1, "k2": 1})
    )
    chaos = Outcome(
        predictions={("m", "a", T), ("m", "b", T), ("m", "x", T)},
        alerts=Counter({"k1": 3, "k9": 1}),
        repeats=2,
        lease_moves=5,
    )
    result = compare(chaos, reference, Havoc(kills=2, pauses=1, postgres_restarts=1), PLAN, 12.34)
    assert (result["lost"], result["unexpected"], result["duplicated"]) == (1, 1, 2)
    assert result["lost_by_model"] == {"m": 1} and result["lost_metric_ts"] == [str(T), str(T)]
    assert (result["alerts_lost"], result["alerts_duplicated"], result["alerts_unexpected"]) == (1, 2, 1)
    assert (result["kills"], result["lease_moves"], result["seconds"]) == (2, 5, 12.3)
    # four requests came; a receiver acting once per key acted on two alerts
    assert (result["alert_deliveries"], result["alerts_acted_on"]) == (4, 2)


def test_a_clean_run_is_zero_everywhere() -> None:
    same = Outcome(predictions={("m", "a", T)}, alerts=Counter({"k1": 1}))
    result = compare(same, same, Havoc(), PLAN, 1.0)
    assert [result[k] for k in ("lost", "duplicated", "unexpected", "alerts_lost", "alerts_duplicated")] == [
        0
    ] * 5
