"""``anjian bench service`` runs end to end on a small burst and reports both bursts and the baselines."""

from __future__ import annotations

import pytest

from service.bench import run_service_bench


@pytest.mark.slow
def test_service_bench_measures_batched_and_one_by_one_bursts() -> None:
    report = run_service_bench(events=40, ingest_events=10, workers=2, claim_batch=8)

    assert (report.events, report.workers, report.claim_batch) == (40, 2, 8)
    assert report.database == "SQLite (WAL)"
    assert 0 < report.latency_p50_s <= report.latency_p95_s <= report.latency_max_s
    assert report.burst_drain_s > 0 and report.one_by_one_drain_s > 0 and report.one_by_one_p50_s > 0
    assert report.ingest_per_s > 0 and report.inprocess_per_s > 0
    text = report.render()
    assert "claiming 8 at a time" in text and "claiming 1 at a time" in text


def test_service_bench_refuses_an_empty_burst() -> None:
    with pytest.raises(ValueError, match="events and ingest_events must be >= 1"):
        run_service_bench(events=0)
