"""`bench fleet`'s verdict: kept up as the throughput benchmark says it, and two fleets side by side."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from coinfleet.bench import fleet

MEMORY = {"rss": [61.0, 62.0], "pss": [9.0, 10.0], "packages": ["numpy", "onnxruntime"]}


def figures(models: int, behind: int) -> dict[str, Any]:
    return fleet.summarise(models, 300, [0, 10, behind], 1000.0, MEMORY, behind)


def test_a_fleet_keeps_up_when_no_lane_is_a_second_of_feed_behind_at_the_end() -> None:
    assert figures(20, 300)["kept_up"]
    assert not figures(20, 301)["kept_up"]
    assert figures(20, 301)["behind_events"] == 301


def test_two_fleets_render_side_by_side() -> None:
    result = {**figures(50, 900), "compared": figures(20, 0)}
    console = Console(width=200, record=True)
    console.print(fleet.render(result))
    text = console.export_text()
    assert "20 models" in text and "50 models" in text
    kept = next(line for line in text.splitlines() if line.startswith("│ kept up"))
    assert kept.index("yes") < kept.index("no")  # the 20-model column comes first
