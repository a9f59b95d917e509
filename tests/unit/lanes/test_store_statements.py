"""The two store statements are one statement with and without leaving repeats out."""

from __future__ import annotations

from coinfleet.db.sql import query

ON_CONFLICT = "    ON CONFLICT (model_id, mint, metric_ts) DO NOTHING\n"


def test_the_two_store_statements_differ_only_by_the_on_conflict_line() -> None:
    skipping, failing = (_statement(name) for name in ("store_batch", "store_batch_failing_on_repeats"))
    assert skipping.count(ON_CONFLICT) == 1 and ON_CONFLICT.strip() not in failing
    assert skipping.replace(ON_CONFLICT, "") == failing, "edit store_batch and its copy together"


def _statement(name: str) -> str:
    """The query without its leading comment lines."""
    return "\n".join(line for line in query(name).splitlines() if not line.startswith("--")) + "\n"
