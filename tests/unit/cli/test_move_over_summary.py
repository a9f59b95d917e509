"""The move-over's last line says what it brought over, or why it changed nothing."""

from __future__ import annotations

from coinfleet.cli.predecessor import summary
from coinfleet.service.predecessor import ModelOutcome, MoveOverReport


def _report(*statuses: str) -> MoveOverReport:
    return MoveOverReport(
        models=[ModelOutcome(predecessor_id=i, name=f"m{i}", status=s) for i, s in enumerate(statuses)]
    )


def test_a_run_that_skipped_every_model_does_not_claim_they_were_brought_over_before() -> None:
    assert (
        summary(_report("skipped", "skipped")) == "changed nothing: 2 of 2 models skipped (why is said above)"
    )


def test_the_summary_counts_what_was_brought_over() -> None:
    report = _report("imported", "skipped", "present")
    report.models[0].predictions = 4
    assert summary(report) == "done: 1 models and 4 predictions brought over, 1 skipped"
    assert summary(_report("present", "present")) == "changed nothing (everything was brought over before)"
    assert summary(_report()) == "changed nothing: the predecessor's database has no models"
